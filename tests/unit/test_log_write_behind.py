"""Write-behind (``append(defer=True)``): queued batches reach the file in order, reads never see a gap,
a failed write fails the log without writing anything after it, and a crash loses only what was queued."""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.log import LogConfig, PartitionLog
from odradek.log import segment as segment_module
from odradek.log.partition import LogWriteFailed

from .batches import SMALL, append_n, flushing_in_thread, open_log, read_all, segment_files


def file_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in segment_files(path))


def test_a_deferred_append_is_written_by_flush(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, LogConfig())
    stored = append_n(log, 5, defer=True)
    assert log.log_end_offset == 10 and log.size_bytes == sum(map(len, stored))
    assert file_bytes(path) == 0, "a deferred append wrote on the caller's thread"
    assert log.written_offset == 0
    assert log.flush() == 10
    assert file_bytes(path) == log.size_bytes and log.written_offset == 10
    log._close_fds()  # a crash right after the flush keeps everything
    assert read_all(open_log(path)) == stored


def test_a_read_at_the_tail_writes_the_queue_first(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, LogConfig())
    written = append_n(log, 3)
    queued = append_n(log, 3, defer=True)
    assert [bytes(b) for b in log.read(0, 1 << 20)] == written, "a read below the queue sees the file only"
    assert file_bytes(path) == sum(map(len, written))
    assert [bytes(b) for b in log.read(6, 1 << 20)] == queued
    assert file_bytes(path) == log.size_bytes
    assert read_all(log) == written + queued


def test_an_undeferred_append_writes_the_queue_before_itself(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, LogConfig())
    stored = append_n(log, 4, defer=True) + append_n(log, 1)
    assert file_bytes(path) == log.size_bytes, "acks=1 is acknowledged once it is in the page cache"
    log._close_fds()
    assert read_all(open_log(path)) == stored


def test_queued_batches_across_segment_rolls_are_read_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)  # 1 KiB segments: dozens of rolls
    stored = append_n(log, 60, defer=True)
    assert len(segment_files(path)) > 5
    for offset in range(0, log.log_end_offset, 7):
        # Whatever a read returns starts at the batch holding ``offset`` and is contiguous.
        got = log.read(offset, 300)
        assert got, f"nothing read at offset {offset}"
        assert bytes(got[0]) == stored[offset // 2]
    assert read_all(log) == stored
    log.flush()
    log._close_fds()
    assert read_all(open_log(path)) == stored


def test_a_crash_loses_only_what_was_queued(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, LogConfig())
    kept = append_n(log, 3, defer=True)
    log.flush()
    append_n(log, 3, defer=True)
    log._close_fds()  # killed before the next flush: nobody was acknowledged for these
    again = open_log(path, LogConfig())
    assert read_all(again) == kept and again.log_end_offset == 6


def test_a_failed_write_fails_the_log_and_writes_nothing_after_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, LogConfig())
    kept = append_n(log, 2)
    log.flush()
    append_n(log, 3, defer=True)
    real = os.writev

    def full_disk(fd: int, parts) -> int:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module.os, "writev", full_disk)
    with pytest.raises(OSError, match="No space"):
        log.flush()
    monkeypatch.setattr(segment_module.os, "writev", real)
    with pytest.raises(LogWriteFailed, match="is offline"):
        log.flush()
    assert log.failed
    with pytest.raises(LogWriteFailed):
        append_n(log, 1)
    with pytest.raises(LogWriteFailed):
        log.read(4, 1 << 20)  # past what was written
    with pytest.raises(LogWriteFailed):
        log.read(0, 1 << 20)  # offline: not even what was written is served until a restart
    assert log.enforce_retention(now_ms=0) == 0
    log._close_fds()
    again = open_log(path, LogConfig())
    assert not again.failed
    assert read_all(again) == kept, "the restart sees the log as written"
    assert append_n(again, 1) and again.log_end_offset == 6


def test_retention_and_truncation_write_the_queue_first(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, replace(SMALL, retention_bytes=2048))
    stored = append_n(log, 60, defer=True)
    removed = log.enforce_retention(now_ms=0)
    assert removed > 0
    assert read_all(log) == stored[log.log_start_offset // 2 :]
    more = append_n(log, 5, defer=True)
    log.truncate_to(log.log_end_offset - 4)  # the last two batches go
    assert read_all(log) == (stored + more)[log.log_start_offset // 2 : -2]
    log.flush()
    log._close_fds()
    assert (
        read_all(open_log(path, replace(SMALL, retention_bytes=2048)))
        == (stored + more)[log.log_start_offset // 2 : -2]
    )


def test_flushes_in_a_thread_beside_deferred_appends_and_tail_reads(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, replace(SMALL, segment_bytes=8192))
    stored: list[bytes] = []
    with flushing_in_thread(log) as seen:
        for i in range(200):
            stored += append_n(log, 5, defer=i % 3 != 0)
            if i % 7 == 0:
                tail = log.read(max(0, log.log_end_offset - 2), 1 << 20)
                assert [bytes(b) for b in tail] == stored[-1:]
    assert seen == sorted(seen), "flushed_offset went backwards"
    assert all(s <= log.log_end_offset for s in seen)
    assert log.flush() == log.log_end_offset == 2000
    assert read_all(log) == stored
    log._close_fds()
    assert read_all(open_log(path, replace(SMALL, segment_bytes=8192))) == stored


def test_delete_with_queued_batches(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), now_ms=0)
    append_n(log, 3, defer=True)
    log.delete()
    assert not (tmp_path / "t-0").exists()
