"""OffsetFetch: one group (v1-v7) or several (v8); a null topic list means every committed partition."""

from __future__ import annotations

from typing import Any

from ._common import NONE


def _group_offsets(ctx: Any, group_id: str, topics: Any) -> list[dict[str, Any]]:
    offsets = ctx.broker.groups.offsets
    if topics is None:
        wanted: dict[str, list[int]] = {}
        for topic, partition in offsets.partitions(group_id):
            wanted.setdefault(topic, []).append(partition)
        pairs = list(wanted.items())
    else:
        pairs = [(t.name, list(t.partition_indexes)) for t in topics]
    out = []
    for name, partitions in pairs:
        parts = []
        for index in partitions:
            c = offsets.fetch(group_id, (name, index))
            parts.append(
                {
                    "partition_index": index,
                    "committed_offset": c.offset if c else -1,
                    "committed_leader_epoch": c.leader_epoch if c else -1,
                    "metadata": c.metadata if c else "",
                    "error_code": NONE,
                }
            )
        out.append({"name": name, "partitions": parts})
    return out


def _member_error(ctx: Any, group: Any) -> int:
    """v9+: a KIP-848 member names itself and its epoch; a stale one must not read offsets."""
    member_id = getattr(group, "member_id", None)
    if not member_id or ctx.broker.groups.kind(group.group_id) != "consumer":
        return NONE
    return ctx.broker.groups.consumer.validate_offset_commit(group.group_id, member_id, group.member_epoch)


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    if hasattr(request, "groups"):
        out = []
        for g in request.groups:
            error = _member_error(ctx, g)
            topics = _group_offsets(ctx, g.group_id, g.topics) if error == NONE else []
            out.append({"group_id": g.group_id, "topics": topics, "error_code": error})
        return {"throttle_time": 0, "groups": out}
    return {
        "throttle_time": 0,
        "topics": _group_offsets(ctx, request.group_id, request.topics),
        "error_code": NONE,
    }
