"""OffsetFetch: one group (v1-v7) or several (v8+); a null topic list means every committed partition.

With ``require_stable`` (v7+), a partition whose offset a transaction is about to change answers
UNSTABLE_OFFSET_COMMIT, so a consumer does not start from an offset that is about to move.
"""

from __future__ import annotations

from typing import Any

from ._common import NONE

UNSTABLE_OFFSET_COMMIT = 88


def _group_offsets(ctx: Any, group_id: str, topics: Any, require_stable: bool) -> list[dict[str, Any]]:
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
            unstable = require_stable and offsets.has_pending(group_id, (name, index))
            parts.append(
                {
                    "partition_index": index,
                    "committed_offset": c.offset if c and not unstable else -1,
                    "committed_leader_epoch": c.leader_epoch if c and not unstable else -1,
                    "metadata": c.metadata if c and not unstable else "",
                    "error_code": UNSTABLE_OFFSET_COMMIT if unstable else NONE,
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
    stable = bool(getattr(request, "require_stable", False))
    if hasattr(request, "groups"):
        out = []
        for g in request.groups:
            error = _member_error(ctx, g)
            topics = _group_offsets(ctx, g.group_id, g.topics, stable) if error == NONE else []
            out.append({"group_id": g.group_id, "topics": topics, "error_code": error})
        return {"throttle_time": 0, "groups": out}
    topics = _group_offsets(ctx, request.group_id, request.topics, stable)
    return {"throttle_time": 0, "topics": topics, "error_code": NONE}
