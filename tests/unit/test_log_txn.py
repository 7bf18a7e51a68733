"""The transactional parts of a partition log on real files: idempotent appends, markers, the last stable
offset, the aborted-transaction index, and how all of it survives a clean close, a crash, and retention.

Expected behaviour is Apache Kafka's (UnifiedLog, ProducerStateManager, TransactionIndex): the checklist's
sections 1 and 2 ("Partition side").
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.log.partition import PRODUCER_SNAPSHOT_FILE, AbortedTxn, PartitionLog
from odradek.log.producer_state import (
    INVALID_PRODUCER_EPOCH,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    Duplicate,
    ProducerStateError,
)
from odradek.protocol.record_decode import control_type
from odradek.protocol.records import (
    ATTR_TRANSACTIONAL,
    CONTROL_ABORT,
    CONTROL_COMMIT,
    read_header,
    validate_stored_batch,
)

from .batches import SMALL, append_n, crash, make_batch, open_log, read_all, value_of

BIG = replace(SMALL, segment_bytes=1 << 20)


class Producer:
    """A producer writing to one partition: its own id, epoch and sequence counter."""

    def __init__(self, log: PartitionLog, producer_id: int, epoch: int = 0) -> None:
        self.log = log
        self.producer_id = producer_id
        self.epoch = epoch
        self.seq = 0

    def batch(self, records: int = 2, *, txn: bool = False, seq: int | None = None) -> bytearray:
        base = self.seq if seq is None else seq
        return make_batch(
            [value_of(base + i) for i in range(records)],
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=base,
            attributes=ATTR_TRANSACTIONAL if txn else 0,
        )

    def send(self, records: int = 2, *, txn: bool = False, now_ms: int = 0) -> int:
        """Append a new batch; returns its base offset."""
        batch = self.batch(records, txn=txn)
        result = self.log.append_producer_batch(batch, read_header(batch), leader_epoch=0, now_ms=now_ms)
        assert not isinstance(result, Duplicate)
        self.seq += records
        return result.base_offset

    def end(self, commit: bool, *, now_ms: int = 0) -> int:
        return self.log.append_marker(self.producer_id, self.epoch, commit, 0, leader_epoch=0, now_ms=now_ms)


def producer_view(log: PartitionLog) -> dict[int, tuple]:
    """What must survive a restart: epoch, the window, the open transaction (not the idle clock)."""
    return {
        pid: (
            e.epoch,
            [(b.first_seq, b.last_seq, b.first_offset, b.last_offset) for b in e.batches],
            e.txn_first_offset,
        )
        for pid, e in log.producers.entries.items()
    }


def expected_aborted(aborted: list[AbortedTxn], start: int, end: int) -> list[AbortedTxn]:
    """Kafka's TransactionIndex.collectAbortedTxns: lastOffset >= fetch offset and firstOffset < upper."""
    return [a for a in aborted if a.last_offset >= start and a.first_offset < end]


# --- appends --------------------------------------------------------------------------------------


