"""The offsets journal on real files: framing, reopen, damaged tails, atomic rewrite, concurrent flush."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from unittest import mock

import pytest
from crc32c import crc32c

from odradek.log.journal import MAX_RECORD_BYTES, Journal

RECORDS = [b"first", b"y", b"x" * 1000, "unicode ☃".encode(), b"\x00\xff" * 7]


def frame(payload: bytes) -> bytes:
    """length u32 | crc32c u32 | payload, big-endian, as the module docstring specifies."""
    return struct.pack(">II", len(payload), crc32c(payload)) + payload


def written(path: Path, records: list[bytes]) -> Journal:
    j = Journal(path)
    assert j.open() == []
    j.append(records)
    j.flush()
    j.close()
    return j


def reopen(path: Path) -> tuple[Journal, list[bytes]]:
    j = Journal(path)
    return j, j.open()


def test_append_flush_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "j.journal"
    j = Journal(path)
    assert j.open() == [] and path.exists(), "open creates the file and its folder"
    j.append(RECORDS[:2])
    j.append([])
    j.append(RECORDS[2:])
    j.flush()
    assert path.read_bytes() == b"".join(frame(r) for r in RECORDS)
    assert j.size_bytes == path.stat().st_size
    j.close()
    j2, records = reopen(path)
    assert records == RECORDS and j2.size_bytes == path.stat().st_size
    j2.append([b"after reopen"])
    j2.close()
    assert reopen(path)[1] == [*RECORDS, b"after reopen"]


def test_close_is_idempotent_and_flush_without_changes_is_a_no_op(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    with mock.patch("odradek.log.journal.os.fsync") as fsync:
        j.flush()
    fsync.assert_not_called()
    j.append([b"a"])
    j.close()
    j.close()
    j.flush()


def test_oversized_record_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    with pytest.raises(ValueError, match="outside"):
        j.append([b"ok", b"\x00" * (MAX_RECORD_BYTES + 1)])
    with pytest.raises(ValueError, match="outside"):
        j.append([b"ok", b""])  # an empty record would be indistinguishable from zeroed disk
    j.close()
    assert (tmp_path / "j").read_bytes() == b""


def _cut_points(records: list[bytes]) -> list[tuple[int, int]]:
    """(cut position, how many records survive) for a cut inside every header and every payload."""
    points = []
    end = 0
    for i, r in enumerate(records):
        start = end
        end = start + 8 + len(r)
        for cut in sorted({start + 1, start + 4, start + 7, start + 8, end - 1}):
            if start < cut < end:
                points.append((cut, i))
    return points


@pytest.mark.parametrize(("cut", "survivors"), _cut_points(RECORDS))
def test_torn_tail_is_truncated_at_the_last_whole_record(tmp_path: Path, cut: int, survivors: int) -> None:
    path = tmp_path / "j"
    written(path, RECORDS)
    with open(path, "r+b") as f:
        f.truncate(cut)
    j, records = reopen(path)
    assert records == RECORDS[:survivors]
    good = sum(8 + len(r) for r in RECORDS[:survivors])
    assert path.stat().st_size == good == j.size_bytes, "the damaged tail is cut off"
    j.append([b"new"])
    j.close()
    assert reopen(path)[1] == [*RECORDS[:survivors], b"new"], "appends continue after the good prefix"


@pytest.mark.parametrize(
    ("victim", "where"),
    [
        (i, where)
        for i, r in enumerate(RECORDS)
        for where in ("length", "crc", "payload")
        if r or where != "payload"  # an empty record has no payload byte to flip
    ],
)
def test_flipped_byte_stops_replay_at_the_damaged_record(tmp_path: Path, victim: int, where: str) -> None:
    path = tmp_path / "j"
    written(path, RECORDS)
    start = sum(8 + len(r) for r in RECORDS[:victim])
    pos = {"length": start + 3, "crc": start + 5, "payload": start + 8 + len(RECORDS[victim]) // 2}[where]
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x40
    path.write_bytes(bytes(data))
    j, records = reopen(path)
    assert records == RECORDS[:victim]
    assert path.stat().st_size == start == j.size_bytes
    j.close()


def test_huge_length_field_is_damage_not_a_reason_to_read_16_mib(tmp_path: Path) -> None:
    path = tmp_path / "j"
    written(path, [b"good"])
    with open(path, "ab") as f:
        f.write(struct.pack(">II", MAX_RECORD_BYTES + 1, 0) + b"junk")
    assert reopen(path)[1] == [b"good"]
    assert path.stat().st_size == 12


def test_zero_filled_tail_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "j"
    written(path, [b'{"t":"commit","g":"g","o":[]}'])
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)
    records = reopen(path)[1]
    assert records == [b'{"t":"commit","g":"g","o":[]}']


def test_rewrite_replaces_the_content(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    j = Journal(path)
    j.open()
    j.append(RECORDS)
    j.rewrite([b"live-1", b"live-2"])
    assert path.read_bytes() == frame(b"live-1") + frame(b"live-2")
    assert j.size_bytes == path.stat().st_size
    assert not path.with_suffix(".tmp").exists()
    j.append([b"after"])
    j.flush()
    j.close()
    assert reopen(path)[1] == [b"live-1", b"live-2", b"after"]


def test_rewrite_to_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.open()
    j.append([b"a", b"b"])
    j.rewrite([])
    j.close()
    assert path.read_bytes() == b"" and reopen(path)[1] == []


def test_rewrite_interrupted_before_the_rename_leaves_the_old_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    j = Journal(path)
    j.open()
    j.append([b"old-1", b"old-2"])
    j.flush()
    with mock.patch("odradek.log.journal.os.replace", side_effect=OSError("crash before rename")):
        with pytest.raises(OSError, match="crash before rename"):
            j.rewrite([b"new"])
    assert reopen(path)[1] == [b"old-1", b"old-2"], "the old content is whole until the rename"
    j.append([b"old-3"])  # the journal is still usable
    j.close()
    assert reopen(path)[1] == [b"old-1", b"old-2", b"old-3"]


def test_rewrite_fsyncs_the_new_file_before_renaming_it(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    j = Journal(path)
    j.open()
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("replace")
        real_replace(src, dst)  # type: ignore[arg-type]

    with (
        mock.patch("odradek.log.journal.os.fsync", fsync),
        mock.patch("odradek.log.journal.os.replace", replace),
    ):
        j.rewrite([b"x"])
    j.close()
    assert events[:3] == ["fsync", "replace", "fsync"], "file fsynced, renamed, then the folder fsynced"


def test_flush_from_another_thread_while_appending(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.open()
    stop = threading.Event()
    errors: list[BaseException] = []
    flushes = 0

    def flusher() -> None:
        nonlocal flushes
        try:
            while not stop.is_set():
                j.flush()
                flushes += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    worker = threading.Thread(target=flusher)
    worker.start()
    expected = [f"record-{i}".encode() * (i % 7 + 1) for i in range(3000)]
    try:
        for i in range(0, len(expected), 3):
            j.append(expected[i : i + 3])
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive() and errors == [] and flushes > 0
    j.flush()
    assert j.size_bytes == path.stat().st_size == sum(8 + len(r) for r in expected)
    j.close()
    assert reopen(path)[1] == expected


def test_flush_races_rewrite(tmp_path: Path) -> None:
    """flush fsyncs a dup of the descriptor, so a rewrite closing the original meanwhile is harmless."""
    path = tmp_path / "j"
    j = Journal(path)
    j.open()
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                j.flush()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    worker = threading.Thread(target=flusher)
    worker.start()
    try:
        for i in range(200):
            j.append([f"a{i}".encode()])
            if i % 20 == 19:
                j.rewrite([f"snapshot-{i}".encode()])
    finally:
        stop.set()
        worker.join(timeout=30)
    assert errors == []
    j.close()
    assert reopen(path)[1] == [b"snapshot-199"]
