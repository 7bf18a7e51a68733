"""Pieces every handler uses: Kafka error codes, partition lookup and the authorization filter.

The SASL codes live with the SASL session (security/session.py), which answers with them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ...coordinator.offsets import Committed
from .. import authz

log = logging.getLogger("odradek.broker")

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
OFFSET_METADATA_TOO_LARGE = 12
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
INVALID_TIMESTAMP = 32
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REQUEST = 42
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
SECURITY_DISABLED = 54
OPERATION_NOT_ATTEMPTED = 55
KAFKA_STORAGE_ERROR = 56
INVALID_RECORD = 87
UNKNOWN_TOPIC_ID = 100

LEADER_EPOCH = 0


# The messages Kafka's exceptions carry for the authorization errors (Errors.<name>.message()).
AUTHORIZATION_MESSAGES = {
    TOPIC_AUTHORIZATION_FAILED: "Topic authorization failed.",
    GROUP_AUTHORIZATION_FAILED: "Group authorization failed.",
    CLUSTER_AUTHORIZATION_FAILED: "Cluster authorization failed.",
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "Transactional Id authorization failed.",
}

NO_REFUSALS: frozenset[str] = frozenset()


def refused(
    ctx: Any, operation: authz.AclOperation, resource_type: authz.ResourceType, names: Iterable[Any]
) -> frozenset[str] | set[str]:
    """The names among ``names`` the request's principal may not ``operation`` (Kafka's filterByAuthorized,
    turned round): one check per distinct name, and none at all without an authorizer, so that the
    handlers' hot paths pay one attribute test."""
    if ctx.broker.authorizer is None:
        return NO_REFUSALS
    return {n for n in set(names) if not authz.allowed(ctx, operation, resource_type, n)}


def cluster_allowed(ctx: Any, operation: authz.AclOperation) -> bool:
    return authz.allowed(ctx, operation, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME)


def cluster_operations(ctx: Any, requested: bool) -> int:
    """cluster_authorized_operations of Metadata v8-10 and DescribeCluster: as Kafka, 0 for a principal
    that may not DESCRIBE the cluster, else what it may do there."""
    if not requested:
        return authz.OMITTED
    if not cluster_allowed(ctx, authz.AclOperation.DESCRIBE):
        return 0
    return authz.authorized_operations(authz.ResourceType.CLUSTER, None, ctx)


class CloseConnection(Exception):
    """The request is one Kafka answers by closing the connection; the message says why."""


def find_partition(broker: Any, topic: str, partition: int) -> Any | None:
    t = broker.state.topics.get(topic)
    if t is None or not 0 <= partition < len(t.partitions):
        return None
    return t.partitions[partition]


async def after_persist(groups: Any, records: list[bytes], response: dict[str, Any]) -> dict[str, Any]:
    """Answer only once the coordinator's journal records are on disk."""
    await groups.persist(records)
    return response


async def after_txn_persist(txns: Any, response: dict[str, Any]) -> dict[str, Any]:
    """Answer once the transaction coordinator's change is on disk (and its timeout scheduled)."""
    await txns.persist()
    txns.reschedule()
    return response


def check_offsets(
    broker: Any, topics: Any, error: int, now: int, denied: frozenset[str] | set[str] = NO_REFUSALS
) -> tuple[dict[tuple[str, int], Any], list]:
    """The per-partition answer of OffsetCommit and TxnOffsetCommit: TOPIC_AUTHORIZATION_FAILED for the
    ``denied`` topics, ``error`` for every other partition when the request as a whole is refused, else
    UNKNOWN_TOPIC_OR_PARTITION or OFFSET_METADATA_TOO_LARGE where they apply. Returns the accepted
    offsets by (topic, partition) and the response's topics."""
    max_metadata = broker.config["offset.metadata.max.bytes"]
    accepted: dict[tuple[str, int], Committed] = {}
    topics_out = []
    for t in topics:
        topic = broker.state.topics.get(t.name)
        topic_error = TOPIC_AUTHORIZATION_FAILED if t.name in denied else error
        parts_out = []
        for p in t.partitions:
            code = topic_error
            if code == NONE:
                metadata = p.committed_metadata or ""
                if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                    code = UNKNOWN_TOPIC_OR_PARTITION
                elif len(metadata.encode()) > max_metadata:
                    code = OFFSET_METADATA_TOO_LARGE
                else:
                    epoch = getattr(p, "committed_leader_epoch", -1)
                    accepted[(t.name, p.partition_index)] = Committed(
                        p.committed_offset, epoch, metadata, now
                    )
            parts_out.append({"partition_index": p.partition_index, "error_code": code})
        topics_out.append({"name": t.name, "partitions": parts_out})
    return accepted, topics_out
