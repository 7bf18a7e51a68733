"""ConsumerGroupDescribe (KIP-848): epochs, assignor, and each member's current and target assignment.

With an authorizer, as Kafka: DESCRIBE on each group (refused groups answered first, with
GROUP_AUTHORIZATION_FAILED), and a group whose assignments name a topic the principal may not describe is
answered TOPIC_AUTHORIZATION_FAILED with no members, so that no topic name leaks."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, NONE, TOPIC_AUTHORIZATION_FAILED, refused

GROUP_ID_NOT_FOUND = 69
GROUP = authz.ResourceType.GROUP


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
    denied = refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.GROUP, request.group_ids)
    out = [
        _refusal(group_id, GROUP_AUTHORIZATION_FAILED, None)
        for group_id in request.group_ids
        if group_id in denied
    ]
    for group_id in request.group_ids:
        if group_id in denied:
            continue
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
                    "authorized_operations": authz.field_value(
                        asked, authz.ResourceType.GROUP, group_id, ctx
                    ),
                }
            )
            continue
        if broker.authorizer is not None:
            named = {
                by_id[t].name
                for m in g.members.values()
                for assignment in (m.assigned, g.target.get(m.member_id, {}))
                for t in assignment
                if t in by_id
            }
            if refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, named):
                message = "The group has described topic(s) that the client is not authorized to describe."
                out.append(_refusal(group_id, TOPIC_AUTHORIZATION_FAILED, message))
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
                "authorized_operations": authz.field_value(asked, GROUP, group_id, ctx),
            }
        )
    return {"throttle_time": 0, "groups": out}


def _refusal(group_id: str, code: int, message: str | None) -> dict[str, Any]:
    return {
        "error_code": code,
        "error_message": message,
        "group_id": group_id,
        "group_state": "",
        "group_epoch": 0,
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
        "authorized_operations": authz.OMITTED,
    }
