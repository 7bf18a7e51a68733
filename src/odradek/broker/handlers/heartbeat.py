"""Heartbeat: keeps a member's session alive and tells it when a rebalance has started."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": GROUP_AUTHORIZATION_FAILED}
    error = groups.run(
        groups.coordinator.heartbeat,
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return {"throttle_time": 0, "error_code": error}
