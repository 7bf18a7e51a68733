"""ListGroups: every group this coordinator knows, filtered by state (v4+) and type (v5+)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import NONE, cluster_allowed


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    wanted = {s.lower() for s in (getattr(request, "states_filter", None) or ())}
    types = {t.lower() for t in (getattr(request, "types_filter", None) or ())}
    groups = ctx.broker.groups
    listed = [
        (g.group_id, g.protocol_type or "", g.state.value, "classic")
        for g in groups.coordinator.groups.values()
    ]
    listed += [(g.group_id, "consumer", g.state, "consumer") for g in groups.consumer.groups.values()]
    if not cluster_allowed(ctx, authz.AclOperation.DESCRIBE):
        # As Kafka: DESCRIBE on the cluster lists every group; without it, those the principal may describe.
        group = authz.ResourceType.GROUP
        listed = [g for g in listed if authz.allowed(ctx, authz.AclOperation.DESCRIBE, group, g[0])]
    out = [
        {"group_id": group_id, "protocol_type": protocol_type, "group_state": state, "group_type": group_type}
        for group_id, protocol_type, state, group_type in listed
        if not (wanted and state.lower() not in wanted) and not (types and group_type not in types)
    ]
    return {"throttle_time": 0, "error_code": NONE, "groups": out}
