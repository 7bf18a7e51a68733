"""AddOffsetsToTxn: a consumer group's offsets will be committed with the producer's transaction."""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ._common import NONE, after_txn_persist


def handle(ctx: Any, request: Any) -> Any:
    txns = ctx.broker.txns
    error = txns.coordinator.add_offsets(
        now_ms(),
        request.transactional_id,
        request.producer_id,
        request.producer_epoch,
        request.group_id,
        ctx.api_version,
    )
    response = {"throttle_time": 0, "error_code": error}
    if error != NONE:
        return response
    return after_txn_persist(txns, response)
