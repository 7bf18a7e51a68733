"""Append, read, roll, timestamps, retention, truncation and flush of PartitionLog on real files."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.log import LogConfig, OffsetOutOfRange, PartitionLog
from odradek.protocol.records import ATTR_LOG_APPEND_TIME, read_header, validate_stored_batch

from .batches import (
    SMALL,
    append_n,
    flushing_in_thread,
    make_batch,
    open_log,
    read_all,
    segment_files,
    value_of,
)


def test_round_trip_across_segment_rolls(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = append_n(log, 60)
    assert len(segment_files(tmp_path / "t-0")) > 5, "small segment_bytes should have rolled"
    assert read_all(log) == stored
    assert log.log_end_offset == 120
    assert log.size_bytes == sum(len(b) for b in stored)
    for f in segment_files(tmp_path / "t-0"):
        assert f.stat().st_size <= SMALL.segment_bytes
    header = read_header(stored[7])
    assert header.base_offset == 14 and header.partition_leader_epoch == 3


def test_append_result_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    first = log.append(make_batch([b"a", b"b", b"c"]), leader_epoch=0, now_ms=5)
    second = log.append(make_batch([b"d"]), leader_epoch=0, now_ms=5)
    assert (first.base_offset, first.last_offset, first.log_append_time_ms) == (0, 2, -1)
    assert (second.base_offset, second.last_offset) == (3, 3)
    assert log.log_end_offset == 4


def test_read_from_every_offset_returns_containing_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = append_n(log, 40, records=3)
    for offset in range(log.log_end_offset):
        got = log.read(offset, 1)
        assert len(got) == 1
        assert bytes(got[0]) == stored[offset // 3]


def test_max_bytes_and_min_one_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig())
    stored = append_n(log, 10)
    size = len(stored[0])
    assert [bytes(b) for b in log.read(0, int(2.5 * size))] == stored[:2]
    assert [bytes(b) for b in log.read(0, size - 1)] == stored[:1], "KIP-74: first batch even if too big"
    assert log.read(0, size - 1, min_one_batch=False) == []
    assert [bytes(b) for b in log.read(0, 0)] == stored[:1]
    assert log.read(log.log_end_offset, 1000) == []


def test_max_offset_bound(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = append_n(log, 30)  # two records a batch
    assert [bytes(b) for b in log.read(0, 1 << 20, max_offset=10)] == stored[:5]
    assert [bytes(b) for b in log.read(0, 1 << 20, max_offset=11)] == stored[:6]
    assert log.read(10, 1 << 20, max_offset=10) == []
    assert log.read(4, 1 << 20, max_offset=4, min_one_batch=True) == []


def test_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append_n(log, 3)
    with pytest.raises(OffsetOutOfRange):
        log.read(7, 100)
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)


def test_reopen_after_clean_close(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 50)
    log.close(clean=True)
    indexes = {p.name: p.read_bytes() for p in segment_files(path, "index")}  # .index and .timeindex
    assert any(indexes.values())
    assert (path / "clean-shutdown").exists()
    again = open_log(path)
    assert not (path / "clean-shutdown").exists(), "marker must go at open so a crash is seen as unclean"
    assert read_all(again) == stored
    assert again.flushed_offset == again.log_end_offset == 100
    assert {p.name: p.read_bytes() for p in segment_files(path, "index")} == indexes
    more = append_n(again, 5)
    assert read_all(again) == stored + more


def test_empty_log_open_close_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    assert log.read(0, 100) == []
    assert log.max_timestamp() == (-1, -1)
    assert log.offset_for_timestamp(0) is None
    log.close(clean=True)
    again = open_log(path)
    assert again.log_end_offset == 0
    assert read_all(again) == []


def test_roll_when_index_full(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=64, index_max_bytes=16)  # two offset-index entries
    log = open_log(tmp_path / "t-0", config)
    stored = append_n(log, 20)
    segments = segment_files(tmp_path / "t-0")
    assert len(segments) >= 4
    assert all(p.stat().st_size <= 8 * 2 for p in segment_files(tmp_path / "t-0", "index"))
    assert read_all(log) == stored


def test_roll_by_age(tmp_path: Path) -> None:
    config = replace(SMALL, segment_bytes=1 << 20, segment_ms=1000)
    log = open_log(tmp_path / "t-0", config)
    append_n(log, 2, now_ms=0)
    log.maybe_roll(500)
    assert len(segment_files(tmp_path / "t-0")) == 1
    log.maybe_roll(1001)
    assert len(segment_files(tmp_path / "t-0")) == 2
    log.maybe_roll(5000)
    assert len(segment_files(tmp_path / "t-0")) == 2, "an empty active segment never rolls"
    append_n(log, 1, now_ms=5000)
    append_n(log, 1, now_ms=6001)  # the append itself rolls an aged segment
    assert len(segment_files(tmp_path / "t-0")) == 3


def test_log_append_time_rewrites_crc(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    batch = make_batch([b"x", b"y"], base_timestamp=100)
    result = log.append(batch, leader_epoch=1, now_ms=987_654, log_append_time=True)
    plain = make_batch([b"z"], base_timestamp=100)
    log.append(plain, leader_epoch=1, now_ms=987_655)
    assert result.log_append_time_ms == 987_654
    got = bytes(log.read(0, 1)[0])
    header = validate_stored_batch(got, 0, len(got))
    assert header is not None, "CRC must be recomputed after changing attributes and maxTimestamp"
    assert header.attributes & ATTR_LOG_APPEND_TIME
    assert header.max_timestamp == 987_654
    other = read_header(bytes(log.read(2, 1)[0]))
    assert not other.attributes & ATTR_LOG_APPEND_TIME and other.max_timestamp == 100
    log.close(clean=False)
    assert open_log(path).log_end_offset == 3, "recovery must accept the rewritten batch"


def _timestamped_log(path: Path, stamps: list[list[int]], config: LogConfig = SMALL) -> PartitionLog:
    log = open_log(path, config)
    for i, ts in enumerate(stamps):
        log.append(make_batch([value_of(i)] * len(ts), timestamps=ts), leader_epoch=0, now_ms=0)
    return log


def _brute_first(stamps: list[list[int]], target: int) -> tuple[int, int] | None:
    offset = 0
    for ts in stamps:
        if max(ts) >= target:
            return offset, ts[0] if ts[0] >= target else max(ts)
        offset += len(ts)
    return None


def _brute_max(stamps: list[list[int]]) -> tuple[int, int]:
    best, offset, best_offset = -1, 0, -1
    for ts in stamps:
        if max(ts) > best:
            best, best_offset = max(ts), offset + len(ts) - 1
        offset += len(ts)
    return best_offset, best


@pytest.mark.parametrize("seed", range(4))
def test_offset_for_timestamp_and_max_timestamp(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    if seed == 0:
        stamps = [[1000 + 10 * i, 1005 + 10 * i] for i in range(80)]  # the usual: increasing
    else:
        stamps = [sorted(rng.randrange(0, 5000) for _ in range(rng.randint(1, 4))) for _ in range(80)]
    path = tmp_path / "t-0"
    log = _timestamped_log(path, stamps)
    targets = [-5, 0, 999, 1000, 1001, 1004, 1005, 1006, 1500, 1795, 4999, 5000, 10**9]
    targets += [rng.randrange(0, 5100) for _ in range(50)]
    for target in targets:
        assert log.offset_for_timestamp(target) == _brute_first(stamps, target), target
    assert log.max_timestamp() == _brute_max(stamps)
    log.close(clean=True)
    again = open_log(path)  # old segments now answer from index files, not from a scan
    for target in targets:
        assert again.offset_for_timestamp(target) == _brute_first(stamps, target), target
    assert again.max_timestamp() == _brute_max(stamps)


def test_retention_by_time(tmp_path: Path) -> None:
    config = replace(SMALL, retention_ms=10_000)
    log = open_log(tmp_path / "t-0", config)
    old = append_n(log, 20, start_ts=1_000)  # max timestamps 1000..1191
    new = append_n(log, 20, start_ts=50_000)
    assert log.enforce_retention(now_ms=11_000) == 0  # oldest max timestamp is 1005: not yet 10 s old
    removed = log.enforce_retention(now_ms=59_000)
    assert removed > 0
    assert log.log_start_offset > 0
    served = read_all(log)
    assert served == (old + new)[-len(served) :] and len(served) < 40
    assert served[-20:] == new, "segments holding recent timestamps stay"
    with pytest.raises(OffsetOutOfRange):
        log.read(log.log_start_offset - 1, 100)
    removed_all = log.enforce_retention(now_ms=10**12)
    assert len(segment_files(tmp_path / "t-0")) == 1, "the active segment is never deleted"
    assert removed_all > 0 and log.read(log.log_start_offset, 1 << 20)
    start = log.log_start_offset
    log.close(clean=True)
    assert open_log(tmp_path / "t-0", config).log_start_offset == start


def test_retention_by_bytes(tmp_path: Path) -> None:
    config = replace(SMALL, retention_bytes=3000)
    log = open_log(tmp_path / "t-0", config)
    stored = append_n(log, 80)
    before = log.size_bytes
    removed = log.enforce_retention(now_ms=0)
    assert removed > 0
    assert log.size_bytes >= 3000, "retention keeps at least retention.bytes"
    first = segment_files(tmp_path / "t-0")[0].stat().st_size
    assert log.size_bytes - first < 3000, "and deletes every segment it can"
    assert before - log.size_bytes == sum(len(b) for b in stored[: len(stored) - len(read_all(log))])
    assert read_all(log) == stored[-len(read_all(log)) :]


def test_truncate_to(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 40)  # two records a batch
    log.flush()
    log.truncate_to(31)  # inside batch 15 (offsets 30-31): the whole batch goes
    assert log.log_end_offset == 30 and log.flushed_offset == 30
    assert read_all(log) == stored[:15]
    more = append_n(log, 3)
    assert read_all(log) == stored[:15] + more
    crash_free = read_all(log)
    log.close(clean=True)
    assert read_all(open_log(path)) == crash_free
    again = open_log(path)
    again.truncate_to(0)
    assert (again.log_start_offset, again.log_end_offset) == (0, 0)
    assert read_all(again) == []
    append_n(again, 2)
    assert again.log_end_offset == 4


def test_delete_removes_directory(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append_n(log, 5)
    log.delete()
    assert not (tmp_path / "t-0").exists()


def test_flush_in_thread_while_appending(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, replace(SMALL, segment_bytes=8192))
    stored = []
    with flushing_in_thread(log) as seen:
        for _ in range(40):
            stored += append_n(log, 25)
            time.sleep(0.001)
    assert seen == sorted(seen), "flushed_offset went backwards"
    assert len(set(seen)) > 1, "flushes should have observed progress"
    assert all(0 <= s <= log.log_end_offset for s in seen)
    assert log.flush() == log.log_end_offset == 2000
    assert read_all(log) == stored
    log._close_fds()  # crash right after the final flush
    assert read_all(open_log(path)) == stored


def test_opening_many_partitions_holds_no_descriptors(tmp_path: Path) -> None:
    """Start-up cost scales with what opening a partition does; a partition opened (fresh, or clean after
    writes) holds no file descriptor until it is used. Start-up time itself is measured in bench/."""

    def open_fds() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    for i in range(1000):
        (tmp_path / f"t-{i}").mkdir()
    before = open_fds()
    logs = [open_log(tmp_path / f"t-{i}") for i in range(1000)]
    assert open_fds() <= before + 2, "opening empty partitions left descriptors open"
    for log in logs[:200]:
        append_n(log, 3)
        log.close(clean=True)
    before = open_fds()
    reopened = [open_log(tmp_path / f"t-{i}") for i in range(200)]
    assert all(r.log_end_offset == 6 for r in reopened)
    assert open_fds() <= before + 2, "reopening partitions left descriptors open"