def test_retry_is_answered_with_the_original_offsets_and_not_written(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    p = Producer(log, 7)
    p.send(3)
    p.send(2)
    retry = p.batch(3, seq=0)
    assert log.append_producer_batch(retry, read_header(retry), leader_epoch=0, now_ms=0) == Duplicate(0, 2)
    assert log.log_end_offset == 5
    assert len(read_all(log)) == 2


def test_refused_batches_leave_the_log_unchanged(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    p = Producer(log, 7, epoch=2)
    p.send(2)
    gap = p.batch(1, seq=5)
    with pytest.raises(ProducerStateError) as e:
        log.append_producer_batch(gap, read_header(gap), leader_epoch=0, now_ms=0)
    assert e.value.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    p.epoch = 1
    old = p.batch(1)
    with pytest.raises(ProducerStateError) as e:
        log.append_producer_batch(old, read_header(old), leader_epoch=0, now_ms=0)
    assert e.value.error_code == INVALID_PRODUCER_EPOCH
    assert log.log_end_offset == 2
    assert len(read_all(log)) == 1


# --- last stable offset and markers ---------------------------------------------------------------


def test_last_stable_offset_follows_the_earliest_open_transaction(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    a, b, plain = Producer(log, 1), Producer(log, 2), Producer(log, 3)
    assert log.last_stable_offset == 0
    plain.send(2)
    assert log.last_stable_offset == log.log_end_offset == 2
    first_a = a.send(2, txn=True)
    plain.send(1)
    first_b = b.send(1, txn=True)
    a.send(1, txn=True)
    assert (first_a, first_b) == (2, 5)
    assert log.last_stable_offset == 2
    commit_at = a.end(commit=True)
    assert log.last_stable_offset == 5
    assert log.aborted == [], "a commit adds nothing to the aborted index"
    abort_at = b.end(commit=False)
    assert log.last_stable_offset == log.log_end_offset == abort_at + 1
    assert log.aborted == [AbortedTxn(2, 5, abort_at)]
    assert commit_at == 7 and abort_at == 8


def test_markers_are_control_batches_in_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    p = Producer(log, 9, epoch=4)
    p.send(1, txn=True)
    p.end(commit=True)
    p.send(1, txn=True)
    p.end(commit=False)
    stored = read_all(log)
    kinds = [control_type(b) for b in stored]
    assert kinds == [None, CONTROL_COMMIT, None, CONTROL_ABORT]
    h = validate_stored_batch(stored[1], 0, len(stored[1]))
    assert h is not None
    assert (h.attributes & 0x30, h.producer_id, h.producer_epoch, h.base_sequence, h.record_count) == (
        0x30,
        9,
        4,
        -1,
        1,
    )


def test_marker_without_data_adds_no_aborted_entry(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    p = Producer(log, 9)
    p.end(commit=False)
    p.send(1, txn=True)
    p.end(commit=False)
    p.end(commit=False)  # a marker written twice (coordinator retry after a crash) closes nothing
    assert log.aborted == [AbortedTxn(9, 1, 2)]
    assert log.last_stable_offset == log.log_end_offset


def test_aborted_between_matches_kafkas_rule_for_every_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", BIG)
    rng = random.Random(848)
    producers = [Producer(log, pid) for pid in range(1, 5)]
    plain = Producer(log, 99)
    open_txn: set[int] = set()
    for _ in range(120):
        p = rng.choice(producers)
        roll = rng.random()
        if roll < 0.5:
            p.send(rng.randint(1, 3), txn=True)
            open_txn.add(p.producer_id)
        elif roll < 0.7 and p.producer_id in open_txn:
            p.end(commit=rng.random() < 0.4)
            open_txn.discard(p.producer_id)
        else:
            plain.send(1)
    assert len(log.aborted) >= 5
    assert [a.last_offset for a in log.aborted] == sorted(a.last_offset for a in log.aborted)
    leo = log.log_end_offset
    for start in range(leo + 1):
        for end in range(start, leo + 2):
            assert log.aborted_between(start, end) == expected_aborted(log.aborted, start, end), (start, end)


# --- restarts -------------------------------------------------------------------------------------


def _mixed_history(log: PartitionLog) -> None:
    a, b, c, idem = Producer(log, 1), Producer(log, 2, epoch=3), Producer(log, 3), Producer(log, 4)
    for _ in range(3):
        idem.send(2)
        a.send(1, txn=True)
        b.send(2, txn=True)
    a.end(commit=False)
    c.send(1, txn=True)
    b.end(commit=True)
    c.end(commit=False)
    a.send(2, txn=True)  # left open
    for _ in range(4):
        idem.send(1)


def test_clean_close_and_reopen_keeps_producer_state_and_aborted_index(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    _mixed_history(log)
    view, aborted, lso, leo = (
        producer_view(log),
        list(log.aborted),
        log.last_stable_offset,
        log.log_end_offset,
    )
    assert len(aborted) == 2 and lso < leo
    log.close(clean=True)
    assert (path / PRODUCER_SNAPSHOT_FILE).exists()
    again = open_log(path)
    assert not (path / PRODUCER_SNAPSHOT_FILE).exists(), "a snapshot must not outlive the open"
    assert producer_view(again) == view
    assert again.aborted == aborted
    assert again.last_stable_offset == lso
    idem = Producer(again, 4)
    idem.seq = 10
    retry = idem.batch(1, seq=9)
    assert isinstance(
        again.append_producer_batch(retry, read_header(retry), leader_epoch=0, now_ms=0), Duplicate
    )
    assert idem.send(1) == leo


def test_crash_and_reopen_rebuilds_the_same_state_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)  # small segments: the history spans several
    _mixed_history(log)
    assert len(list(path.glob("*.log"))) >= 2
    view, aborted, lso = producer_view(log), list(log.aborted), log.last_stable_offset
    log.flush()
    crash(log)
    assert not (path / PRODUCER_SNAPSHOT_FILE).exists()
    again = open_log(path, now_ms=5)
    assert producer_view(again) == view
    assert again.aborted == aborted
    assert again.last_stable_offset == lso


def test_crash_after_a_clean_restart_rebuilds_from_the_log_not_a_stale_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, BIG)
    a = Producer(log, 1)
    a.send(1, txn=True)
    log.close(clean=True)
    log = open_log(path, BIG)
    a.log = log
    a.end(commit=False)
    b = Producer(log, 2)
    b.send(1, txn=True)
    view, aborted, lso = producer_view(log), list(log.aborted), log.last_stable_offset
    log.flush()
    crash(log)
    again = open_log(path, BIG)
    assert producer_view(again) == view
    assert again.aborted == aborted == [AbortedTxn(1, 0, 1)]
    assert again.last_stable_offset == lso == 2


def test_retention_drops_aborted_entries_below_the_log_start(tmp_path: Path) -> None:
    config = replace(SMALL, retention_bytes=1500)
    log = open_log(tmp_path / "t-0", config)
    p = Producer(log, 1)
    for _ in range(3):
        p.send(1, txn=True)
        p.end(commit=False)
    early = list(log.aborted)
    append_n(log, 30)
    p.send(1, txn=True)
    late_marker = p.end(commit=False)
    assert log.enforce_retention(now_ms=0) > 0
    start = log.log_start_offset
    assert all(a.last_offset < start for a in early)
    assert log.aborted == [AbortedTxn(1, late_marker - 1, late_marker)]
    assert log.aborted_between(start, log.log_end_offset) == log.aborted
