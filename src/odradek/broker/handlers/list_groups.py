"""ListGroups: every group this coordinator knows, optionally filtered by state (v4+)."""

from __future__ import annotations

from typing import Any

from ._common import NONE


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    wanted = {s.lower() for s in (getattr(request, "states_filter", None) or ())}
    groups = []
    for g in ctx.broker.groups.coordinator.groups.values():
        if wanted and g.state.value.lower() not in wanted:
            continue
        groups.append(
            {
                "group_id": g.group_id,
                "protocol_type": g.protocol_type or "",
                "group_state": g.state.value,
                "group_type": "classic",
            }
        )
    return {"throttle_time": 0, "error_code": NONE, "groups": groups}
