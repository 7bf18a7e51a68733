"""protocol.recompress: a batch rewritten in another codec keeps every record and every header field.

Batches are built by hand from the record batch v2 format (keys, values, null values, headers, uneven
timestamp and offset deltas), compressed with each codec, recompressed to every other codec and decoded
again with protocol.record_decode.
"""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol.recompress import (
    CODEC_BY_TYPE,
    Levels,
    compress,
    needs_recompression,
    recompress,
    target_codec,
)
from odradek.protocol.record_decode import decompress, records
from odradek.protocol.records import (
    ATTR_CODEC_MASK,
    ATTR_CONTROL,
    ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL,
    HEADER_SIZE,
    INVALID_RECORD,
    InvalidBatch,
    build_control_batch,
    read_header,
    validate_stored_batch,
)

from .batches import varint

CODECS = sorted(CODEC_BY_TYPE.values())
_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")


def _bytes_field(value: bytes | None) -> bytes:
    return varint(-1) if value is None else varint(len(value)) + value


def encode_record(offset_delta: int, ts_delta: int, key, value, headers) -> bytes:
    body = b"\x00" + varint(ts_delta) + varint(offset_delta) + _bytes_field(key) + _bytes_field(value)
    body += varint(len(headers))
    for hk, hv in headers:
        body += _bytes_field(hk.encode()) + _bytes_field(hv)
    return varint(len(body)) + body


def make(
    recs: list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    codec: int,
    *,
    base_offset: int = 0,
    leader_epoch: int = -1,
    base_timestamp: int = 1_700_000_000_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    flags: int = 0,
    levels: Levels | None = None,
) -> bytearray:
    """A v2 batch whose records section is ``recs`` (offset delta, ts delta, key, value, headers)."""
    section = b"".join(encode_record(*r) for r in recs)
    payload = compress(codec, section, levels or Levels())
    last_delta = recs[-1][0]
    max_ts = base_timestamp + max(r[1] for r in recs)
    after_crc = (
        _AFTER_CRC.pack(
            flags | codec,
            last_delta,
            base_timestamp,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            len(recs),
        )
        + payload
    )
    length = 4 + 1 + 4 + len(after_crc)
    return bytearray(_BEFORE_CRC.pack(base_offset, length, leader_epoch, 2, crc32c(after_crc)) + after_crc)


SAMPLE = [
    (0, 0, b"key-0", b"value-0" * 40, [("h1", b"one"), ("h2", None)]),
    (1, 7, None, b"no key", []),
    (2, 3, b"key-2", None, [("trace", b"\x00\x01\x02")]),
    (3, 1000, b"k" * 300, bytes(range(256)) * 20, [("", b"")]),
    (4, -5, b"key-4", b"v", []),
]


def decoded(batch) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records(bytes(batch))]


def header_fields(batch) -> dict:
    h = read_header(batch)
    fields = {k: getattr(h, k) for k in h.__dataclass_fields__}
    for changed in ("batch_length", "crc", "attributes"):
        fields.pop(changed)
    fields["flags"] = h.attributes & ~ATTR_CODEC_MASK
    return fields


@pytest.mark.parametrize("source", CODECS)
@pytest.mark.parametrize("target", CODECS)
def test_every_codec_pair_round_trips(source: int, target: int) -> None:
    original = make(SAMPLE, source, base_offset=0, producer_id=42, producer_epoch=3, base_sequence=17)
    out = recompress(original, read_header(original), target, Levels())
    header = validate_stored_batch(out, 0, len(out))
    assert header is not None, "recompressed batch has a valid CRC32C and length"
    assert header.codec == target
    assert header.size == len(out)
    assert header_fields(out) == header_fields(original)
    assert decoded(out) == decoded(original)
    assert [r[0] for r in decoded(out)] == [0, 1, 2, 3, 4]


def test_idempotent_and_transactional_fields_kept() -> None:
    original = make(
        SAMPLE,
        3,
        base_offset=0,
        leader_epoch=-1,
        producer_id=123456789,
        producer_epoch=7,
        base_sequence=2_000_000,
        flags=ATTR_TRANSACTIONAL,
    )
    out = recompress(original, read_header(original), 4, Levels())
    h = read_header(out)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (123456789, 7, 2_000_000)
    assert h.is_transactional and not h.is_control
    assert (h.base_timestamp, h.max_timestamp) == (1_700_000_000_000, 1_700_000_001_000)
    assert (h.record_count, h.last_offset_delta) == (5, 4)


def test_log_append_time_flag_kept() -> None:
    original = make(SAMPLE, 0, flags=ATTR_LOG_APPEND_TIME)
    out = recompress(original, read_header(original), 1, Levels())
    assert read_header(out).log_append_time
    assert read_header(out).codec == 1


def test_choice_of_target_and_when_to_rewrite() -> None:
    lz4 = read_header(make(SAMPLE, 3))
    plain = read_header(make(SAMPLE, 0))
    assert target_codec("producer", 3) == 3
    assert target_codec("uncompressed", 3) == 0
    assert not needs_recompression(lz4, "producer")
    assert not needs_recompression(lz4, "lz4")  # same codec: stored as sent, whatever the level
    assert needs_recompression(lz4, "zstd")
    assert needs_recompression(lz4, "uncompressed")
    assert needs_recompression(plain, "gzip")
    assert not needs_recompression(plain, "uncompressed")


