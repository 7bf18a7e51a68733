"""Decoding the records inside a v2 batch: only where semantics need it, never on the hot path.

Today that is ListOffsets by timestamp (the first record at or after a time, which may sit in the
middle of a batch). Compressed batches are inflated with cramjam (snappy, lz4, zstd) or zlib (gzip).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam

from .records import CONTROL_ABORT, CONTROL_COMMIT, HEADER_SIZE, BatchHeader, read_header

_XERIAL_MAGIC = b"\x82SNAPPY\x00"


class RecordDecodeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    try:
        if codec == 0:
            return bytes(data)
        if codec == 1:
            return gzip.decompress(data)
        if codec == 2:
            return _snappy(bytes(data))
        if codec == 3:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == 4:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except (OSError, ValueError, EOFError, zlib.error, cramjam.DecompressionError) as e:
        raise RecordDecodeError(f"cannot decompress batch (codec {codec}): {e}") from None
    raise RecordDecodeError(f"unknown compression codec {codec}")


def _snappy(data: bytes) -> bytes:
    """Snappy as producers send it: either one raw block, or Xerial's framing (Java's default)."""
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    pos = 16  # magic, version, compatible version
    out = bytearray()
    while pos < len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        out += cramjam.snappy.decompress_raw(data[pos : pos + size])
        pos += size
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """One zigzag varint of Kafka's record format at ``pos``: (value, position after it)."""
    # Hand-written: the zigzag varints of Kafka's record format have no maintained Python codec.
    raw = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise RecordDecodeError("varint runs past the batch")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise RecordDecodeError("varint too long")


def _bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise RecordDecodeError("record field runs past the batch")
    return buf[pos : pos + n], pos + n


def records(batch: bytes | memoryview, header: BatchHeader | None = None) -> Iterator[Record]:
    """Every record of a (possibly compressed) batch, with absolute offsets and timestamps."""
    h = header or read_header(batch)
    body = decompress(h.codec, memoryview(batch)[HEADER_SIZE : h.size])
    pos = 0
    for _ in range(h.record_count):
        length, pos = read_varint(body, pos)
        end = pos + length
        if end > len(body):
            raise RecordDecodeError("record runs past the batch")
        pos += 1  # attributes
        ts_delta, pos = read_varint(body, pos)
        offset_delta, pos = read_varint(body, pos)
        key, pos = _bytes(body, pos)
        value, pos = _bytes(body, pos)
        n_headers, pos = read_varint(body, pos)
        headers = []
        for _ in range(max(n_headers, 0)):
            hk, pos = _bytes(body, pos)
            hv, pos = _bytes(body, pos)
            headers.append(((hk or b"").decode("utf-8", "replace"), hv))
        pos = end
        ts = h.max_timestamp if h.log_append_time else h.base_timestamp + ts_delta
        yield Record(h.base_offset + offset_delta, ts, key, value, tuple(headers))


def control_type(batch: bytes | memoryview) -> int | None:
    """CONTROL_COMMIT or CONTROL_ABORT for a transaction marker batch; None if it is not one."""
    h = read_header(batch)
    if not h.is_control:
        return None
    for record in records(batch, h):
        if record.key is not None and len(record.key) >= 4:
            kind = struct.unpack_from(">h", record.key, 2)[0]
            if kind in (CONTROL_ABORT, CONTROL_COMMIT):
                return kind
    return None
