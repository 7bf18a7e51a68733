"""Authorized operations: the bitfields Metadata, DescribeCluster and DescribeGroups answer with.

Pure and small. Without an authorizer (today: the listener is PLAINTEXT and there are no ACLs) a client
may do everything a resource type supports, which is what Kafka answers too. An ACL authorizer would
replace ``authorized_operations`` with one that asks, per principal, which of those operations are allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

# What Kafka puts in an authorized-operations field the client did not ask for (INT32_MIN).
OMITTED = -2147483648


class AclOperation(IntEnum):
    """Kafka's AclOperation codes (the bit numbers of the bitfield)."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class ResourceType(IntEnum):
    """Kafka's ResourceType codes."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


_Op = AclOperation

# The operations each resource type has (Kafka's AclEntry.supportedOperations), checked against what
# Apache Kafka 4.4 answers (tests/test_external_findings.py, tests/unit/test_authz.py).
SUPPORTED_OPERATIONS: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset(
        {
            _Op.READ,
            _Op.WRITE,
            _Op.CREATE,
            _Op.DESCRIBE,
            _Op.DELETE,
            _Op.ALTER,
            _Op.DESCRIBE_CONFIGS,
            _Op.ALTER_CONFIGS,
        }
    ),
    # Groups have configs since KIP-848: Kafka 4.4's DescribeGroups answers 3400 without an authorizer.
    ResourceType.GROUP: frozenset(
        {_Op.READ, _Op.DESCRIBE, _Op.DELETE, _Op.DESCRIBE_CONFIGS, _Op.ALTER_CONFIGS}
    ),
    ResourceType.CLUSTER: frozenset(
        {
            _Op.CREATE,
            _Op.CLUSTER_ACTION,
            _Op.DESCRIBE_CONFIGS,
            _Op.ALTER_CONFIGS,
            _Op.IDEMPOTENT_WRITE,
            _Op.ALTER,
            _Op.DESCRIBE,
        }
    ),
    # The last three are in no response yet, so not checked against Kafka.
    ResourceType.TRANSACTIONAL_ID: frozenset({_Op.DESCRIBE, _Op.WRITE}),
    ResourceType.DELEGATION_TOKEN: frozenset({_Op.DESCRIBE}),
    ResourceType.USER: frozenset({_Op.CREATE_TOKENS, _Op.DESCRIBE_TOKENS}),
}


def to_bitfield(operations: Iterable[AclOperation]) -> int:
    """One bit per operation code, as a signed 32-bit value (codes are below 31)."""
    bits = 0
    for op in operations:
        if not 0 <= op < 31:
            raise ValueError(f"operation code {int(op)} does not fit a 32-bit authorized-operations field")
        bits |= 1 << op
    return bits


def authorized_operations(resource_type: ResourceType, resource_name: str | None = None) -> int:
    """The bitfield of what the caller may do on one resource: without an authorizer, everything the
    resource type supports, whatever the name. ``resource_name`` is where an authorizer would look."""
    return to_bitfield(SUPPORTED_OPERATIONS[resource_type])


def field_value(requested: bool, resource_type: ResourceType, resource_name: str | None = None) -> int:
    """What goes in a response's authorized-operations field: the bitfield if asked for, else OMITTED."""
    return authorized_operations(resource_type, resource_name) if requested else OMITTED
