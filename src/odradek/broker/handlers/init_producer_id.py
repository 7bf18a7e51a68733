"""InitProducerId: a fresh id for idempotent producers; for transactional ones, the id's next epoch.

As Kafka: a transactional id needs WRITE on it (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent
producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic (else CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import (
    CLUSTER_AUTHORIZATION_FAILED,
    NONE,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    after_txn_persist,
    cluster_allowed,
    log,
)


def handle(ctx: Any, request: Any) -> Any:
    txns = ctx.broker.txns
    tid = request.transactional_id
    timeout = request.transaction_timeout
    timeout_ms = int(timeout.total_seconds() * 1000) if hasattr(timeout, "total_seconds") else int(timeout)
    if ctx.broker.authorizer is not None:
        if tid is not None:
            if not authz.allowed(ctx, authz.AclOperation.WRITE, authz.ResourceType.TRANSACTIONAL_ID, tid):
                return _response(TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1)
        elif not (
            cluster_allowed(ctx, authz.AclOperation.IDEMPOTENT_WRITE)
            or authz.allowed_any(ctx, authz.AclOperation.WRITE, authz.ResourceType.TOPIC)
        ):
            return _response(CLUSTER_AUTHORIZATION_FAILED, -1, -1)
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
