"""Authorization as handlers ask for it: may this request's principal do an operation on a resource?

Pure and small. Without an authorizer (``authorizer.class.name`` empty) a client may do everything a
resource type supports, which is what Kafka answers too. With one (``broker.authorizer``, the ACL store of
``odradek.security.acls``) every check goes to it with the connection's principal and client address.

Handlers call :func:`allowed` (one resource), :func:`allowed_any` (Kafka's authorizeByResourceType: the
operation on some resource of the type, as idempotent produce asks of topics) and :func:`field_value`
(the authorized-operations bitfields of Metadata, DescribeCluster, DescribeGroups and
ConsumerGroupDescribe).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any

# What Kafka puts in an authorized-operations field the client did not ask for (INT32_MIN).
OMITTED = -2147483648
CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name, as in Kafka


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

    UNKNOWN = 0
    ANY = 1
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


def allowed(ctx: Any, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
    """May the request's principal do ``operation`` on the resource? Always true without an authorizer."""
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return True
    return authorizer.authorize(ctx.principal, ctx.client_host, operation, resource_type, name)


def allowed_any(ctx: Any, operation: AclOperation, resource_type: ResourceType) -> bool:
    """May the principal do ``operation`` on at least one resource of the type (authorizeByResourceType)?"""
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return True
    return authorizer.authorize_any(ctx.principal, ctx.client_host, operation, resource_type)


def authorized_operations(
    resource_type: ResourceType, resource_name: str | None = None, ctx: Any = None
) -> int:
    """The bitfield of what the caller may do on one resource: without an authorizer (or without a
    ``ctx``), everything the resource type supports; with one, the supported operations it allows."""
    supported = SUPPORTED_OPERATIONS[resource_type]
    if ctx is None or ctx.broker.authorizer is None:
        return to_bitfield(supported)
    name = resource_name if resource_name is not None else CLUSTER_NAME
    return to_bitfield(op for op in supported if allowed(ctx, op, resource_type, name))


def field_value(
    requested: bool, resource_type: ResourceType, resource_name: str | None = None, ctx: Any = None
) -> int:
    """What goes in a response's authorized-operations field: the bitfield if asked for, else OMITTED."""
    return authorized_operations(resource_type, resource_name, ctx) if requested else OMITTED
