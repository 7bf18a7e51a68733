"""The sans-IO codec: bytes in, typed requests out; dicts in, bytes out. No sockets."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.response_header.v1.header import ResponseHeader
from kio.serial import entity_reader

from odradek.protocol import codec
from odradek.protocol.apis import SUPPORTED, ApiKey


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def test_frame_reader_splits_arbitrary_chunks() -> None:
    payloads = [b"a" * 10, b"", b"xyz" * 100]
    stream = b"".join(frame(p) for p in payloads)
    reader = codec.FrameReader(max_frame_bytes=1000)
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += reader.feed(stream[i : i + 7])
    assert got == payloads
    assert reader.buffered_bytes == 0


@given(st.lists(st.binary(max_size=50), max_size=10), st.integers(min_value=1, max_value=64))
def test_frame_reader_any_split(payloads: list[bytes], step: int) -> None:
    stream = b"".join(frame(p) for p in payloads)
    reader = codec.FrameReader(max_frame_bytes=100)
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        got += reader.feed(stream[i : i + step])
    assert got == payloads


@pytest.mark.parametrize("size", [-1, 1001])
def test_frame_reader_refuses_sizes_out_of_bounds(size: int) -> None:
    reader = codec.FrameReader(max_frame_bytes=1000)
    with pytest.raises(codec.FrameTooLarge):
        reader.feed(struct.pack(">i", size))


def test_parse_header_and_body_of_a_real_client_request() -> None:
    # Metadata v9 is flexible: header v2 with tagged fields, compact strings and arrays.
    body = _metadata_v9_request(["orders", "payments"])
    header = struct.pack(">hhi", 3, 9, 42) + struct.pack(">h", 3) + b"cli" + b"\x00"
    data = header + body
    h = codec.parse_header(data)
    assert (h.api_key, h.api_version, h.correlation_id, h.client_id) == (3, 9, 42, "cli")
    request = codec.decode_request(h, data)
    assert [t.name for t in request.topics] == ["orders", "payments"]
    assert request.allow_auto_topic_creation is True


def _metadata_v9_request(names: list[str]) -> bytes:
    out = io.BytesIO()
    out.write(bytes([len(names) + 1]))  # compact array
    for n in names:
        out.write(bytes([len(n) + 1]) + n.encode() + b"\x00")  # compact string + tagged fields
    # allow_auto_topic_creation, include_cluster_/topic_authorized_operations, tagged fields
    out.write(b"\x01\x00\x00\x00")
    return out.getvalue()


def test_truncated_body_is_a_protocol_error() -> None:
    data = struct.pack(">hhi", 3, 9, 1) + b"\xff\xff\x00" + _metadata_v9_request(["orders"])[:-4]
    h = codec.parse_header(data)
    with pytest.raises(codec.ProtocolError):
        codec.decode_request(h, data)


def test_build_fills_defaults_and_drops_fields_the_version_lacks() -> None:
    data = {
        "brokers": [{"node_id": 1, "host": "h", "port": 9}],
        "cluster_id": "c",
        "controller_id": 1,
        "topics": [{"error_code": 3, "name": "x", "topic_id": None, "partitions": [], "not_a_field": 1}],
        "throttle_time": 5,
    }
    entity = codec.build(MetadataResponse, data)
    assert entity.topics[0].error_code == 3
    assert entity.throttle_time.total_seconds() == 0.005
    assert entity.brokers[0].rack is None


def test_encode_response_uses_flexible_header_except_for_api_versions() -> None:
    data = codec.encode_response(
        3, 12, 77, {"brokers": [], "cluster_id": None, "controller_id": 1, "topics": []}
    )
    (size,) = struct.unpack_from(">i", data)
    assert size == len(data) - 4
    hdr, used = entity_reader(ResponseHeader)(data, 4)
    assert hdr.correlation_id == 77
    assert used == 5  # correlation id + empty tagged fields


def test_api_versions_fallback_is_v0_with_error_35_and_only_its_own_range() -> None:
    data = codec.encode_api_versions_fallback(9)
    (corr,) = struct.unpack_from(">i", data, 4)
    assert corr == 9
    body, _ = entity_reader(ApiVersionsV0)(data, 8)
    assert body.error_code == 35
    r = SUPPORTED[ApiKey.API_VERSIONS]
    assert [(k.api_key, k.min_version, k.max_version) for k in body.api_keys] == [
        (18, r.min_version, r.max_version)
    ]


def test_old_produce_is_parsed_for_refusal() -> None:
    body = struct.pack(">hi", 1, 1000) + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
    body += struct.pack(">i", 2) + struct.pack(">ii", 0, 3) + b"abc" + struct.pack(">ii", 1, 0)
    data = struct.pack(">hhi", 0, 2, 5) + struct.pack(">h", -1) + body
    req = codec.decode_request(codec.parse_header(data), data)
    assert req == codec.OldProduceRequest(1, (("t", (0, 1)),))
    out = codec.encode_old_produce_response(
        2, 5, [{"name": "t", "partitions": [{"index": 0, "error_code": 35}]}]
    )
    assert struct.unpack_from(">ii", out, 4) == (5, 1)
    assert out.endswith(struct.pack(">ihqqi", 0, 35, -1, -1, 0))


def test_every_advertised_version_has_a_request_and_response_schema() -> None:
    for r in SUPPORTED.values():
        low = max(r.min_version, r.refused_below if r.refused_below > 0 else r.min_version)
        for v in range(low, r.max_version + 1):
            codec._request_class(r.key, v)
            codec._response_class(r.key, v)


def test_timestamps_keep_milliseconds_and_minus_one_means_none() -> None:
    from kio.schema.produce.v9.response import ProduceResponse

    data = {
        "responses": [
            {
                "name": "t",
                "partition_responses": [
                    {"index": 0, "error_code": 0, "base_offset": 5, "log_append_time": 1_700_000_000_123},
                    {"index": 1, "error_code": 0, "base_offset": 6, "log_append_time": -1},
                ],
            }
        ]
    }
    frame = codec.encode_response(0, 9, 1, data)
    body, _ = entity_reader(ProduceResponse)(frame, 4 + 5)
    parts = body.responses[0].partition_responses
    assert int(parts[0].log_append_time.timestamp() * 1000) == 1_700_000_000_123
    assert parts[1].log_append_time is None
