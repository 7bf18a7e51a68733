"""OffsetCommit: validated against the group's generation, answered once the journal is fsynced."""

from __future__ import annotations

from typing import Any

from ...coordinator.groups import NONE
from ...coordinator.offsets import Committed
from ._common import UNKNOWN_TOPIC_OR_PARTITION, after_persist, log, now_ms

OFFSET_METADATA_TOO_LARGE = 12
GROUP_ID_NOT_FOUND = 69


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    groups = broker.groups
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
    now = now_ms()
    max_metadata = broker.config["offset.metadata.max.bytes"]
    accepted: dict[tuple[str, int], Committed] = {}
    topics_out = []
    for t in request.topics:
        topic = broker.state.topics.get(t.name)
        parts_out = []
        for p in t.partitions:
            code = error
            if code == NONE:
                metadata = p.committed_metadata or ""
                if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                    code = UNKNOWN_TOPIC_OR_PARTITION
                elif len(metadata.encode()) > max_metadata:
                    code = OFFSET_METADATA_TOO_LARGE
                else:
                    epoch = getattr(p, "committed_leader_epoch", -1)
                    accepted[(t.name, p.partition_index)] = Committed(
                        p.committed_offset, epoch, metadata, now
                    )
            parts_out.append({"partition_index": p.partition_index, "error_code": code})
        topics_out.append({"name": t.name, "partitions": parts_out})
    response = {"throttle_time": 0, "topics": topics_out}
    records = groups.offsets.commit(request.group_id, accepted)
    if not records:
        return response
    return after_persist(groups, records, response)
