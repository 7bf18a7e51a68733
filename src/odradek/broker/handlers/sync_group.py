"""SyncGroup: the leader's assignments reach every member of the generation."""

from __future__ import annotations

from typing import Any

from ...coordinator.groups import SyncResult


def handle(ctx: Any, request: Any) -> Any:
    groups = ctx.broker.groups
    pending = groups.call(
        groups.coordinator.sync,
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        {a.member_id: a.assignment for a in request.assignments},
    )
    return _respond(pending)


async def _respond(pending: Any) -> dict[str, Any]:
    r: SyncResult = await pending
    return {
        "throttle_time": 0,
        "error_code": r.error_code,
        "protocol_type": r.protocol_type,
        "protocol_name": r.protocol_name,
        "assignment": r.assignment,
    }
