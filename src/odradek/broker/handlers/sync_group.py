"""SyncGroup: the leader's assignments reach every member of the generation."""

from __future__ import annotations

from typing import Any

from ...coordinator.groups import SyncResult
from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED


def handle(ctx: Any, request: Any) -> Any:
    groups = ctx.broker.groups
    # READ on the group, as in Kafka, which first refuses a v5+ request without protocol type and name.
    named = ctx.api_version < 5 or (
        getattr(request, "protocol_type", None) is not None
        and getattr(request, "protocol_name", None) is not None
    )
    if named and not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        return {
            "throttle_time": 0,
            "error_code": GROUP_AUTHORIZATION_FAILED,
            "protocol_type": None,
            "protocol_name": None,
            "assignment": b"",
        }
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
