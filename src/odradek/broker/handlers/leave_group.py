"""LeaveGroup: one member (v0-v2) or a batch of members, static ones by instance id (v3+)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": GROUP_AUTHORIZATION_FAILED, "members": []}
    if hasattr(request, "members"):
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        members = [(request.member_id, None)]
    error, errors = groups.run(groups.coordinator.leave, request.group_id, members)
    if not hasattr(request, "members"):
        return {"throttle_time": 0, "error_code": error if error else errors[0]}
    return {
        "throttle_time": 0,
        "error_code": error,
        "members": [
            {"member_id": m, "group_instance_id": i, "error_code": e}
            for (m, i), e in zip(members, errors, strict=True)
        ],
    }
