"""ListTransactions: transactional ids, filtered by state, producer id and (v1) running time; as in Kafka,
only the ids the principal may DESCRIBE are listed."""

from __future__ import annotations

from typing import Any

from ...coordinator.transactions import TxnState
from .. import authz
from ..clock import now_ms
from ._common import NONE

_STATES = {s.value for s in TxnState}


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    states = set(request.state_filters or ())
    pids = set(request.producer_id_filters or ())
    min_duration_ms = getattr(request, "duration_filter", -1)
    now = now_ms()
    out = []
    for t in ctx.broker.txns.coordinator.txns.values():
        if states and t.state.value not in states:
            continue
        if pids and t.producer_id not in pids:
            continue
        if min_duration_ms >= 0 and (t.start_ms < 0 or now - t.start_ms < min_duration_ms):
            continue
        if not authz.allowed(
            ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TRANSACTIONAL_ID, t.transactional_id
        ):
            continue
        out.append(
            {
                "transactional_id": t.transactional_id,
                "producer_id": t.producer_id,
                "transaction_state": t.state.value,
            }
        )
    return {
        "throttle_time": 0,
        "error_code": NONE,
        "unknown_state_filters": sorted(states - _STATES),
        "transaction_states": out,
    }
