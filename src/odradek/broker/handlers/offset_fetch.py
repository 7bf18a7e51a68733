"""OffsetFetch: one group (v1-v7) or several (v8+); a null topic list means every committed partition.

With ``require_stable`` (v7+), a partition whose offset a transaction is about to change answers
UNSTABLE_OFFSET_COMMIT, so a consumer does not start from an offset that is about to move.

With an authorizer, as Kafka: DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) and on each topic:
a topic named without it answers TOPIC_AUTHORIZATION_FAILED (after the others), and an "every committed
partition" answer leaves it out.
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, NONE, TOPIC_AUTHORIZATION_FAILED, refused

UNSTABLE_OFFSET_COMMIT = 88
DESCRIBE = authz.AclOperation.DESCRIBE


def _group_offsets(ctx: Any, group_id: str, topics: Any, require_stable: bool) -> list[dict[str, Any]]:
    offsets = ctx.broker.groups.offsets
    if topics is None:
        wanted: dict[str, list[int]] = {}
        for topic, partition in offsets.partitions(group_id):
            wanted.setdefault(topic, []).append(partition)
        pairs = list(wanted.items())
        hidden = refused(ctx, DESCRIBE, authz.ResourceType.TOPIC, wanted)
        pairs = [(name, partitions) for name, partitions in pairs if name not in hidden]
        denied: list[tuple[str, list[int]]] = []
    else:
        pairs = [(t.name, list(t.partition_indexes)) for t in topics]
        hidden = refused(ctx, DESCRIBE, authz.ResourceType.TOPIC, (name for name, _ in pairs))
        denied = [(name, partitions) for name, partitions in pairs if name in hidden]
        pairs = [(name, partitions) for name, partitions in pairs if name not in hidden]
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
    for name, partitions in denied:
        out.append(
            {
                "name": name,
                "partitions": [_refused(index, TOPIC_AUTHORIZATION_FAILED) for index in partitions],
            }
        )
    return out


def _refused(index: int, code: int) -> dict[str, Any]:
    return {
        "partition_index": index,
        "committed_offset": -1,
        "committed_leader_epoch": -1,
        "metadata": "",
        "error_code": code,
    }


def _group_refused(ctx: Any, group_id: str) -> bool:
    return not authz.allowed(ctx, DESCRIBE, authz.ResourceType.GROUP, group_id)


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
            if _group_refused(ctx, g.group_id):
                out.append({"group_id": g.group_id, "topics": [], "error_code": GROUP_AUTHORIZATION_FAILED})
                continue
            error = _member_error(ctx, g)
            topics = _group_offsets(ctx, g.group_id, g.topics, stable) if error == NONE else []
            out.append({"group_id": g.group_id, "topics": topics, "error_code": error})
        return {"throttle_time": 0, "groups": out}
    if _group_refused(ctx, request.group_id):
        code = GROUP_AUTHORIZATION_FAILED
        if ctx.api_version >= 2:  # the top-level error code is v2+; v1 says it per partition
            return {"throttle_time": 0, "topics": [], "error_code": code}
        refusal = [
            {"name": t.name, "partitions": [_refused(i, code) for i in t.partition_indexes]}
            for t in request.topics or ()
        ]
        return {"throttle_time": 0, "topics": refusal, "error_code": code}
    topics = _group_offsets(ctx, request.group_id, request.topics, stable)
    return {"throttle_time": 0, "topics": topics, "error_code": NONE}
