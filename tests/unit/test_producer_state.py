"""Per-partition producer state (idempotence window, epochs, open transactions) driven by batch headers.

Expected behaviour is Apache Kafka's ProducerStateManager / ProducerAppendInfo (KIP-98, KIP-360): the
checklist's section 1.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.log.producer_state import (
    INT32_MAX,
    INVALID_PRODUCER_EPOCH,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    WINDOW,
    BatchMeta,
    Duplicate,
    ProducerStateError,
    ProducerStateManager,
    next_seq,
)
from odradek.protocol.records import ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader

PID = 1000


def hdr(
    base_offset: int = 0,
    *,
    pid: int = PID,
    epoch: int = 0,
    seq: int = 0,
    count: int = 1,
    txn: bool = False,
    control: bool = False,
    ts: int = 1_000,
) -> BatchHeader:
    """A batch header as the log sees it (``base_offset`` is the offset assigned on append)."""
    attributes = (ATTR_TRANSACTIONAL if txn or control else 0) | (ATTR_CONTROL if control else 0)
    return BatchHeader(
        base_offset, 49 + 20 * count, 0, 2, 0, attributes, count - 1, ts, ts, pid, epoch, seq, count
    )


def marker(base_offset: int, *, pid: int = PID, epoch: int = 0) -> BatchHeader:
    return hdr(base_offset, pid=pid, epoch=epoch, seq=-1, control=True)


class Log:
    """The append path of a partition, reduced to headers: check, then assign offsets and update."""

    def __init__(self) -> None:
        self.state = ProducerStateManager()
        self.leo = 0
        self.headers: list[BatchHeader] = []

    def append(self, h: BatchHeader, now_ms: int = 0) -> Duplicate | tuple[int, int]:
        dup = self.state.check(h)
        if dup is not None:
            return dup
        placed = BatchHeader(self.leo, *_fields(h)[1:])
        self.state.update(placed, now_ms)
        self.headers.append(placed)
        self.leo = placed.last_offset + 1
        return placed.base_offset, placed.last_offset


def _fields(h: BatchHeader) -> tuple[int, ...]:
    return (
        h.base_offset,
        h.batch_length,
        h.partition_leader_epoch,
        h.magic,
        h.crc,
        h.attributes,
        h.last_offset_delta,
        h.base_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.record_count,
    )


def refused(log: Log, h: BatchHeader) -> int:
    with pytest.raises(ProducerStateError) as e:
        log.append(h)
    return e.value.error_code


def snapshot_of(state: ProducerStateManager) -> dict[int, tuple]:
    return {
        pid: (e.epoch, list(e.batches), e.txn_first_offset, e.coordinator_epoch, e.last_update_ms)
        for pid, e in state.entries.items()
    }


# --- duplicates and the five-batch window ---------------------------------------------------------


def test_retry_of_each_of_the_last_five_batches_returns_its_original_offsets() -> None:
    log = Log()
    placed = [log.append(hdr(seq=3 * i, count=3)) for i in range(WINDOW)]
    leo = log.leo
    for i, (first, last) in enumerate(placed):
        assert log.append(hdr(seq=3 * i, count=3)) == Duplicate(first, last)
    assert log.leo == leo, "a duplicate must not be appended again"


def test_sixth_oldest_batch_is_forgotten_and_then_out_of_order() -> None:
    log = Log()
    for i in range(WINDOW + 1):
        log.append(hdr(seq=i * 2, count=2))
    assert refused(log, hdr(seq=0, count=2)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(hdr(seq=2, count=2)) == Duplicate(2, 3)  # still the fifth-newest


def test_duplicate_needs_the_exact_sequence_range() -> None:
    log = Log()
    log.append(hdr(seq=0, count=3))
    assert refused(log, hdr(seq=0, count=2)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert refused(log, hdr(seq=1, count=2)) == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_duplicate_of_an_older_epoch_is_an_epoch_error_not_a_duplicate() -> None:
    log = Log()
    log.append(hdr(seq=0, epoch=0))
    log.append(hdr(seq=0, epoch=1))
    assert refused(log, hdr(seq=0, epoch=0)) == INVALID_PRODUCER_EPOCH


# --- sequences ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 3, 100, 2**31 - 5])
def test_sequence_gap_is_out_of_order(seq: int) -> None:
    log = Log()
    log.append(hdr(seq=0, count=2))
    assert refused(log, hdr(seq=seq)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(hdr(seq=2)) == (2, 2)


def test_sequence_wraps_from_int32_max_to_zero() -> None:
    log = Log()
    log.append(hdr(seq=INT32_MAX - 2, count=3))  # last sequence Int32.MAX
    assert log.state.entries[PID].last_seq == INT32_MAX
    assert refused(log, hdr(seq=INT32_MAX)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(hdr(seq=0, count=2)) == (3, 4)
    assert log.append(hdr(seq=INT32_MAX - 2, count=3)) == Duplicate(0, 2)


def test_batch_spanning_the_wrap_has_a_wrapped_last_sequence() -> None:
    log = Log()
    log.append(hdr(seq=INT32_MAX - 1, count=4))  # INT32_MAX-1, INT32_MAX, 0, 1
    assert log.state.entries[PID].last_seq == 1
    assert log.append(hdr(seq=2)) == (4, 4)
    assert next_seq(INT32_MAX) == 0
    assert next_seq(INT32_MAX - 1, 3) == 1


def test_unknown_producer_accepts_any_sequence() -> None:
    log = Log()
    assert log.append(hdr(seq=12345, count=2)) == (0, 1)
    assert log.append(hdr(pid=7, seq=99)) == (2, 2)
    assert log.append(hdr(seq=12347)) == (3, 3)


def test_non_idempotent_batches_are_never_checked_nor_remembered() -> None:
    log = Log()
    for _ in range(3):
        assert not isinstance(log.append(hdr(pid=-1, epoch=-1, seq=-1, count=2)), Duplicate)
    assert log.state.entries == {}
    assert log.leo == 6


# --- epochs ---------------------------------------------------------------------------------------


def test_lower_epoch_is_invalid_producer_epoch() -> None:
    log = Log()
    log.append(hdr(epoch=3, seq=0))
    assert refused(log, hdr(epoch=2, seq=1)) == INVALID_PRODUCER_EPOCH
    assert refused(log, hdr(epoch=2, seq=0)) == INVALID_PRODUCER_EPOCH


def test_higher_epoch_must_start_at_sequence_zero() -> None:
    log = Log()
    log.append(hdr(epoch=0, seq=0, count=5))
    assert refused(log, hdr(epoch=1, seq=5)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert refused(log, hdr(epoch=1, seq=1)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(hdr(epoch=1, seq=0)) == (5, 5)


def test_higher_epoch_resets_the_window() -> None:
    log = Log()
    for i in range(3):
        log.append(hdr(epoch=0, seq=i))
    log.append(hdr(epoch=1, seq=0))
    entry = log.state.entries[PID]
    assert entry.epoch == 1
    assert [(b.first_seq, b.last_seq) for b in entry.batches] == [(0, 0)]
    assert log.append(hdr(epoch=1, seq=0)) == Duplicate(3, 3)
    assert refused(log, hdr(epoch=1, seq=3)) == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(hdr(epoch=1, seq=1)) == (4, 4)


def test_same_epoch_after_marker_bump_must_restart_at_zero() -> None:
    """A marker with a bumped epoch (a fenced transaction) resets the producer's sequence: the next data
    batch of that epoch must start at 0. Kafka: ProducerAppendInfo.checkSequence has no last sequence
    for the new epoch (NO_SEQUENCE), and inSequence(-1, seq) holds only for seq 0; else error 45."""
    log = Log()
    log.append(hdr(epoch=0, seq=0, count=3, txn=True))
    log.append(marker(3, epoch=1))
    assert refused(log, hdr(epoch=1, seq=3)) == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_unknown_epoch_accepts_new_epoch_at_any_sequence() -> None:
    state = ProducerStateManager()
    state.update(hdr(epoch=-1, seq=4), 0)  # stored epoch -1 (no epoch known)
    assert state.check(hdr(1, epoch=0, seq=9)) is None


# --- transactions ---------------------------------------------------------------------------------


def test_transactional_first_offset_is_the_first_batch_and_a_marker_closes_it() -> None:
    log = Log()
    log.append(hdr(pid=5, seq=0, count=2))  # non-transactional producer first
    log.append(hdr(seq=0, count=3, txn=True))
    log.append(hdr(seq=3, count=1, txn=True))
    assert log.state.entries[PID].txn_first_offset == 2
    assert log.state.entries[5].txn_first_offset is None
    log.append(marker(log.leo))
    assert log.state.entries[PID].txn_first_offset is None
    log.append(hdr(seq=4, txn=True))
    assert log.state.entries[PID].txn_first_offset == 7


def test_marker_keeps_the_window_and_is_never_a_duplicate() -> None:
    log = Log()
    log.append(hdr(seq=0, count=2, txn=True))
    assert log.append(marker(2)) == (2, 2)
    assert log.append(marker(3)) == (3, 3)  # a second marker closes nothing but is written
    assert log.append(hdr(seq=0, count=2, txn=True)) == Duplicate(0, 1)
    assert log.append(hdr(seq=2, txn=True)) == (4, 4)


def test_marker_with_bumped_epoch_moves_the_epoch_and_closes_the_transaction() -> None:
    log = Log()
    log.append(hdr(epoch=4, seq=0, count=2, txn=True))
    log.append(marker(2, epoch=5))
    entry = log.state.entries[PID]
    assert entry.epoch == 5
    assert entry.txn_first_offset is None
    assert refused(log, hdr(epoch=4, seq=2, txn=True)) == INVALID_PRODUCER_EPOCH


# --- expiry ---------------------------------------------------------------------------------------


def test_expiry_forgets_idle_producers_but_never_one_with_an_open_transaction() -> None:
    state = ProducerStateManager()
    state.update(hdr(0, pid=1, seq=0), now_ms=0)
    state.update(hdr(1, pid=2, seq=0, txn=True), now_ms=0)
    state.update(hdr(2, pid=3, seq=0), now_ms=500)
    assert state.expire(now_ms=1_000, expiration_ms=1_000) == 0
    assert state.expire(now_ms=1_001, expiration_ms=1_000) == 1
    assert set(state.entries) == {2, 3}
    assert state.expire(now_ms=10_000, expiration_ms=1_000) == 1
    assert set(state.entries) == {2}, "a producer with an open transaction is kept"
    state.update(marker(3, pid=2), now_ms=10_000)
    assert state.expire(now_ms=20_000, expiration_ms=1_000) == 1
    assert state.entries == {}
    assert state.check(hdr(4, pid=1, seq=77)) is None, "an expired producer is unknown again"


# --- snapshots and rebuild ------------------------------------------------------------------------


def _busy_log() -> Log:
    log = Log()
    for i in range(7):
        log.append(hdr(pid=1, seq=i * 2, count=2, ts=100 + i), now_ms=i)
    log.append(hdr(pid=2, epoch=3, seq=0, count=4, txn=True), now_ms=20)
    log.append(hdr(pid=3, epoch=1, seq=10, txn=True), now_ms=21)
    log.append(marker(log.leo, pid=3, epoch=1), now_ms=22)
    return log


def test_snapshot_round_trip() -> None:
    log = _busy_log()
    text = log.state.to_json()
    json.loads(text)  # plain JSON
    again = ProducerStateManager()
    again.load_json(text)
    assert snapshot_of(again) == snapshot_of(log.state)
    assert again.entries[1].batches.maxlen == WINDOW
    assert again.check(hdr(pid=1, seq=4, count=2)) == Duplicate(4, 5)
    assert again.check(hdr(pid=1, seq=12, count=2)) == Duplicate(12, 13)
    with pytest.raises(ProducerStateError):
        again.check(hdr(pid=1, seq=2, count=2))
    again.update(hdr(100, pid=1, seq=14), 0)
    assert len(again.entries[1].batches) == WINDOW


def test_rebuild_from_headers_equals_incremental_state() -> None:
    log = _busy_log()
    rebuilt = ProducerStateManager()
    rebuilt.rebuild(log.headers, now_ms=0)
    for pid, entry in log.state.entries.items():
        other = rebuilt.entries[pid]
        assert (other.epoch, list(other.batches), other.txn_first_offset) == (
            entry.epoch,
            list(entry.batches),
            entry.txn_first_offset,
        )
    assert set(rebuilt.entries) == set(log.state.entries)


# --- property: a reference model of Kafka's rules, and rebuild == incremental ----------------------


class Model:
    """Kafka's rules written out plainly, as the oracle."""

    def __init__(self) -> None:
        self.epoch: dict[int, int] = {}
        self.window: dict[int, list[tuple[int, int, int, int]]] = {}  # first seq, last seq, offsets

    def expect(self, pid: int, epoch: int, seq: int, count: int) -> int | tuple[int, int] | None:
        """An error code, the duplicate's offsets, or None (accepted)."""
        if pid not in self.epoch:
            return None
        if epoch < self.epoch[pid]:
            return INVALID_PRODUCER_EPOCH
        if epoch > self.epoch[pid]:
            return None if seq == 0 else OUT_OF_ORDER_SEQUENCE_NUMBER
        last = (seq + count - 1) % 2**31
        for first_seq, last_seq, first_offset, last_offset in self.window[pid]:
            if (first_seq, last_seq) == (seq, last):
                return first_offset, last_offset
        window = self.window[pid]
        expected = (window[-1][1] + 1) % 2**31 if window else 0
        return None if seq == expected else OUT_OF_ORDER_SEQUENCE_NUMBER

    def accept(self, pid: int, epoch: int, seq: int, count: int, offset: int) -> None:
        if self.epoch.get(pid) != epoch:
            self.window[pid] = []
        self.epoch[pid] = epoch
        self.window[pid] = [*self.window[pid], (seq, (seq + count - 1) % 2**31, offset, offset + count - 1)][
            -WINDOW:
        ]


