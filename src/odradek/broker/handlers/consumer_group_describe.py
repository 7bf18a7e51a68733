"""ConsumerGroupDescribe (KIP-848): epochs, assignor, and each member's current and target assignment."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import NONE

GROUP_ID_NOT_FOUND = 69


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    by_id = broker.state.topics_by_id

    def partitions(assignment: dict[Any, frozenset[int]]) -> dict[str, Any]:
        return {
            "topic_partitions": [
                {"topic_id": t, "topic_name": by_id[t].name if t in by_id else "", "partitions": sorted(p)}
                for t, p in assignment.items()
            ]
        }

    asked = bool(request.include_authorized_operations)
    out = []
    for group_id in request.group_ids:
        g = broker.groups.consumer.groups.get(group_id)
        if g is None:
            out.append(
                {
                    "error_code": GROUP_ID_NOT_FOUND,
                    "error_message": f"Group {group_id} not found.",
                    "group_id": group_id,
                    "group_state": "Dead",
                    "group_epoch": -1,
                    "assignment_epoch": -1,
                    "assignor_name": "",
                    "members": [],
                    "authorized_operations": authz.field_value(asked, authz.ResourceType.GROUP, group_id),
                }
            )
            continue
        out.append(
            {
                "error_code": NONE,
                "error_message": None,
                "group_id": group_id,
                "group_state": g.state,
                "group_epoch": g.group_epoch,
                "assignment_epoch": g.assignment_epoch,
                "assignor_name": g.assignor_name,
                "members": [
                    {
                        "member_id": m.member_id,
                        "instance_id": m.instance_id,
                        "rack_id": m.rack_id,
                        "member_epoch": m.member_epoch,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "subscribed_topic_names": list(m.subscribed_topic_names),
                        "subscribed_topic_regex": None,
                        "assignment": partitions(m.assigned),
                        "target_assignment": partitions(g.target.get(m.member_id, {})),
                        "member_type": 1,
                    }
                    for m in g.members.values()
                ],
                "authorized_operations": authz.field_value(asked, authz.ResourceType.GROUP, group_id),
            }
        )
    return {"throttle_time": 0, "groups": out}
