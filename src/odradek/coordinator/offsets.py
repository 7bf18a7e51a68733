"""Committed offsets: a plain in-memory map plus the journal records that make each change durable.

Pure logic: every change returns the records to append; replaying those records rebuilds the same map.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Committed:
    offset: int
    leader_epoch: int
    metadata: str
    commit_ms: int


class OffsetStore:
    def __init__(self) -> None:
        self.groups: dict[str, dict[TopicPartition, Committed]] = {}

    # --- changes (each returns journal records) ---------------------------------------------------

    def commit(self, group_id: str, offsets: dict[TopicPartition, Committed]) -> list[bytes]:
        if not offsets:
            return []
        self.groups.setdefault(group_id, {}).update(offsets)
        return [_encode_commit(group_id, offsets)]

    def delete(self, group_id: str, partitions: Iterable[TopicPartition]) -> list[bytes]:
        committed = self.groups.get(group_id)
        gone = [tp for tp in dict.fromkeys(partitions) if committed is not None and tp in committed]
        if not gone:
            return []
        for tp in gone:
            del committed[tp]  # type: ignore[index]
        if not committed:
            del self.groups[group_id]
        return [json.dumps({"t": "del", "g": group_id, "p": gone}, separators=(",", ":")).encode()]

    def delete_group(self, group_id: str) -> list[bytes]:
        committed = self.groups.get(group_id)
        return self.delete(group_id, list(committed)) if committed else []

    def expire(self, group_id: str, older_than_ms: int) -> list[bytes]:
        """Drop a group's offsets committed before ``older_than_ms`` (offsets.retention.minutes)."""
        committed = self.groups.get(group_id, {})
        return self.delete(group_id, [tp for tp, c in committed.items() if c.commit_ms < older_than_ms])

    # --- queries ----------------------------------------------------------------------------------

    def fetch(self, group_id: str, tp: TopicPartition) -> Committed | None:
        return self.groups.get(group_id, {}).get(tp)

    def partitions(self, group_id: str) -> list[TopicPartition]:
        return sorted(self.groups.get(group_id, {}))

    # --- durability -------------------------------------------------------------------------------

    def replay(self, records: Iterable[bytes]) -> None:
        for raw in records:
            r = json.loads(raw)
            if r["t"] == "commit":
                g = self.groups.setdefault(r["g"], {})
                for topic, partition, offset, epoch, metadata, ts in r["o"]:
                    g[(topic, partition)] = Committed(offset, epoch, metadata, ts)
            elif r["t"] == "del":
                g = self.groups.get(r["g"], {})
                for topic, partition in r["p"]:
                    g.pop((topic, partition), None)
                if not g:
                    self.groups.pop(r["g"], None)

    def snapshot(self) -> list[bytes]:
        """The fewest records that rebuild the current state: what compaction writes."""
        return [_encode_commit(g, offsets) for g, offsets in self.groups.items() if offsets]


def _encode_commit(group_id: str, offsets: dict[TopicPartition, Committed]) -> bytes:
    rows = [[t, p, c.offset, c.leader_epoch, c.metadata, c.commit_ms] for (t, p), c in offsets.items()]
    return json.dumps({"t": "commit", "g": group_id, "o": rows}, separators=(",", ":")).encode()
