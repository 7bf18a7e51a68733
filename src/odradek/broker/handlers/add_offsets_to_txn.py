"""AddOffsetsToTxn: a consumer group's offsets will be committed with the producer's transaction."""

from __future__ import annotations

from typing import Any

from ._common import NONE, now_ms


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
    return _after_persist(txns, response)


async def _after_persist(txns: Any, response: dict[str, Any]) -> dict[str, Any]:
    await txns.persist()
    txns.reschedule()
    return response
