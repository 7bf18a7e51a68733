"""DeleteGroups: only Empty groups; their committed offsets go with them, durably."""

from __future__ import annotations

from typing import Any

from ...coordinator.groups import NON_EMPTY_GROUP, NONE
from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, after_persist, refused


def handle(ctx: Any, request: Any) -> Any:
    groups = ctx.broker.groups
    # DELETE on each group, as in Kafka, which answers the refused groups first.
    denied = refused(ctx, authz.AclOperation.DELETE, authz.ResourceType.GROUP, request.groups_names)
    results = [
        {"group_id": group_id, "error_code": GROUP_AUTHORIZATION_FAILED}
        for group_id in request.groups_names
        if group_id in denied
    ]
    records: list[bytes] = []
    for group_id in request.groups_names:
        if group_id in denied:
            continue
        if groups.kind(group_id) == "consumer":
            code = NONE if groups.consumer.delete(group_id) else NON_EMPTY_GROUP
            groups.consumer_changed([group_id])
        else:
            code = groups.coordinator.delete(group_id)
            if code == NONE:
                groups.group_deleted(group_id)
        if code == NONE:
            records += groups.offsets.delete_group(group_id)
        results.append({"group_id": group_id, "error_code": code})
    response = {"throttle_time": 0, "results": results}
    if not records:
        return response
    return after_persist(groups, records, response)
