"""TxnOffsetCommit: offsets staged with a transaction, applied by its commit marker, dropped by abort.

v3+ (KIP-447) carries the consumer's group generation and member id, so a zombie whose consumer was
fenced out of the group cannot commit offsets even with a still-valid producer epoch.
"""

from __future__ import annotations

from typing import Any

from ...coordinator.offsets import Committed
from ._common import NONE, UNKNOWN_TOPIC_OR_PARTITION, after_persist, log, now_ms

OFFSET_METADATA_TOO_LARGE = 12


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    groups = broker.groups
    error = broker.txns.coordinator.verify_offsets(
        request.transactional_id, request.producer_id, request.producer_epoch
    )
    if error == NONE and ctx.api_version >= 3:
        error = _validate_member(groups, request)
    if error:
        log.info(
            "TxnOffsetCommit for group %s by %s refused with error %d",
            request.group_id,
            request.transactional_id,
            error,
        )
    now = now_ms()
    staged: dict[tuple[str, int], Committed] = {}
    topics_out = []
    for t in request.topics:
        topic = broker.state.topics.get(t.name)
        parts_out = []
        for p in t.partitions:
            code = error
            metadata = p.committed_metadata or ""
            if code == NONE:
                if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                    code = UNKNOWN_TOPIC_OR_PARTITION
                elif len(metadata.encode()) > broker.config["offset.metadata.max.bytes"]:
                    code = OFFSET_METADATA_TOO_LARGE
                else:
                    epoch = getattr(p, "committed_leader_epoch", -1)
                    staged[(t.name, p.partition_index)] = Committed(p.committed_offset, epoch, metadata, now)
            parts_out.append({"partition_index": p.partition_index, "error_code": code})
        topics_out.append({"name": t.name, "partitions": parts_out})
    response = {"throttle_time": 0, "topics": topics_out}
    records = groups.offsets.stage(request.group_id, request.producer_id, staged)
    if not records:
        return response
    return after_persist(groups, records, response)


def _validate_member(groups: Any, request: Any) -> int:
    if groups.kind(request.group_id) == "consumer" and request.member_id:
        return groups.consumer.validate_offset_commit(
            request.group_id, request.member_id, request.generation_id
        )
    return groups.coordinator.validate_txn_offset_commit(
        request.group_id, request.generation_id, request.member_id, request.group_instance_id
    )
