"""OffsetCommit: validated against the group's generation, answered once the journal is fsynced.

As Kafka: READ on the group (else GROUP_AUTHORIZATION_FAILED for every partition, before anything is
looked at), and READ on each topic (else TOPIC_AUTHORIZATION_FAILED for its partitions)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import GROUP_AUTHORIZATION_FAILED, after_persist, check_offsets, log, refused

GROUP_ID_NOT_FOUND = 69


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    groups = broker.groups
    if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        _, topics_out = check_offsets(broker, request.topics, GROUP_AUTHORIZATION_FAILED, 0)
        return {"throttle_time": 0, "topics": topics_out}
    denied = refused(ctx, authz.AclOperation.READ, authz.ResourceType.TOPIC, (t.name for t in request.topics))
    generation = getattr(request, "generation_id_or_member_epoch", -1)
    member_id = getattr(request, "member_id", "")
    kind = groups.kind(request.group_id)
    if kind == "consumer":
        error = groups.consumer.validate_offset_commit(request.group_id, member_id, generation)
    elif kind is None and generation >= 0 and ctx.api_version >= 9:
        error = GROUP_ID_NOT_FOUND
    else:
        error = groups.run(
            groups.coordinator.validate_offset_commit,
            request.group_id,
            generation,
            member_id,
            getattr(request, "group_instance_id", None),
        )
    if error:
        log.info(
            "offset commit for group %s by %r (generation/epoch %d) refused with error %d",
            request.group_id,
            member_id,
            generation,
            error,
        )
    accepted, topics_out = check_offsets(broker, request.topics, error, now_ms(), denied)
    response = {"throttle_time": 0, "topics": topics_out}
    records = groups.offsets.commit(request.group_id, accepted)
    if not records:
        return response
    return after_persist(groups, records, response)
