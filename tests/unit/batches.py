"""Storage test helpers: record batch v2 bytes built by hand from the format spec (not from a client),
and small wrappers to open logs, append numbered batches and read everything back."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from crc32c import crc32c

from odradek.log import LogConfig, PartitionLog
from odradek.protocol.records import (
    LOG_OVERHEAD,
    peek_offset_and_size,
    read_header,
    set_base_offset,
    set_leader_epoch,
    validate_stored_batch,
)

_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")


def varint(value: int) -> bytes:
    """Zigzag varint, as record fields use."""
    zz = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zz & 0x7F
        zz >>= 7
        if zz:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def record(offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None) -> bytes:
    body = b"\x00" + varint(timestamp_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(0)  # no headers
    return varint(len(body)) + body


def make_batch(
    values: list[bytes],
    *,
    timestamps: list[int] | None = None,
    base_timestamp: int = 1_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
) -> bytearray:
    """A valid uncompressed batch with base offset 0, as a producer sends it."""
    assert values, "a batch holds at least one record"
    stamps = timestamps if timestamps is not None else [base_timestamp + i for i in range(len(values))]
    first = stamps[0]
    pairs = enumerate(zip(stamps, values, strict=True))
    records = b"".join(record(i, ts - first, b"k%d" % i, value) for i, (ts, value) in pairs)
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            len(values) - 1,
            first,
            max(stamps),
            producer_id,
            producer_epoch,
            base_sequence,
            len(values),
        )
        + records
    )
    batch_length = 4 + 1 + 4 + len(after_crc)
    return bytearray(_BEFORE_CRC.pack(0, batch_length, -1, 2, crc32c(after_crc)) + after_crc)


def value_of(n: int, size: int = 20) -> bytes:
    """A recognisable payload: tests compare what comes back byte for byte."""
    return (b"v%08d-" % n).ljust(size, b"x")


SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128)


def open_log(path: Path, config: LogConfig = SMALL, now_ms: int = 0) -> PartitionLog:
    return PartitionLog.open(path, config, now_ms=now_ms)


def append_n(
    log: PartitionLog,
    count: int,
    *,
    records: int = 2,
    size: int = 20,
    start_ts: int = 1_000,
    now_ms: int = 0,
    defer: bool = False,
) -> list[bytes]:
    """Append ``count`` batches; returns each as it should be stored: the batch as given, with the base
    offset and leader epoch set (append leaves the caller's buffer alone)."""
    stored = []
    for i in range(count):
        n = log.log_end_offset
        batch = make_batch([value_of(n + r, size) for r in range(records)], base_timestamp=start_ts + 10 * i)
        log.append(batch, leader_epoch=3, now_ms=now_ms, defer=defer)
        stored.append(as_stored(batch, n, 3))
    return stored


def as_stored(batch: bytes | bytearray, base_offset: int, leader_epoch: int) -> bytes:
    """A batch as the log stores it: base offset and partition leader epoch set, nothing else changed."""
    stored = bytearray(batch)
    set_base_offset(stored, base_offset)
    set_leader_epoch(stored, leader_epoch)
    return bytes(stored)


def read_all(log: PartitionLog) -> list[bytes]:
    """Every batch from the log start, checking offsets are contiguous and every CRC holds."""
    out = [bytes(b) for b in log.read(log.log_start_offset, 1 << 30)]
    expected = log.log_start_offset
    for batch in out:
        header = validate_stored_batch(batch, 0, len(batch))
        assert header is not None, "a served batch failed validation"
        assert header.base_offset == expected, f"offset gap: {header.base_offset} != {expected}"
        expected = header.last_offset + 1
    assert expected == log.log_end_offset
    return out


def segment_files(path: Path, suffix: str = ".log") -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.endswith(suffix))


def batch_positions(data: bytes) -> list[tuple[int, int, int]]:
    """(position, base offset, last offset) of each batch in a segment file we wrote ourselves."""
    out = []
    pos = 0
    while pos + LOG_OVERHEAD <= len(data):
        _, size = peek_offset_and_size(data, pos)
        if size < 61 or pos + size > len(data):
            break
        header = read_header(data, pos)
        out.append((pos, header.base_offset, header.last_offset))
        pos += size
    return out


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


def crash(log: PartitionLog) -> None:
    """A killed process: descriptors gone, nothing flushed, no recovery point or marker written."""
    log._close_fds()


def file_size(path: Path) -> int:
    return os.stat(path).st_size


@contextlib.contextmanager
def flushing_in_thread(log: PartitionLog) -> Iterator[list[int]]:
    """Flush ``log`` in a loop in another thread while the body runs (as the flusher does); yields the
    flushed offsets seen, and re-raises a flush's error after the body."""
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def flusher() -> None:
        try:
            while not done.is_set():
                seen.append(log.flush())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
    assert not errors, errors
