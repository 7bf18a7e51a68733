"""Authorized-operations bitfields: Kafka's operation codes per resource type, omitted unless asked."""

from __future__ import annotations

import pytest

from odradek.broker import authz
from odradek.broker.authz import AclOperation as Op
from odradek.broker.authz import ResourceType


def test_topic_and_cluster_bitfields_are_kafkas():
    # Values Apache Kafka 4.4 answers without an authorizer (tests/test_external_findings.py checks both).
    assert authz.authorized_operations(ResourceType.TOPIC, "t") == 3576
    assert authz.authorized_operations(ResourceType.CLUSTER) == 8096
    # What Kafka 4.4's DescribeGroups answers (READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS).
    assert authz.authorized_operations(ResourceType.GROUP, "g") == 3400


def test_omitted_unless_asked():
    assert authz.field_value(False, ResourceType.TOPIC, "t") == authz.OMITTED == -(2**31)
    assert authz.field_value(True, ResourceType.TOPIC, "t") == 3576


def test_every_resource_type_has_operations_that_fit_the_field():
    concrete = [t for t in ResourceType if t not in (ResourceType.UNKNOWN, ResourceType.ANY)]  # filter codes
    assert set(concrete) == set(authz.SUPPORTED_OPERATIONS)
    for resource_type in concrete:
        bits = authz.authorized_operations(resource_type)
        assert 0 < bits < 2**31
        for op in authz.SUPPORTED_OPERATIONS[resource_type]:
            assert bits & (1 << op)
        assert not bits & ((1 << Op.UNKNOWN) | (1 << Op.ANY) | (1 << Op.ALL)), "never the filter codes"


def test_bitfield_refuses_codes_past_the_field():
    assert authz.to_bitfield([Op.READ, Op.WRITE]) == 0b11000
    assert authz.to_bitfield([]) == 0
    with pytest.raises(ValueError):
        authz.to_bitfield([31])  # type: ignore[list-item]
