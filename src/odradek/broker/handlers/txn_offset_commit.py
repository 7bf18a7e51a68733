"""TxnOffsetCommit: offsets staged with a transaction, applied by its commit marker, dropped by abort.

v3+ (KIP-447) carries the consumer's group generation and member id, so a zombie whose consumer was
fenced out of the group cannot commit offsets even with a still-valid producer epoch.
"""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ._common import NONE, after_persist, check_offsets, log


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
    staged, topics_out = check_offsets(broker, request.topics, error, now_ms())
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
