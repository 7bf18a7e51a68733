"""The bounds check that runs before kio's native reader (which aborts the process on a huge length).

Every request class the broker decodes: a valid body (kio's own hypothesis strategies, written by kio's
writer) passes and is walked to its last byte; any truncation is refused; lengths that claim more than
the frame holds are refused, in flexible and legacy encodings, arrays, strings, bytes and tagged fields.
"""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.metadata.v4.request import MetadataRequest as MetadataV4
from kio.schema.metadata.v12.request import MetadataRequest as MetadataV12
from kio.schema.produce.v9.request import ProduceRequest as ProduceV9
from kio.serial import entity_writer
from kio.static.primitive import Records

from odradek.protocol import codec, guard
from odradek.protocol.apis import SUPPORTED

REQUEST_CLASSES = sorted(
    {
        codec._request_class(key, version)
        for key, r in SUPPORTED.items()
        for version in range(max(r.min_version, r.refused_below), r.max_version + 1)
    },
    key=lambda c: c.__module__,
)


# kio has no strategy for a records field (bytes on the wire): any bytes do for a bounds check.
st.register_type_strategy(Records, st.binary(max_size=64).map(Records))


def encode(entity: object) -> bytes:
    buf = io.BytesIO()
    entity_writer(type(entity))(buf, entity)
    return buf.getvalue()


def test_every_supported_request_class_is_covered() -> None:
    assert len(REQUEST_CLASSES) > 150  # every (api, version) the broker decodes with kio


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.data())
def test_valid_bodies_pass_and_truncated_ones_do_not(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(REQUEST_CLASSES))
    body = encode(data.draw(st.from_type(cls)))
    assert guard.check(cls, body, 0) == len(body)
    try:
        end = codec._reader(cls)(body, 0)[1]
    except ValueError:  # kio writes a few values it cannot read back (a timedelta beyond its range)
        end = None
    assert end in (None, len(body))  # kio's reader walks the same bytes
    assert guard.check(cls, b"pad" + body, 3) == len(body) + 3
    if body:
        cut = data.draw(st.integers(0, len(body) - 1))
        with pytest.raises(guard.BodyOutOfBounds):
            guard.check(cls, body[:cut], 0)


def test_flexible_array_length_beyond_the_frame() -> None:
    # Metadata v12 topics: compact array, uvarint 2^32 - 1 (= 2^32 - 2 elements) and 10 bytes left.
    with pytest.raises(guard.BodyOutOfBounds, match="runs past the end"):
        guard.check(MetadataV12, b"\xff\xff\xff\xff\x0f" + b"\0" * 10, 0)


def test_legacy_array_length_beyond_the_frame() -> None:
    with pytest.raises(guard.BodyOutOfBounds):
        guard.check(MetadataV4, struct.pack(">i", 0x7FFFFFFF) + b"\0" * 10, 0)


def test_string_and_bytes_lengths_beyond_the_frame() -> None:
    # Produce v9 (flexible): transactional_id compact string claims 1000 bytes.
    with pytest.raises(guard.BodyOutOfBounds):
        guard.check(ProduceV9, b"\xe9\x07" + b"x" * 20, 0)
    # acks, timeout, one topic "t", one partition 0, records claiming 2^31 bytes (compact: varint).
    body = b"\x00" + struct.pack(">hi", -1, 1000) + b"\x02\x02t" + b"\x02" + struct.pack(">i", 0)
    with pytest.raises(guard.BodyOutOfBounds):
        guard.check(ProduceV9, body + b"\x81\x80\x80\x80\x08" + b"\0" * 8, 0)


def test_unknown_tagged_field_is_refused() -> None:
    body = encode(
        MetadataV12(topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False)
    )
    assert body[-1] == 0  # no tagged fields
    with pytest.raises(guard.BodyOutOfBounds, match="tagged field 7"):
        guard.check(MetadataV12, body[:-1] + b"\x01\x07\x01\x00", 0)


def test_decode_request_turns_a_lying_length_into_a_protocol_error() -> None:
    header = struct.pack(">hhih", 3, 12, 1, 3) + b"cli" + b"\x00"
    frame = header + b"\xff\xff\xff\xff\x0f" + b"\0" * 10
    with pytest.raises(codec.ProtocolError, match="runs past the end"):
        codec.decode_request(codec.parse_header(frame), frame)
