"""DescribeProducers: the idempotent/transactional producers a partition currently remembers.
READ on the topic is needed, as in Kafka (else TOPIC_AUTHORIZATION_FAILED for its partitions)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import (
    AUTHORIZATION_MESSAGES,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    find_partition,
    refused,
)


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    denied = refused(ctx, authz.AclOperation.READ, authz.ResourceType.TOPIC, (t.name for t in request.topics))
    topics_out = []
    for t in request.topics:
        parts = []
        for index in t.partition_indexes:
            if t.name in denied:
                code = TOPIC_AUTHORIZATION_FAILED
                parts.append(
                    {
                        "partition_index": index,
                        "error_code": code,
                        "error_message": AUTHORIZATION_MESSAGES[code],
                        "active_producers": [],
                    }
                )
                continue
            plog = find_partition(ctx.broker, t.name, index)
            if plog is None:
                parts.append(
                    {
                        "partition_index": index,
                        "error_code": UNKNOWN_TOPIC_OR_PARTITION,
                        "error_message": None,
                        "active_producers": [],
                    }
                )
                continue
            producers = []
            for e in plog.producers.entries.values():
                producers.append(
                    {
                        "producer_id": e.producer_id,
                        "producer_epoch": e.epoch,
                        "last_sequence": e.last_seq,
                        "last_timestamp": e.batches[-1].timestamp if e.batches else -1,
                        "coordinator_epoch": e.coordinator_epoch,
                        "current_txn_start_offset": e.txn_first_offset
                        if e.txn_first_offset is not None
                        else -1,
                    }
                )
            parts.append(
                {
                    "partition_index": index,
                    "error_code": NONE,
                    "error_message": None,
                    "active_producers": producers,
                }
            )
        topics_out.append({"name": t.name, "partitions": parts})
    return {"throttle_time": 0, "topics": topics_out}
