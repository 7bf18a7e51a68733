"""OffsetForLeaderEpoch: the end offset of a leader epoch, which clients use to detect log truncation.

One node, one leader epoch (``LEADER_EPOCH``) for the whole life of every partition: its end offset is
the log end offset; a later epoch is unknown (UNDEFINED: -1, -1); an earlier one ends where the log
starts (Kafka answers the requested epoch with the first offset of the next one). A current_leader_epoch
other than -1 is checked as Kafka checks it: older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import (
    LEADER_EPOCH,
    NO_REFUSALS,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    cluster_allowed,
    find_partition,
    refused,
)

FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


def epoch_end(
    current_leader_epoch: int, leader_epoch: int, log_start: int, log_end: int
) -> tuple[int, int, int]:
    """(error code, epoch, end offset) for one partition; pure."""
    if current_leader_epoch != -1:
        if current_leader_epoch < LEADER_EPOCH:
            return FENCED_LEADER_EPOCH, UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if current_leader_epoch > LEADER_EPOCH:
            return UNKNOWN_LEADER_EPOCH, UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if leader_epoch == LEADER_EPOCH:
        return NONE, LEADER_EPOCH, log_end
    if leader_epoch == UNDEFINED_EPOCH or leader_epoch > LEADER_EPOCH:
        return NONE, UNDEFINED_EPOCH, UNDEFINED_OFFSET
    return NONE, leader_epoch, log_start


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    # As Kafka (KIP-320): CLUSTER_ACTION on the cluster (brokers) or DESCRIBE on the topic (consumers).
    denied = NO_REFUSALS
    if ctx.broker.authorizer is not None and not cluster_allowed(ctx, authz.AclOperation.CLUSTER_ACTION):
        denied = refused(
            ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, (t.topic for t in request.topics)
        )
    topics_out = []
    for t in request.topics:
        parts_out = []
        for p in t.partitions:
            plog = find_partition(ctx.broker, t.topic, p.partition)
            if denied and t.topic in denied:
                code, epoch, end = TOPIC_AUTHORIZATION_FAILED, UNDEFINED_EPOCH, UNDEFINED_OFFSET
            elif plog is None:
                code, epoch, end = UNKNOWN_TOPIC_OR_PARTITION, UNDEFINED_EPOCH, UNDEFINED_OFFSET
            else:
                code, epoch, end = epoch_end(
                    p.current_leader_epoch, p.leader_epoch, plog.log_start_offset, plog.log_end_offset
                )
            parts_out.append(
                {"error_code": code, "partition": p.partition, "leader_epoch": epoch, "end_offset": end}
            )
        topics_out.append({"topic": t.topic, "partitions": parts_out})
    return {"throttle_time": 0, "topics": topics_out}
