"""AddOffsetsToTxn: a consumer group's offsets will be committed with the producer's transaction.

As Kafka: WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then READ on the
group (else GROUP_AUTHORIZATION_FAILED)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import (
    GROUP_AUTHORIZATION_FAILED,
    NONE,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    after_txn_persist,
)


def handle(ctx: Any, request: Any) -> Any:
    txns = ctx.broker.txns
    if not authz.allowed(
        ctx, authz.AclOperation.WRITE, authz.ResourceType.TRANSACTIONAL_ID, request.transactional_id
    ):
        return {"throttle_time": 0, "error_code": TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": GROUP_AUTHORIZATION_FAILED}
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
