"""OffsetDelete: remove committed offsets of partitions the group no longer consumes.

As Kafka: DELETE on the group (else GROUP_AUTHORIZATION_FAILED for the request) and READ on each topic
(else TOPIC_AUTHORIZATION_FAILED for its partitions, whose offsets stay)."""

from __future__ import annotations

import struct
from typing import Any

from ...coordinator.groups import GROUP_ID_NOT_FOUND, GroupState
from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, NONE, TOPIC_AUTHORIZATION_FAILED, after_persist, refused

GROUP_SUBSCRIBED_TO_TOPIC = 86


def handle(ctx: Any, request: Any) -> Any:
    groups = ctx.broker.groups
    if not authz.allowed(ctx, authz.AclOperation.DELETE, authz.ResourceType.GROUP, request.group_id):
        return {"error_code": GROUP_AUTHORIZATION_FAILED, "throttle_time": 0, "topics": []}
    denied = refused(ctx, authz.AclOperation.READ, authz.ResourceType.TOPIC, (t.name for t in request.topics))
    group = groups.coordinator.group(request.group_id)
    if group is None:
        return {"error_code": GROUP_ID_NOT_FOUND, "throttle_time": 0, "topics": []}
    subscribed = _subscribed_topics(group)
    deletable = []
    topics_out = []
    for t in request.topics:
        if t.name in denied:
            code = TOPIC_AUTHORIZATION_FAILED
        else:
            code = GROUP_SUBSCRIBED_TO_TOPIC if t.name in subscribed else NONE
        if code == NONE:
            deletable += [(t.name, p.partition_index) for p in t.partitions]
        topics_out.append(
            {
                "name": t.name,
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": code} for p in t.partitions
                ],
            }
        )
    response = {"error_code": NONE, "throttle_time": 0, "topics": topics_out}
    records = groups.offsets.delete(request.group_id, deletable)
    if not records:
        return response
    return after_persist(groups, records, response)


def _subscribed_topics(group: Any) -> set[str]:
    """Topics named in the members' consumer-protocol subscriptions (version, topics array, ...)."""
    if group.state == GroupState.EMPTY or group.protocol_type != "consumer" or not group.protocol_name:
        return set()
    topics: set[str] = set()
    for m in group.members.values():
        try:
            topics.update(_subscription_topics(m.metadata_for(group.protocol_name)))
        except (KeyError, ValueError, IndexError, struct.error):  # metadata that is not a subscription
            continue
    return topics


def _subscription_topics(metadata: bytes) -> list[str]:
    pos = 2  # version
    (n,) = struct.unpack_from(">i", metadata, pos)
    pos += 4
    out = []
    for _ in range(n):
        (size,) = struct.unpack_from(">h", metadata, pos)
        pos += 2
        out.append(metadata[pos : pos + size].decode())
        pos += size
    return out
