"""Recovery on open: torn tails, flipped bytes, garbage, lost indexes, stray files."""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.protocol.records import validate_stored_batch

from .batches import (
    SMALL,
    append_n,
    batch_positions,
    crash,
    file_size,
    flip_byte,
    make_batch,
    open_log,
    read_all,
    segment_files,
)


@pytest.mark.parametrize("clean", [True, False])
def test_tail_truncated_mid_batch(tmp_path: Path, caplog: pytest.LogCaptureFixture, clean: bool) -> None:
    path = tmp_path / "t-0"
    log = open_log(path, replace(SMALL, segment_bytes=1 << 20))
    stored = append_n(log, 10)
    if clean:
        log.close(clean=True)
    else:
        log.flush()
        crash(log)
    seg = segment_files(path)[-1]
    os.truncate(seg, file_size(seg) - 7)
    with caplog.at_level(logging.INFO, logger="odradek.log"):
        again = open_log(path, replace(SMALL, segment_bytes=1 << 20))
    assert read_all(again) == stored[:9]
    assert again.log_end_offset == 18
    assert file_size(seg) == sum(len(b) for b in stored[:9])
    assert any("truncated segment" in r.message and "bytes dropped" in r.message for r in caplog.records)
    assert again.append(make_batch([b"next"]), leader_epoch=0, now_ms=0).base_offset == 18
    assert read_all(again)[:9] == stored[:9]


def test_flipped_byte_in_middle_batch_of_last_segment(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    config = replace(SMALL, segment_bytes=1 << 20)
    log = open_log(path, config)
    stored = append_n(log, 5)
    log.close(clean=True)
    seg = segment_files(path)[-1]
    pos, _, _ = batch_positions(seg.read_bytes())[2]
    flip_byte(seg, pos + 70)  # inside the records, covered by the CRC
    again = open_log(path, config)
    assert read_all(again) == stored[:2]
    assert again.log_end_offset == 4 and again.flushed_offset == 4
    assert (path / "recovery-point").read_text().strip() == "4", "recovery point lowered to the new end"


def test_flipped_byte_in_earlier_segment_removes_later_segments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 60)
    crash(log)  # never flushed: no recovery point, so every segment is validated
    segments = segment_files(path)
    assert len(segments) >= 5 and not (path / "recovery-point").exists()
    victim = segments[2]
    positions = batch_positions(victim.read_bytes())
    pos, base, _ = positions[1]
    flip_byte(victim, pos + 30)  # lastOffsetDelta/timestamps area: CRC covers it
    with caplog.at_level(logging.WARNING, logger="odradek.log"):
        again = open_log(path)
    assert again.log_end_offset == base
    assert read_all(again) == stored[: base // 2]
    assert segment_files(path) == segments[:3]
    removed = [p for s in segments[3:] for p in (s, s.with_suffix(".index"), s.with_suffix(".timeindex"))]
    assert removed and not any(p.exists() for p in removed)
    assert any(f"removed {len(segments) - 3} later segments" in r.message for r in caplog.records)


def test_base_offset_going_backwards_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    config = replace(SMALL, segment_bytes=1 << 20)
    log = open_log(path, config)
    stored = append_n(log, 6)
    crash(log)
    seg = segment_files(path)[0]
    pos, _, _ = batch_positions(seg.read_bytes())[4]
    with open(seg, "r+b") as f:  # base offset lies outside the CRC, so only the sequence check sees this
        f.seek(pos)
        f.write(struct.pack(">q", 2))
    again = open_log(path, config)
    assert read_all(again) == stored[:4]


@pytest.mark.parametrize("which", ["index", "timeindex", "both"])
def test_deleted_index_files_are_rebuilt(tmp_path: Path, which: str) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 60)
    log.close(clean=True)
    suffixes = [".index", ".timeindex"] if which == "both" else [f".{which}"]
    before = {p: p.read_bytes() for s in suffixes for p in segment_files(path, s)}
    assert len(before) >= 5 and any(before.values())
    for p in before:
        p.unlink()
    again = open_log(path)
    assert {p: p.read_bytes() for p in before} == before, "rebuilt indexes equal the ones written live"
    assert read_all(again) == stored
    for offset in range(0, again.log_end_offset, 7):
        assert bytes(again.read(offset, 1)[0]) == stored[offset // 2]
    assert again.offset_for_timestamp(1_000 + 10 * 33) == (66, 1_330)


def test_garbage_after_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 30)
    log.close(clean=True)
    seg = segment_files(path)[-1]
    size = file_size(seg)
    with open(seg, "ab") as f:
        f.write(b"\x00" * 100 + b"garbage" * 20)
    again = open_log(path)
    assert file_size(seg) == size
    assert read_all(again) == stored


def test_stray_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 30)
    log.close(clean=True)
    stray = [
        path / "00000000000000099999.index",
        path / "00000000000000099999.timeindex",
        path / "recovery-point.tmp",
    ]
    for p in stray:
        p.write_bytes(b"")
    first_index = segment_files(path, ".index")[0]
    content = first_index.read_bytes()
    first_index.write_bytes(b"")  # zero-length index of a real, multi-interval segment
    again = open_log(path)
    assert not any(p.exists() for p in stray)
    assert first_index.read_bytes() == content
    assert read_all(again) == stored


def test_index_pointing_past_log_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 40)
    log.close(clean=False)  # no marker: index files get the sanity check
    first_index = segment_files(path, ".index")[0]
    good = first_index.read_bytes()
    first_index.write_bytes(good[:-8] + struct.pack(">ii", 1, 900_000))
    again = open_log(path)
    assert first_index.read_bytes() == good
    assert read_all(again) == stored


def test_log_with_no_valid_batch(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    path.mkdir()
    (path / "00000000000000000042.log").write_bytes(b"\xff" * 500)
    log = open_log(path)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (42, 42, 0)
    assert file_size(path / "00000000000000000042.log") == 0
    result = log.append(make_batch([b"a"]), leader_epoch=0, now_ms=0)
    assert result.base_offset == 42
    got = bytes(log.read(42, 100)[0])
    assert validate_stored_batch(got, 0, len(got)) is not None


def test_lost_middle_segment_drops_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 60)
    crash(log)
    segments = segment_files(path)
    segments[2].unlink()  # a gap: offsets after it cannot be served
    again = open_log(path)
    end = int(segments[2].stem)
    assert again.log_end_offset == end
    assert read_all(again) == stored[: end // 2]
    assert segment_files(path) == segments[:2]


def test_unflushed_tail_after_crash_keeps_flushed_prefix(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    stored = append_n(log, 30)
    flushed = log.flush()
    later = append_n(log, 30)
    crash(log)
    for seg in segment_files(path):
        if int(seg.stem) >= flushed:
            seg.unlink()  # their directory entries never reached the disk
    again = open_log(path)
    assert again.log_end_offset >= flushed
    assert read_all(again)[: len(stored)] == stored
    assert read_all(again) == (stored + later)[: len(read_all(again))]
