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
        # Offsets sent with a transaction (TxnOffsetCommit), applied only if it commits.
        self.pending: dict[tuple[str, int], dict[TopicPartition, Committed]] = {}

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

    def stage(self, group_id: str, producer_id: int, offsets: dict[TopicPartition, Committed]) -> list[bytes]:
        if not offsets:
            return []
        self.pending.setdefault((group_id, producer_id), {}).update(offsets)
        return [_encode_rows("txn", group_id, offsets, producer_id)]

    def complete_txn(self, group_id: str, producer_id: int, commit: bool) -> list[bytes]:
        staged = self.pending.pop((group_id, producer_id), None)
        if staged is None:
            return []
        if commit:
            self.groups.setdefault(group_id, {}).update(staged)
        record = {"t": "txn_end", "g": group_id, "pid": producer_id, "commit": commit}
        return [json.dumps(record, separators=(",", ":")).encode()]

    def has_pending(self, group_id: str, tp: TopicPartition) -> bool:
        return any(g == group_id and tp in staged for (g, _), staged in self.pending.items())

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
            elif r["t"] == "txn":
                staged = self.pending.setdefault((r["g"], r["pid"]), {})
                for topic, partition, offset, epoch, metadata, ts in r["o"]:
                    staged[(topic, partition)] = Committed(offset, epoch, metadata, ts)
            elif r["t"] == "txn_end":
                staged = self.pending.pop((r["g"], r["pid"]), None)
                if staged is not None and r["commit"]:
                    self.groups.setdefault(r["g"], {}).update(staged)
            elif r["t"] == "del":
                g = self.groups.get(r["g"], {})
                for topic, partition in r["p"]:
                    g.pop((topic, partition), None)
                if not g:
                    self.groups.pop(r["g"], None)

    def snapshot(self) -> list[bytes]:
        """The fewest records that rebuild the current state: what compaction writes."""
        live = [_encode_rows("commit", g, offsets) for g, offsets in self.groups.items() if offsets]
        return live + [_encode_rows("txn", g, staged, pid) for (g, pid), staged in self.pending.items()]


def _encode_commit(group_id: str, offsets: dict[TopicPartition, Committed]) -> bytes:
    return _encode_rows("commit", group_id, offsets)


def _encode_rows(kind: str, group_id: str, offsets: dict[TopicPartition, Committed], pid: int = -1) -> bytes:
    rows = [[t, p, c.offset, c.leader_epoch, c.metadata, c.commit_ms] for (t, p), c in offsets.items()]
    record: dict[str, object] = {"t": kind, "g": group_id, "o": rows}
    if kind == "txn":
        record["pid"] = pid
    return json.dumps(record, separators=(",", ":")).encode()
