"""A topic's ``compression.type`` applied to a producer's batch: batch bytes + target codec -> new bytes.

Sans-IO and pure. The records inside a v2 batch are encoded the same whatever the codec (the codec only
wraps their concatenation), so recompressing is: inflate the records section, check that it holds
exactly ``recordCount`` records, deflate it with the target codec, and write a new header that keeps
every field (base offset, leader epoch, last offset delta, timestamps, producer id and epoch, base
sequence, record count, the transactional / control / timestamp-type attributes) but the codec bits,
the batch length and the CRC32C. Keys, values, headers, timestamp and offset deltas are the producer's
bytes, so a reader decodes exactly the records the producer sent.

Apache Kafka's rule (LogValidator) is followed: ``producer`` keeps the producer's codec; a named codec
rewrites a batch only when its codec differs (a different level alone rewrites nothing); an
uncompressed control batch is never compressed. Output is written the way Kafka's own codecs write it,
so that every client can read it: lz4 as frames of independent 64 KiB blocks without a content checksum
(Kafka's reader refuses linked blocks), snappy in Xerial's framing (what the Java client expects).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cramjam

from .record_decode import RecordDecodeError, decompress
from .records import (
    ATTR_CODEC_MASK,
    HEADER_SIZE,
    INVALID_RECORD,
    LOG_OVERHEAD,
    BatchHeader,
    InvalidBatch,
    compute_crc,
)

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_BY_TYPE = {"uncompressed": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}

GZIP_DEFAULT_LEVEL = 6  # what compression.gzip.level=-1 means (zlib's default, as Java's Deflater)
LZ4_DEFAULT_LEVEL = 9  # Kafka compresses its default lz4 level with the fast compressor, others with HC
LZ4_HC_MAX_LEVEL = 12  # the lz4 library's highest HC level; lz4-java accepts up to 17 and clamps alike
SNAPPY_BLOCK_BYTES = 32 * 1024  # Xerial's default block size, as Kafka's Java snappy writer uses
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_I32 = struct.Struct(">i")
UNKNOWN_SERVER_ERROR = -1


@dataclass(frozen=True, slots=True)
class Levels:
    """``compression.gzip.level`` / ``compression.lz4.level`` / ``compression.zstd.level`` (KIP-390)."""

    gzip: int = -1
    lz4: int = LZ4_DEFAULT_LEVEL
    zstd: int = 3

    @classmethod
    def from_configs(cls, configs: dict) -> Levels:
        return cls(
            configs.get("compression.gzip.level", -1),
            configs.get("compression.lz4.level", LZ4_DEFAULT_LEVEL),
            configs.get("compression.zstd.level", 3),
        )


def target_codec(compression_type: str, source_codec: int) -> int:
    """The codec a batch is stored in: the producer's for ``producer``, else the topic's."""
    if compression_type == "producer":
        return source_codec
    return CODEC_BY_TYPE[compression_type]


def needs_recompression(header: BatchHeader, compression_type: str) -> bool:
    """True when the batch must be rewritten; False keeps the zero-copy path (nothing decoded)."""
    target = target_codec(compression_type, header.codec)
    if header.codec == target:
        return False
    return not (header.is_control and header.codec == NONE)  # Kafka never compresses a marker


def recompress(
    batch: bytes | bytearray | memoryview, header: BatchHeader, target: int, levels: Levels
) -> bytearray:
    """The same batch with its records in ``target``'s codec and a fresh CRC32C.

    Raises InvalidBatch with Apache Kafka 4.4's codes: UNKNOWN_SERVER_ERROR when the records do not
    inflate (Kafka's "Failed to decompress record stream" is not mapped to a specific code; measured),
    INVALID_RECORD when the inflated bytes do not hold exactly ``recordCount`` whole records.
    """
    view = memoryview(batch)[: header.size]
    body = inflate(view, header)
    _check_records(body, header.record_count)
    packed = compress(target, body, levels)
    out = bytearray(HEADER_SIZE + len(packed))
    out[:HEADER_SIZE] = view[:HEADER_SIZE]
    out[HEADER_SIZE:] = packed
    _I32.pack_into(out, 8, len(out) - LOG_OVERHEAD)
    attributes = (header.attributes & ~ATTR_CODEC_MASK) | target
    struct.pack_into(">h", out, 21, attributes)
    struct.pack_into(">I", out, 17, compute_crc(out))
    return out


def inflate(batch: bytes | bytearray | memoryview, header: BatchHeader) -> bytes:
    """The batch's records section, uncompressed; InvalidBatch(UNKNOWN_SERVER_ERROR) if it does not
    inflate, the code Apache Kafka 4.4 answers."""
    try:
        return decompress(header.codec, memoryview(batch)[HEADER_SIZE : header.size])
    except RecordDecodeError as e:
        raise InvalidBatch(UNKNOWN_SERVER_ERROR, str(e)) from None
    except cramjam.DecompressionError as e:  # record_decode.decompress lets cramjam's own error through
        message = f"cannot decompress batch (codec {header.codec}): {e}"
        raise InvalidBatch(UNKNOWN_SERVER_ERROR, message) from None


def compress(codec: int, data: bytes, levels: Levels = Levels()) -> bytes:
    """``data`` (a batch's records section) in ``codec``, written as Apache Kafka's codecs write it."""
    if codec == NONE:
        return data
    if codec == GZIP:
        # zlib rather than cramjam's gzip: at the default level it measured 1.5x faster here (and it is
        # the library Kafka's Deflater uses); it releases the GIL as cramjam does.
        level = GZIP_DEFAULT_LEVEL if levels.gzip == -1 else levels.gzip
        deflate = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: the gzip container
        return deflate.compress(data) + deflate.flush()
    if codec == SNAPPY:
        return _xerial_snappy(data)
    if codec == LZ4:
        level = 0 if levels.lz4 == LZ4_DEFAULT_LEVEL else min(levels.lz4, LZ4_HC_MAX_LEVEL)
        c = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        c.compress(data)
        return bytes(c.finish())
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(data, level=levels.zstd))
    raise ValueError(f"unknown compression codec {codec}")


def _xerial_snappy(data: bytes) -> bytes:
    """Xerial's stream framing: magic and versions, then (length, raw snappy block) per 32 KiB. cramjam
    writes raw blocks and the standard framing format only, not Xerial's, so the frame is written here."""
    parts = [_XERIAL_HEADER]
    view = memoryview(data)
    for pos in range(0, len(view), SNAPPY_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[pos : pos + SNAPPY_BLOCK_BYTES]))
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _check_records(body: bytes, count: int) -> None:
    """Walk the record lengths only: exactly ``count`` records must fill the inflated bytes.

    A per-record loop, but only on the recompression path (which rewrites the whole batch anyway) and
    bounded by the record count the header declares.
    """
    pos = 0
    end = len(body)
    for i in range(count):
        length = 0
        shift = 0
        while True:
            if pos >= end:
                raise InvalidBatch(INVALID_RECORD, f"record {i} of {count} is missing from the batch")
            b = body[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 28:
                raise InvalidBatch(INVALID_RECORD, f"record {i} has an invalid length")
        length = (length >> 1) ^ -(length & 1)
        if length <= 0 or pos + length > end:
            raise InvalidBatch(INVALID_RECORD, f"record {i} of length {length} does not fit the batch")
        pos += length
    if pos != end:
        raise InvalidBatch(INVALID_RECORD, f"{end - pos} bytes follow the last of {count} records")
