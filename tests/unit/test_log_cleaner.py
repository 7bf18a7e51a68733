"""The log cleaner without a broker: the pure rules (odradek.log.cleaner) on hand-built batches, and whole
passes over a PartitionLog on a temporary directory (plan on the caller's thread, run, commit)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from crc32c import crc32c

from odradek.log import LogConfig, PartitionLog
from odradek.log import cleaner as lc
from odradek.protocol.recompress import compress
from odradek.protocol.record_decode import records
from odradek.protocol.records import (
    ATTR_TRANSACTIONAL,
    read_header,
    validate_stored_batch,
)

from .batches import record

_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")
DAY_MS = 86_400_000
NOW = 10 * DAY_MS


def kbatch(
    pairs: list[tuple[bytes, bytes | None]],
    *,
    ts: int = 1_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    codec: int = 0,
) -> bytearray:
    """A batch of keyed records (value None: a tombstone), as a producer sends it."""
    body = b"".join(record(i, i, k, v) for i, (k, v) in enumerate(pairs))
    attributes = (ATTR_TRANSACTIONAL if transactional else 0) | codec
    if codec:
        body = compress(codec, body)
    after = (
        _AFTER_CRC.pack(
            attributes,
            len(pairs) - 1,
            ts,
            ts + len(pairs) - 1,
            producer_id,
            producer_epoch,
            base_sequence,
            len(pairs),
        )
        + body
    )
    return bytearray(_BEFORE_CRC.pack(0, 4 + 1 + 4 + len(after), -1, 2, crc32c(after)) + after)


def open_log(path: Path, segment_bytes: int = 400) -> PartitionLog:
    return PartitionLog.open(path, LogConfig(segment_bytes=segment_bytes, index_interval_bytes=100), now_ms=0)


def config(**kw) -> lc.CleanerConfig:
    base = dict(min_cleanable_dirty_ratio=0.0, segment_bytes=1 << 20, delete_retention_ms=DAY_MS)
    base.update(kw)
    return lc.CleanerConfig(**base)


def clean_once(log: PartitionLog, cfg: lc.CleanerConfig, now_ms: int = NOW) -> lc.CleanStats | None:
    job = log.plan_clean(cfg, now_ms)
    if job is None:
        return None
    log.run_clean(job)
    assert log.commit_clean(job) >= 1
    return job.stats


def contents(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the log start, every batch checked."""
    out = []
    last = -1
    for batch in log.read(log.log_start_offset, 1 << 30):
        h = read_header(batch)
        assert h.base_offset > last, "offsets went backwards"
        assert validate_stored_batch(batch, 0, len(batch)) or h.record_count <= h.last_offset_delta
        assert crc32c(bytes(batch)[21:]) == h.crc
        for r in records(bytes(batch), h):
            assert h.base_offset <= r.offset <= h.last_offset
            if not h.is_control:
                out.append((r.offset, r.key, r.value))
        last = h.last_offset
    return out


def latest(rows) -> dict[bytes, bytes | None]:
    out: dict[bytes, bytes | None] = {}
    for _, k, v in rows:
        out[k] = v
    return out


def fill(log: PartitionLog, keys: int, rounds: int) -> dict[bytes, bytes | None]:
    """``rounds`` values for each of ``keys`` keys, one record a batch; then a roll so all is sealed."""
    n = 0
    for r in range(rounds):
        for k in range(keys):
            log.append(kbatch([(b"k%d" % k, b"v%d-%d" % (k, r))], ts=1_000 + n), leader_epoch=0, now_ms=0)
            n += 1
    expected = latest(contents(log))
    log.append(kbatch([(b"active", b"x")]), leader_epoch=0, now_ms=0)
    log._roll()  # the cleaner never touches the active segment: make everything before it sealed
    return expected


