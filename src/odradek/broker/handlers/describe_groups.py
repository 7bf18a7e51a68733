"""DescribeGroups: state, protocol and members of classic groups."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, NONE, refused

GROUP_ID_NOT_FOUND = 69


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    coordinator = ctx.broker.groups.coordinator
    # v3+ may ask for the authorized-operations bitfield.
    asked = bool(getattr(request, "include_authorized_operations", False))
    # DESCRIBE on each group, as in Kafka, which answers the refused groups first.
    denied = refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.GROUP, request.groups)
    out = [
        {
            "error_code": GROUP_AUTHORIZATION_FAILED,
            "group_id": group_id,
            "group_state": "",
            "protocol_type": "",
            "protocol_data": "",
            "members": [],
            "authorized_operations": authz.OMITTED,
        }
        for group_id in request.groups
        if group_id in denied
    ]
    for group_id in request.groups:
        if group_id in denied:
            continue
        d = coordinator.describe(group_id)
        # v6+ reports GROUP_ID_NOT_FOUND for unknown groups; earlier versions answer Dead with no error.
        missing = coordinator.group(group_id) is None and ctx.api_version >= 6
        out.append(
            {
                "error_code": GROUP_ID_NOT_FOUND if missing else NONE,
                "group_id": group_id,
                "group_state": d["state"],
                "protocol_type": d["protocol_type"],
                "protocol_data": d["protocol"],
                "members": d["members"],
                "authorized_operations": authz.field_value(asked, authz.ResourceType.GROUP, group_id, ctx),
            }
        )
    return {"throttle_time": 0, "groups": out}
