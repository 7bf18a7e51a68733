"""InitProducerId: a fresh id for idempotent producers; for transactional ones, the id's next epoch."""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ._common import NONE, after_txn_persist, log


def handle(ctx: Any, request: Any) -> Any:
    txns = ctx.broker.txns
    tid = request.transactional_id
    timeout = request.transaction_timeout
    timeout_ms = int(timeout.total_seconds() * 1000) if hasattr(timeout, "total_seconds") else int(timeout)
    if tid is None:
        return _response(NONE, txns.producer_ids.allocate(), 0)
    result = txns.coordinator.init_producer_id(
        now_ms(),
        tid,
        timeout_ms,
        getattr(request, "producer_id", -1),
        getattr(request, "producer_epoch", -1),
        ctx.api_version,
    )
    if result.completion is not None:
        log.info("transactional id %s re-initialised while a transaction was open: aborting it", tid)
        txns.finish_in_background(result.completion)
    return after_txn_persist(txns, _response(result.error_code, result.producer_id, result.producer_epoch))


def _response(error: int, producer_id: int, epoch: int) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": error, "producer_id": producer_id, "producer_epoch": epoch}