def test_last_value_per_key_over_several_segments_and_offsets_kept(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    expected = fill(log, keys=13, rounds=3)
    before = contents(log)
    assert len(log._segments) > 3
    end = log.log_end_offset
    stats = clean_once(log, config())
    after = contents(log)
    assert stats is not None and stats.records_kept == 14
    assert latest(after) == {**expected, b"active": b"x"}
    assert [k for _, k, _ in after].count(b"k0") == 1
    # Every surviving record sits at the offset it was written at.
    assert set(after) <= set(before)
    assert log.log_end_offset == end and log.log_start_offset == 0
    # Fetch from 0 and from an offset that is gone both start at the next batch still there.
    assert read_header(log.read(0, 1 << 20)[0]).base_offset >= 0
    gone = next(o for o, _, _ in before if o not in {a for a, _, _ in after})
    first = read_header(log.read(gone, 1 << 20)[0])
    assert first.base_offset > gone or first.last_offset >= gone
    log.close(clean=True)
    reopened = open_log(tmp_path / "p")
    assert contents(reopened) == after
    reopened.close(clean=False)


def test_recovery_of_a_cleaned_log_after_a_crash(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    fill(log, keys=5, rounds=4)
    clean_once(log, config())
    after = contents(log)
    log.flush()
    log._close_fds()  # a kill: no clean-shutdown marker, so every segment is validated again
    (tmp_path / "p" / "recovery-point").unlink(missing_ok=True)
    reopened = open_log(tmp_path / "p")
    assert contents(reopened) == after


def test_tombstones_kept_until_delete_retention_after_their_first_clean(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    for k in range(4):
        log.append(kbatch([(b"k%d" % k, b"v")]), leader_epoch=0, now_ms=0)
    log.append(kbatch([(b"k1", None)]), leader_epoch=0, now_ms=0)
    log.append(kbatch([(b"k2", None)]), leader_epoch=0, now_ms=0)
    log.append(kbatch([(b"k3", b"w")]), leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW)
    assert latest(contents(log)) == {b"k0": b"v", b"k1": None, b"k2": None, b"k3": b"w", b"z": b"z"}
    # The kept tombstones now carry a delete horizon; before it passes, another pass keeps them.
    log.first_dirty_offset = 0
    clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW + 500)
    assert latest(contents(log))[b"k1"] is None
    log.first_dirty_offset = 0
    clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW + 1_000)
    assert latest(contents(log)) == {b"k0": b"v", b"k3": b"w", b"z": b"z"}


def test_aborted_records_and_then_markers_go_committed_stay(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=1 << 20)
    a = dict(producer_id=7, producer_epoch=0, transactional=True)
    log.append_producer_batch(
        kbatch([(b"k1", b"aborted")], base_sequence=0, **a),
        read_header(kbatch([(b"k1", b"aborted")], base_sequence=0, **a)),
        leader_epoch=0,
        now_ms=0,
    )
    log.append_marker(7, 0, False, 0, leader_epoch=0, now_ms=0)
    b = dict(producer_id=8, producer_epoch=0, transactional=True)
    batch = kbatch([(b"k2", b"committed")], base_sequence=0, **b)
    log.append_producer_batch(batch, read_header(batch), leader_epoch=0, now_ms=0)
    log.append_marker(8, 0, True, 0, leader_epoch=0, now_ms=0)
    plain = kbatch([(b"k3", b"plain")])
    log.append(plain, leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    stats = clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW)
    assert stats is not None and stats.aborted_removed == 1
    rows = contents(log)
    assert (0, b"k1", b"aborted") not in rows
    assert (2, b"k2", b"committed") in rows
    kinds = _markers(log)
    assert 1 in kinds  # the abort marker waits for its horizon
    # While producer 7 is live its last batch stays (empty), and so does the marker that ends it.
    assert [h.record_count for h in _headers(log) if h.producer_id == 7] == [0, 1]
    log.first_dirty_offset = 0
    clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW + 2_000)
    assert 1 in _markers(log)
    # Once the producers expired, the aborted batch goes, and then its marker (past its horizon).
    log.producers.entries.clear()
    for i in range(3):  # aborted batch removed; marker given its horizon; horizon passed: marker removed
        log.first_dirty_offset = 0
        clean_once(log, config(delete_retention_ms=1_000), now_ms=NOW + 4_000 + 2_000 * i)
    assert [h.producer_id for h in _headers(log) if h.producer_id == 7] == []
    # The commit marker stays as long as the data it committed does.
    assert _markers(log) == [3]
    assert latest(contents(log)) == {b"k2": b"committed", b"k3": b"plain", b"z": b"z"}


def _headers(log: PartitionLog):
    return [read_header(b) for b in log.read(log.log_start_offset, 1 << 30)]


