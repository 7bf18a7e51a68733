"""Record decoding, checked against batches built by a real client library (kafka-python)."""

from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from odradek.protocol.record_decode import RecordDecodeError, records
from odradek.protocol.records import read_header, validate_produced_batch

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def build(codec: int, n: int = 20, base_ts: int = 1_700_000_000_000) -> bytes:
    b = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(n):
        key = None if i % 3 == 0 else f"k{i}".encode()
        value = None if i % 5 == 0 else (f"value-{i}-" * 10).encode()
        b.append(i, timestamp=base_ts + i * 10, key=key, value=value, headers=[("h", f"{i}".encode())])
    return bytes(b.build())


@pytest.mark.parametrize("name", list(CODECS))
def test_records_round_trip_every_codec(name: str) -> None:
    batch = build(CODECS[name])
    header = validate_produced_batch(memoryview(batch), max_batch_bytes=1 << 20, api_version=9)
    assert header.codec == CODECS[name]
    got = list(records(batch))
    assert [r.offset for r in got] == list(range(20))
    assert [r.timestamp for r in got] == [1_700_000_000_000 + 10 * i for i in range(20)]
    assert got[0].key is None and got[1].key == b"k1"
    assert got[0].value is None and got[1].value == b"value-1-" * 10
    assert got[7].headers == (("h", b"7"),)


def test_corrupt_compressed_body_is_a_decode_error() -> None:
    batch = bytearray(build(CODECS["gzip"]))
    batch[70:80] = b"\x00" * 10
    with pytest.raises(RecordDecodeError):
        list(records(batch, read_header(batch)))