_batches = st.lists(
    st.tuples(
        st.sampled_from([11, 12]),  # producer id
        st.integers(0, 2),  # epoch
        st.one_of(st.integers(0, 12), st.sampled_from([INT32_MAX - 1, INT32_MAX])),  # sequence
        st.integers(1, 3),  # records
    ),
    max_size=60,
)


def _near_next(state: ProducerStateManager, pid: int, epoch: int, seq: int, pick: int) -> int:
    """Bias toward plausible sequences: often the next one, sometimes a retry."""
    entry = state.entries.get(pid)
    if entry is None or not entry.batches or entry.epoch != epoch:
        return seq
    if pick % 3 == 0:
        return next_seq(entry.last_seq)
    if pick % 3 == 1:
        return entry.batches[pick % len(entry.batches)].first_seq
    return seq


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_batches)
def test_property_checks_match_kafka_rules_and_rebuild_matches(
    batches: list[tuple[int, int, int, int]],
) -> None:
    log = Log()
    model = Model()
    for i, (pid, epoch, raw_seq, count) in enumerate(batches):
        seq = _near_next(log.state, pid, epoch, raw_seq, i)
        expected = model.expect(pid, epoch, seq, count)
        h = hdr(pid=pid, epoch=epoch, seq=seq, count=count)
        if isinstance(expected, int):
            with pytest.raises(ProducerStateError) as e:
                log.append(h)
            assert e.value.error_code == expected
            continue
        got = log.append(h)
        if expected is None:
            assert not isinstance(got, Duplicate)
            model.accept(pid, epoch, seq, count, got[0])
        else:
            assert got == Duplicate(*expected)
    rebuilt = ProducerStateManager()
    rebuilt.rebuild(log.headers, now_ms=0)
    assert snapshot_of(rebuilt) == snapshot_of(log.state)
    restored = ProducerStateManager()
    restored.load_json(log.state.to_json())
    assert snapshot_of(restored) == snapshot_of(log.state)


def test_batch_meta_is_what_the_snapshot_stores() -> None:
    state = ProducerStateManager()
    state.update(hdr(40, seq=7, count=3, ts=555), now_ms=9)
    row = json.loads(state.to_json())[0]
    assert row["b"] == [[7, 9, 40, 42, 555]]
    assert BatchMeta(*row["b"][0]) == state.entries[PID].batches[0]
