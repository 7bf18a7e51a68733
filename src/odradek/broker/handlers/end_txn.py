"""EndTxn: commit or abort; answered once markers and offsets are durable (see broker.transactions).
WRITE on the transactional id is needed, as in Kafka (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import TRANSACTIONAL_ID_AUTHORIZATION_FAILED, log


def handle(ctx: Any, request: Any) -> Any:
    txns = ctx.broker.txns
    if not authz.allowed(
        ctx, authz.AclOperation.WRITE, authz.ResourceType.TRANSACTIONAL_ID, request.transactional_id
    ):
        return {"throttle_time": 0, "error_code": TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    error, completion = txns.coordinator.end_txn(
        now_ms(),
        request.transactional_id,
        request.producer_id,
        request.producer_epoch,
        request.committed,
        ctx.api_version,
    )
    if error:
        log.info(
            "EndTxn for %s (producer %d epoch %d) refused with error %d",
            request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            error,
        )
    if completion is None:
        return {"throttle_time": 0, "error_code": error}
    return _finish(txns, completion)


async def _finish(txns: Any, completion: Any) -> dict[str, Any]:
    await txns.finish(completion)
    txns.reschedule()
    return {"throttle_time": 0, "error_code": 0}