def _markers(log: PartitionLog) -> list[int]:
    return [
        read_header(b).base_offset
        for b in log.read(log.log_start_offset, 1 << 30)
        if read_header(b).is_control and read_header(b).record_count
    ]


def test_an_open_transaction_is_not_touched(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=1 << 20)
    for r in range(3):
        log.append(kbatch([(b"k", b"old%d" % r)]), leader_epoch=0, now_ms=0)
    t = kbatch([(b"k", b"open")], producer_id=9, producer_epoch=0, base_sequence=0, transactional=True)
    log.append_producer_batch(t, read_header(t), leader_epoch=0, now_ms=0)
    for r in range(3):
        log.append(kbatch([(b"k", b"late%d" % r)]), leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    assert log.last_stable_offset == 3
    clean_once(log, config())
    rows = contents(log)
    # Only what lies below the first unstable offset was cleaned: the open transaction and all after it
    # stay exactly as written.
    assert [v for _, _, v in rows] == [b"old2", b"open", b"late0", b"late1", b"late2", b"z"]


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    fill(log, keys=3, rounds=4)
    # Batch timestamps are about 1 s; a lag of one day measured at NOW leaves nothing cleanable...
    assert log.plan_clean(config(min_compaction_lag_ms=NOW), NOW) is None
    # ...and a short lag lets the pass run.
    assert clean_once(log, config(min_compaction_lag_ms=1)) is not None


def test_dirty_ratio_and_max_compaction_lag(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    fill(log, keys=3, rounds=4)
    clean_once(log, config())
    log.append(kbatch([(b"k0", b"new")], ts=2_000), leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    # A small dirty part against a high ratio: no pass; unless it is older than max.compaction.lag.ms.
    assert log.plan_clean(config(min_cleanable_dirty_ratio=0.99), NOW) is None
    forced = config(min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=1_000)
    assert log.plan_clean(forced, NOW) is not None


def test_a_bounded_key_map_cleans_in_several_passes(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    expected = fill(log, keys=20, rounds=3)
    small = config(dedupe_buffer_bytes=lc.MAP_ENTRY_BYTES * 12)  # 10 keys per pass
    assert lc.map_capacity(small.dedupe_buffer_bytes) == 10
    passes = 0
    while (job := log.plan_clean(small, NOW)) is not None:
        log.run_clean(job)
        log.commit_clean(job)
        assert job.map_keys <= 10
        passes += 1
        assert passes < 20
    assert passes >= 3
    rows = contents(log)
    assert latest(rows) == {**expected, b"active": b"x"}
    assert len(rows) == 21


def test_the_last_batch_of_a_live_producer_stays_as_an_empty_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=1 << 20)
    b0 = kbatch([(b"k", b"a")], producer_id=5, producer_epoch=0, base_sequence=0)
    b1 = kbatch([(b"k", b"b"), (b"j", b"c")], producer_id=5, producer_epoch=0, base_sequence=1)
    for b in (b0, b1):
        log.append_producer_batch(b, read_header(b), leader_epoch=0, now_ms=0)
    log.append(kbatch([(b"k", b"d"), (b"j", b"e")]), leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    clean_once(log, config())
    batches = [read_header(b) for b in log.read(0, 1 << 20)]
    kept = [h for h in batches if h.producer_id == 5]
    assert len(kept) == 1 and kept[0].record_count == 0
    assert (kept[0].base_offset, kept[0].last_offset_delta, kept[0].base_sequence) == (1, 1, 1)
    # The producer's state survives a replay of the headers (as after a crash).
    log.flush()
    log._close_fds()
    reopened = open_log(tmp_path / "p", segment_bytes=1 << 20)
    assert reopened.producers.entries[5].last_seq == 2


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_rewritten_batches_keep_their_codec(tmp_path: Path, codec: int) -> None:
    log = open_log(tmp_path / "p", segment_bytes=1 << 20)
    log.append(kbatch([(b"a", b"1" * 50), (b"b", b"2" * 50)], codec=codec), leader_epoch=0, now_ms=0)
    log.append(kbatch([(b"a", b"3")]), leader_epoch=0, now_ms=0)
    log._roll()
    log.append(kbatch([(b"z", b"z")]), leader_epoch=0, now_ms=0)
    clean_once(log, config())
    first = log.read(0, 1 << 20)[0]
    h = read_header(first)
    assert h.codec == codec and h.record_count == 1 and h.last_offset_delta == 1
    assert [(r.offset, r.key, r.value) for r in records(bytes(first), h)] == [(1, b"b", b"2" * 50)]


def test_a_delete_horizon_keeps_record_timestamps() -> None:
    batch = kbatch([(b"a", None), (b"b", b"x")], ts=5_000)
    h = read_header(batch)
    recs = list(lc.raw_records(memoryview(batch)[61:], 2))
    out = lc.rebuild_batch(h, recs, horizon_ms=99_000)
    oh = read_header(out)
    assert oh.attributes & lc.ATTR_DELETE_HORIZON and oh.base_timestamp == 99_000
    assert [r.timestamp for r in records(out, oh)] == [5_000, 5_001]
    assert oh.max_timestamp == 5_001


def test_plan_needs_sealed_dirty_bytes() -> None:
    views = [lc.SegmentView(0, 100, 1, 5), lc.SegmentView(10, 100, 6, 9)]
    assert lc.plan([], 0, 0, 0, config(), NOW) is None
    p = lc.plan(views, 20, 20, 0, config(min_cleanable_dirty_ratio=0.5), NOW)
    assert p is not None and (p.first_dirty, p.end, p.dirty_ratio) == (0, 20, 1.0)
    assert lc.plan(views, 20, 20, 20, config(), NOW) is None  # all clean
    half = lc.plan(views, 20, 20, 10, config(min_cleanable_dirty_ratio=0.5), NOW)
    assert half is not None and half.dirty_ratio == 0.5
    assert lc.plan(views, 20, 20, 10, config(min_cleanable_dirty_ratio=0.6), NOW) is None
    assert lc.plan(views, 20, 5, 0, config(), NOW).end == 5  # an open transaction at 5


def test_group_segments_respects_size_limit() -> None:
    views = [lc.SegmentView(i * 10, 100, 0, 0) for i in range(5)]
    groups = lc.group_segments(views, 50, max_bytes=250, max_index_bytes=1 << 20)
    assert [[v.base_offset for v in g] for g in groups] == [[0, 10], [20, 30], [40]]


RETAINED = LogConfig(segment_bytes=400, index_interval_bytes=100, retention_ms=1_000)


def test_retention_deletes_only_where_the_policy_says_delete(tmp_path: Path) -> None:
    for policy, survives in (("compact", True), ("compact,delete", False), ("delete", False)):
        cfg = LogConfig(
            segment_bytes=400, index_interval_bytes=100, retention_ms=1_000, cleanup_policy=policy
        )
        log = PartitionLog.open(tmp_path / policy, cfg, now_ms=0)
        fill(log, keys=3, rounds=3)
        removed = log.enforce_retention(NOW)
        assert (removed == 0) is survives, policy
        log.close(clean=True)


def test_a_swap_prepared_but_not_committed_is_completed_by_recovery(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    expected = fill(log, keys=5, rounds=4)
    job = log.plan_clean(config(), NOW)
    assert job is not None
    log.run_clean(job)
    assert list((tmp_path / "p").glob("*.swap"))
    log.flush()
    log._close_fds()  # killed between the prepared swap files and the swap on the event loop
    reopened = open_log(tmp_path / "p")
    assert not list((tmp_path / "p").glob("*.swap")) and not list((tmp_path / "p").glob("*.cleaned"))
    rows = contents(reopened)
    assert latest(rows) == {**expected, b"active": b"x"} and len(rows) == 6


def test_a_swap_whose_segments_retention_removed_is_discarded(tmp_path: Path) -> None:
    cfg = LogConfig(
        segment_bytes=400, index_interval_bytes=100, retention_ms=1_000, cleanup_policy="compact,delete"
    )
    log = PartitionLog.open(tmp_path / "p", cfg, now_ms=0)
    fill(log, keys=5, rounds=4)
    job = log.plan_clean(config(), NOW)
    log.run_clean(job)
    assert log.enforce_retention(NOW) > 0
    start = log.log_start_offset
    assert log.commit_clean(job) == 0  # its segments are gone: nothing swapped, the swap files removed
    assert not list((tmp_path / "p").glob("*.swap"))
    assert log.log_start_offset == start
