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


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    if hasattr(request, "groups"):
        return {
            "throttle_time": 0,
            "groups": [
                {
                    "group_id": g.group_id,
                    "topics": _group_offsets(ctx, g.group_id, g.topics),
                    "error_code": NONE,
                }
                for g in request.groups
            ],
        }
    return {
        "throttle_time": 0,
        "topics": _group_offsets(ctx, request.group_id, request.topics),
        "error_code": NONE,
    }