def test_control_batches_are_never_compressed() -> None:
    marker = read_header(build_control_batch(5, 1, True, 0, 1_700_000_000_000))
    assert marker.is_control and marker.codec == 0
    for topic_codec in ("gzip", "snappy", "lz4", "zstd"):
        assert not needs_recompression(marker, topic_codec)
    compressed_marker = read_header(
        make(
            [(0, 0, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", [])],
            4,
            flags=ATTR_CONTROL | ATTR_TRANSACTIONAL,
        )
    )
    assert needs_recompression(compressed_marker, "gzip")  # Kafka only spares uncompressed markers


def _with_payload(batch: bytearray, codec: int, payload: bytes) -> bytearray:
    out = bytearray(batch[:HEADER_SIZE]) + payload
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">h", out, 21, codec)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return out


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_payload_that_does_not_inflate_is_refused_as_kafka_does(codec: int) -> None:
    """Kafka 4.4 answers UNKNOWN_SERVER_ERROR (-1) for a compressed batch that fails to decompress."""
    prefix = {1: b"\x1f\x8b\x08", 2: b"\xff\xff\xff\xff\x0f", 3: b"\x04\x22\x4d\x18", 4: b"\x28\xb5\x2f\xfd"}
    bad = _with_payload(make(SAMPLE, codec), codec, prefix[codec] + b"garbage-garbage")
    with pytest.raises(InvalidBatch) as e:
        recompress(bad, read_header(bad), 0 if codec != 0 else 4, Levels())
    assert e.value.error_code == -1


@pytest.mark.parametrize(
    "section",
    [
        b"\x01\x02\x03garbage-records",  # not records at all
        b"".join(encode_record(*r) for r in SAMPLE)[:-10],  # the last record is cut short
        b"".join(encode_record(*r) for r in SAMPLE) + b"\x00\x00",  # bytes after the last record
        b"".join(encode_record(*r) for r in SAMPLE[:4]),  # one record fewer than the header says
    ],
)
def test_inflated_bytes_that_are_not_the_declared_records_are_invalid(section: bytes) -> None:
    """Kafka 4.4: INVALID_RECORD (87) for each of these, measured with the same bytes."""
    bad = _with_payload(make(SAMPLE, 4), 4, compress(4, section))
    with pytest.raises(InvalidBatch) as e:
        recompress(bad, read_header(bad), 1, Levels())
    assert e.value.error_code == INVALID_RECORD


def test_output_is_framed_as_kafkas_own_codecs_write_it() -> None:
    section = b"".join(encode_record(*r) for r in SAMPLE) * 100  # several 32 / 64 KiB blocks
    lz4 = compress(3, section)
    flg = lz4[4]
    assert lz4[:4] == b"\x04\x22\x4d\x18"
    assert flg & 0x20, "independent blocks (Kafka's lz4 reader refuses linked ones)"
    assert not flg & 0x04, "no content checksum, as Kafka writes"
    assert lz4[5] == 0x40, "64 KiB blocks"
    snappy = compress(2, section)
    assert snappy.startswith(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
    assert compress(1, section)[:2] == b"\x1f\x8b"
    assert compress(4, section)[:4] == b"\x28\xb5\x2f\xfd"


def test_levels_reach_the_codecs() -> None:
    section = b"".join(b'{"id": %d, "n": "%x"}' % (i, i * i * 7919) for i in range(5000))
    fast, best = compress(1, section, Levels(gzip=1)), compress(1, section, Levels(gzip=9))
    assert (fast[8], best[8]) == (4, 2), "gzip's XFL byte: fastest / best compression"
    assert compress(1, section, Levels(gzip=-1)) == compress(1, section, Levels(gzip=6))
    assert compress(4, section, Levels(zstd=-50)) != compress(4, section, Levels(zstd=19))
    assert compress(3, section, Levels(lz4=9)) != compress(3, section, Levels(lz4=12))
    for codec in (1, 3, 4):
        assert decompress(codec, compress(codec, section, Levels(3, 3, 3))) == section
    assert Levels.from_configs({"compression.zstd.level": 7}) == Levels(-1, 9, 7)


_record = st.tuples(
    st.integers(-(2**20), 2**20),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=20))), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_record, min_size=1, max_size=20),
    st.sampled_from(CODECS),
    st.sampled_from(CODECS),
    st.integers(-(2**40), 2**40),
)
def test_random_batches_round_trip(recs, source: int, target: int, base_ts: int) -> None:
    batch = make([(i, *r) for i, r in enumerate(recs)], source, base_timestamp=base_ts + 2**41)
    out = recompress(batch, read_header(batch), target, Levels())
    assert validate_stored_batch(out, 0, len(out)) is not None
    assert read_header(out).codec == target
    assert decoded(out) == decoded(batch)
