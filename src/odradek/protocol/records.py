"""Record batch v2 as bytes: header views, validation, and the two in-place patches the broker makes.

Batches are stored exactly as producers sent them. Only the base offset and the partition leader epoch
are rewritten; both lie outside the CRC, so no checksum is recomputed. Records themselves are decoded
only where semantics need it (control records, compaction keys), never on the produce or fetch path.

Header layout (61 bytes, big-endian)::

    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
    producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from crc32c import crc32c

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part of the header batchLength does not count
CRC_START = 21  # attributes onwards is covered by the CRC

ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_LENGTH = struct.Struct(">qi")
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")


class InvalidBatch(ValueError):
    """A batch that a broker must refuse. ``error_code`` is the Kafka error code to return."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


# Kafka error codes used by batch validation.
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies on the wire and on disk."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def codec(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_LOG_APPEND_TIME)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the 61-byte header at ``pos``. The caller checks that enough bytes are there."""
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def peek_offset_and_size(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(base offset, whole batch size) of the batch at ``pos``: enough to walk a log without decoding."""
    base_offset, batch_length = _OFFSET_LENGTH.unpack_from(buf, pos)
    return base_offset, batch_length + LOG_OVERHEAD


def compute_crc(batch: bytes | bytearray | memoryview) -> int:
    return crc32c(memoryview(batch)[CRC_START:])


def crc_ok(batch: bytes | bytearray | memoryview, header: BatchHeader) -> bool:
    return compute_crc(batch) == header.crc


def set_base_offset(batch: bytearray | memoryview, base_offset: int) -> None:
    _I64.pack_into(batch, 0, base_offset)


def set_leader_epoch(batch: bytearray | memoryview, epoch: int) -> None:
    _I32.pack_into(batch, 12, epoch)


def split_batches(records: bytes | bytearray | memoryview) -> list[memoryview]:
    """Split a Produce partition's records field into whole batches.

    Raises InvalidBatch (CORRUPT_MESSAGE) when the bytes do not divide into whole batches: a length
    field that runs past the end or is too small to hold a header.
    """
    view = memoryview(records)
    out: list[memoryview] = []
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise InvalidBatch(CORRUPT_MESSAGE, f"{end - pos} trailing bytes are too few for a batch header")
        _, size = peek_offset_and_size(view, pos)
        if size < HEADER_SIZE or pos + size > end:
            raise InvalidBatch(
                CORRUPT_MESSAGE, f"batch length {size - LOG_OVERHEAD} does not fit the request"
            )
        out.append(view[pos : pos + size])
        pos += size
    return out


def validate_produced_batch(
    batch: memoryview,
    *,
    max_batch_bytes: int,
    api_version: int,
) -> BatchHeader:
    """Check one batch as a producer sent it, with the codes Apache Kafka returns. No records decoded."""
    if len(batch) > max_batch_bytes:
        raise InvalidBatch(MESSAGE_TOO_LARGE, f"batch of {len(batch)} bytes exceeds {max_batch_bytes}")
    header = read_header(batch)
    if header.magic != 2:
        raise InvalidBatch(INVALID_RECORD, f"record batch magic {header.magic} is not supported; only v2")
    if not crc_ok(batch, header):
        raise InvalidBatch(CORRUPT_MESSAGE, "record batch CRC32C does not match its contents")
    if header.base_offset != 0:
        raise InvalidBatch(INVALID_RECORD, f"producer set base offset {header.base_offset}; must be 0")
    if header.record_count <= 0 or header.record_count != header.last_offset_delta + 1:
        raise InvalidBatch(
            INVALID_RECORD,
            f"record count {header.record_count} does not match last offset delta {header.last_offset_delta}",
        )
    if header.is_control:
        raise InvalidBatch(INVALID_RECORD, "producers may not send control batches")
    if header.codec not in CODEC_NAMES:
        raise InvalidBatch(UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression codec {header.codec}")
    if header.codec == 4 and api_version < 7:
        raise InvalidBatch(UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or later")
    if header.producer_id >= 0 and header.base_sequence < 0:
        raise InvalidBatch(INVALID_RECORD, "idempotent batch without a base sequence")
    return header


def validate_stored_batch(buf: bytes | bytearray | memoryview, pos: int, end: int) -> BatchHeader | None:
    """The batch at ``pos`` if it is whole and intact (used by recovery); None where the log is damaged."""
    if end - pos < HEADER_SIZE:
        return None
    _, size = peek_offset_and_size(buf, pos)
    if size < HEADER_SIZE or pos + size > end:
        return None
    header = read_header(buf, pos)
    if header.magic != 2 or header.record_count <= 0 or header.record_count != header.last_offset_delta + 1:
        return None
    if compute_crc(memoryview(buf)[pos : pos + size]) != header.crc:
        return None
    return header


# --- control batches (transaction markers) ---------------------------------------------------------

CONTROL_ABORT = 0
CONTROL_COMMIT = 1


def zigzag_varint(value: int) -> bytes:
    """``value`` as a zigzag varint of Kafka's record format."""
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def build_control_batch(
    producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int, timestamp_ms: int
) -> bytearray:
    """A transaction marker: one control record, key = (version 0, type), value = (version 0, coordinator
    epoch), in a transactional control batch with base sequence -1, as Kafka writes them."""
    key = struct.pack(">hh", 0, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = struct.pack(">hi", 0, coordinator_epoch)
    body = (
        b"\x00"  # record attributes
        + zigzag_varint(0)  # timestamp delta
        + zigzag_varint(0)  # offset delta
        + zigzag_varint(len(key))
        + key
        + zigzag_varint(len(value))
        + value
        + zigzag_varint(0)  # headers
    )
    record = zigzag_varint(len(body)) + body
    length = HEADER_SIZE - LOG_OVERHEAD + len(record)
    attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL
    batch = bytearray(
        _HEADER.pack(
            0, length, -1, 2, 0, attributes, 0, timestamp_ms, timestamp_ms, producer_id, producer_epoch, -1, 1
        )
    )
    batch += record
    struct.pack_into(">I", batch, 17, compute_crc(batch))
    return batch
