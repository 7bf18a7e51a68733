"""Idempotent-producer state of one partition: who wrote what, so retries are not written twice.

For every producer id the partition keeps its epoch and the sequence ranges of its last five batches
(Kafka's window; a producer has at most five requests in flight). A retried batch that matches one of
them exactly is acknowledged with its original offset and not appended again. Pure logic: the state is
rebuilt from batch headers, so replaying the log's headers after a crash gives the same answers.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..protocol.records import BatchHeader

WINDOW = 5  # batches remembered per producer
INT32_MAX = 0x7FFFFFFF

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


@dataclass(frozen=True, slots=True)
class BatchMeta:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass
class ProducerEntry:
    producer_id: int
    epoch: int
    batches: deque[BatchMeta] = field(default_factory=lambda: deque(maxlen=WINDOW))
    last_update_ms: int = 0
    coordinator_epoch: int = -1
    txn_first_offset: int | None = None  # first offset of its open transaction on this partition

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A retry of a batch already in the log: answer with where it went."""

    first_offset: int
    last_offset: int


class ProducerStateError(Exception):
    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def next_seq(seq: int, count: int = 1) -> int:
    """Sequences wrap from Int32.MAX back to 0."""
    return (seq + count) % (INT32_MAX + 1)


class ProducerStateManager:
    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}

    def check(self, h: BatchHeader) -> Duplicate | None:
        """Raise ProducerStateError for a batch the log must refuse; a Duplicate for a retry; else None."""
        if h.producer_id < 0:
            return None
        entry = self.entries.get(h.producer_id)
        if entry is None:
            return None  # unknown (or expired) producer: any sequence starts its window
        if h.producer_epoch < entry.epoch:
            raise ProducerStateError(
                INVALID_PRODUCER_EPOCH,
                f"producer {h.producer_id} epoch {h.producer_epoch} is older than its epoch {entry.epoch}",
            )
        last_seq = next_seq(h.base_sequence, h.last_offset_delta) if h.base_sequence >= 0 else -1
        if h.producer_epoch > entry.epoch:
            if h.base_sequence != 0 and entry.epoch != -1 and not h.is_control:
                raise ProducerStateError(
                    OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"producer {h.producer_id}: a new epoch {h.producer_epoch} must start at sequence 0, "
                    f"got {h.base_sequence}",
                )
            return None
        if h.is_control:
            return None
        for b in entry.batches:
            if b.first_seq == h.base_sequence and b.last_seq == last_seq:
                return Duplicate(b.first_offset, b.last_offset)
        if not entry.batches and h.base_sequence != 0:
            # The epoch was bumped by a marker: the producer's sequences start again at 0.
            raise ProducerStateError(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {h.producer_id} epoch {h.producer_epoch}: expected sequence 0, "
                f"got {h.base_sequence}",
            )
        if entry.batches and h.base_sequence != next_seq(entry.last_seq):
            raise ProducerStateError(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {h.producer_id} epoch {h.producer_epoch}: expected sequence "
                f"{next_seq(entry.last_seq)}, got {h.base_sequence}",
            )
        return None

    def update(self, h: BatchHeader, now_ms: int) -> None:
        """Record a batch that is now in the log (``h.base_offset`` is its assigned offset)."""
        if h.producer_id < 0:
            return
        entry = self.entries.get(h.producer_id)
        if entry is None or h.producer_epoch > entry.epoch:
            txn = entry.txn_first_offset if entry is not None else None
            entry = self.entries[h.producer_id] = ProducerEntry(
                h.producer_id, h.producer_epoch, txn_first_offset=txn
            )
        entry.last_update_ms = now_ms
        if h.is_control:
            entry.txn_first_offset = None
            return
        if h.base_sequence >= 0:
            entry.batches.append(
                BatchMeta(
                    h.base_sequence,
                    next_seq(h.base_sequence, h.last_offset_delta),
                    h.base_offset,
                    h.last_offset,
                    h.max_timestamp,
                )
            )
        if h.is_transactional and entry.txn_first_offset is None:
            entry.txn_first_offset = h.base_offset

    def rebuild(self, headers: Iterable[BatchHeader], now_ms: int) -> None:
        for h in headers:
            self.update(h, now_ms)

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle longer than producer.id.expiration.ms (never one with an open txn)."""
        gone = [
            pid
            for pid, e in self.entries.items()
            if e.txn_first_offset is None and now_ms - e.last_update_ms > expiration_ms
        ]
        for pid in gone:
            del self.entries[pid]
        return len(gone)

    # --- snapshot ---------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            [
                {
                    "pid": e.producer_id,
                    "epoch": e.epoch,
                    "ts": e.last_update_ms,
                    "ce": e.coordinator_epoch,
                    "txn": e.txn_first_offset,
                    "b": [
                        [b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                        for b in e.batches
                    ],
                }
                for e in self.entries.values()
            ]
        )

    def load_json(self, text: str) -> None:
        self.entries = {}
        for r in json.loads(text):
            e = ProducerEntry(
                r["pid"],
                r["epoch"],
                last_update_ms=r["ts"],
                coordinator_epoch=r["ce"],
                txn_first_offset=r["txn"],
            )
            for b in r["b"]:
                e.batches.append(BatchMeta(*b))
            self.entries[e.producer_id] = e
