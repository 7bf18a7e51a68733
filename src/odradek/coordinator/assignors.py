"""Server-side assignors for KIP-848 consumer groups: ``uniform`` (the default) and ``range``.

An assignor maps each member's subscribed topics (id, partition count) and the previous target to a new
target. Both are deterministic: the same input always gives the same assignment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

TopicId = uuid.UUID
Partitions = dict[TopicId, frozenset[int]]
Subscriptions = dict[str, list[tuple[TopicId, int]]]
Assignor = Callable[[Subscriptions, dict[str, Partitions]], dict[str, Partitions]]


def range_assignor(subscriptions: Subscriptions, current: dict[str, Partitions]) -> dict[str, Partitions]:
    """Per topic, its subscribers (by member id) take contiguous ranges; the first ones one extra."""
    out: dict[str, dict[TopicId, set[int]]] = {m: {} for m in subscriptions}
    counts: dict[TopicId, int] = {}
    subscribers: dict[TopicId, list[str]] = {}
    for member, topics in subscriptions.items():
        for topic_id, n in topics:
            counts[topic_id] = n
            subscribers.setdefault(topic_id, []).append(member)
    for topic_id, members in subscribers.items():
        members.sort()
        n = counts[topic_id]
        per, extra = divmod(n, len(members))
        start = 0
        for i, member in enumerate(members):
            size = per + (1 if i < extra else 0)
            if size:
                out[member][topic_id] = set(range(start, start + size))
            start += size
    return _freeze(out)


def uniform_assignor(subscriptions: Subscriptions, current: dict[str, Partitions]) -> dict[str, Partitions]:
    """Balanced and sticky: members keep what they had (up to their fair share), the rest is spread to
    whichever eligible member has the fewest partitions."""
    eligible: dict[tuple[TopicId, int], list[str]] = {}
    for member, topics in sorted(subscriptions.items()):
        for topic_id, n in topics:
            for p in range(n):
                eligible.setdefault((topic_id, p), []).append(member)
    members = sorted(subscriptions)
    if not members:
        return {}
    total = len(eligible)
    quota_floor, extra = divmod(total, len(members))
    owned: dict[str, set[tuple[TopicId, int]]] = {m: set() for m in members}
    taken: set[tuple[TopicId, int]] = set()
    # Keep previous partitions still eligible, up to the fair share (extra slots go first come).
    extras_left = extra
    for member in members:
        keep = sorted(
            (t, p)
            for t, parts in current.get(member, {}).items()
            for p in parts
            if member in eligible.get((t, p), ()) and (t, p) not in taken
        )
        limit = quota_floor + (1 if extras_left > 0 and len(keep) > quota_floor else 0)
        if len(keep) > quota_floor and extras_left > 0:
            extras_left -= 1
        for tp in keep[:limit]:
            owned[member].add(tp)
            taken.add(tp)
    for tp in sorted(eligible, key=lambda x: (str(x[0]), x[1])):
        if tp in taken:
            continue
        member = min(eligible[tp], key=lambda m: (len(owned[m]), m))
        owned[member].add(tp)
        taken.add(tp)
    # Even out what stickiness and uneven subscriptions left unbalanced.
    moved = True
    while moved:
        moved = False
        for rich in sorted(members, key=lambda m: -len(owned[m])):
            for tp in sorted(owned[rich], key=lambda x: (str(x[0]), x[1])):
                poor = min(eligible[tp], key=lambda m: (len(owned[m]), m))
                if len(owned[poor]) + 1 < len(owned[rich]):
                    owned[rich].discard(tp)
                    owned[poor].add(tp)
                    moved = True
                    break
            if moved:
                break
    out: dict[str, dict[TopicId, set[int]]] = {m: {} for m in members}
    for member, tps in owned.items():
        for topic_id, p in tps:
            out[member].setdefault(topic_id, set()).add(p)
    return _freeze(out)


def _freeze(out: dict[str, dict[TopicId, set[int]]]) -> dict[str, Partitions]:
    return {m: {t: frozenset(ps) for t, ps in topics.items() if ps} for m, topics in out.items()}


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform_assignor, "range": range_assignor}
DEFAULT_ASSIGNOR = "uniform"
