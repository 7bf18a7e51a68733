"""FindCoordinator: this broker coordinates every group and transactional id (v0-v3 one key, v4 batched)."""

from __future__ import annotations

from typing import Any

from ._common import INVALID_REQUEST, NONE

GROUP = 0
TRANSACTION = 1


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    b = ctx.broker

    def entry(key: str, key_type: int) -> dict[str, Any]:
        if key_type not in (GROUP, TRANSACTION):
            return {
                "key": key,
                "node_id": -1,
                "host": "",
                "port": -1,
                "error_code": INVALID_REQUEST,
                "error_message": f"Unknown key type {key_type}",
            }
        return {
            "key": key,
            "node_id": b.node_id,
            "host": ctx.host,
            "port": ctx.port,
            "error_code": NONE,
            "error_message": None,
        }

    key_type = getattr(request, "key_type", GROUP)
    if hasattr(request, "coordinator_keys"):
        return {"throttle_time": 0, "coordinators": [entry(k, key_type) for k in request.coordinator_keys]}
    e = entry(request.key, key_type)
    return {"throttle_time": 0, **{k: v for k, v in e.items() if k != "key"}}
