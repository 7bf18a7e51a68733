"""Bad input, sent byte for byte to Odradek and to Apache Kafka 4.4, with the same assertions.

Each case checks the error code (or that the connection is closed, where Kafka closes it), that nothing
was appended, and that the broker still serves other connections. Differences are stated where they are.
"""

from __future__ import annotations

import datetime
import struct
import time

import pytest
from crc32c import crc32c
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7.request import CreateTopicsRequest
from kio.schema.fetch.v12.request import FetchRequest
from kio.schema.metadata.v12.request import MetadataRequest

from wire import WireClient, fetch_body, list_offsets, produce, record_batch

pytestmark = pytest.mark.differential

CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_RECORD = 87


def make_batch(n: int = 3, value_size: int = 10) -> bytearray:
    return bytearray(record_batch([(f"k{i}".encode(), b"v" * value_size) for i in range(n)]))


def reseal(batch: bytearray) -> bytearray:
    """Recompute the CRC so that only the intended fault is present."""
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return batch


def create_topic(
    client: WireClient, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    resp = client.request(
        CreateTopicsRequest,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()],
                }
            ],
            "timeout": datetime.timedelta(seconds=10),
            "validate_only": False,
        },
    )
    assert resp.topics[0].error_code == 0, resp


def latest_offset(client: WireClient, topic: str) -> int:
    p = list_offsets(client, topic)
    assert p.error_code == 0
    return p.offset


def fetch_one(client: WireClient, topic: str, offset: int) -> object:
    """One Fetch v12 of partition 0 from ``offset``; returns that partition's response."""
    resp = client.request(FetchRequest, fetch_body({(topic, 0): offset}, max_bytes=1 << 20))
    return resp.responses[0].partitions[0]


@pytest.fixture
def topic(broker, unique) -> str:
    name = unique("bad-input")
    with WireClient(broker.bootstrap) as c:
        create_topic(c, name, configs={"max.message.bytes": "2000"})
        # Kafka may answer UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_OR_FOLLOWER until the new topic has
        # propagated to its metadata cache.
        deadline = time.monotonic() + 10
        while (code := produce(c, name, make_batch()).error_code) in (3, 6) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert code == 0
    return name


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("bad_crc", CORRUPT_MESSAGE),
        ("magic_1", INVALID_RECORD),
        ("count_mismatch", INVALID_RECORD),
        ("control_bit", INVALID_RECORD),
        ("nonzero_base_offset", INVALID_RECORD),
        ("two_batches", INVALID_RECORD),
        ("too_large", MESSAGE_TOO_LARGE),
    ],
)
def test_corrupt_batches_are_refused_and_nothing_is_appended(
    broker, topic, fault: str, expected: int
) -> None:
    batch = make_batch(value_size=3000 if fault == "too_large" else 10)
    if fault == "bad_crc":
        batch[-1] ^= 0xFF
    elif fault == "magic_1":
        batch[16] = 1
    elif fault == "count_mismatch":
        struct.pack_into(">i", batch, 57, 7)
        reseal(batch)
    elif fault == "control_bit":
        attrs = struct.unpack_from(">h", batch, 21)[0] | 0x20
        struct.pack_into(">h", batch, 21, attrs)
        reseal(batch)
    elif fault == "nonzero_base_offset":
        struct.pack_into(">q", batch, 0, 5)
    elif fault == "two_batches":
        batch = batch + make_batch()
    with WireClient(broker.bootstrap) as c:
        before = latest_offset(c, topic)
        resp = produce(c, topic, batch)
        assert resp.error_code == expected, (broker.kind, fault, resp)
        assert latest_offset(c, topic) == before
        # The same connection and the broker stay usable.
        ok = produce(c, topic, make_batch())
        assert ok.error_code == 0
        assert ok.base_offset == before
    with WireClient(broker.bootstrap) as other:
        assert latest_offset(other, topic) == before + 3


def test_produce_to_unknown_topic(broker, unique) -> None:
    with WireClient(broker.bootstrap) as c:
        resp = produce(c, unique("never-created"), make_batch())
        assert resp.error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_produce_to_unknown_partition(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        assert produce(c, topic, make_batch(), partition=7).error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_fetch_unknown_topic(broker, unique) -> None:
    with WireClient(broker.bootstrap) as c:
        p = fetch_one(c, unique("nope"), 0)
        assert p.error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert (p.high_watermark, p.records) == (-1, b"")


def test_metadata_without_auto_create_reports_unknown_topic(broker, unique) -> None:
    name = unique("not-auto")
    with WireClient(broker.bootstrap) as c:
        resp = c.request(
            MetadataRequest,
            {
                "topics": [{"name": name, "topic_id": None}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        assert resp.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert resp.topics[0].partitions == ()


def test_fetch_out_of_range_offset(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        p = fetch_one(c, topic, 1000)
        assert p.error_code == 1  # OFFSET_OUT_OF_RANGE
        assert (p.high_watermark, p.records) == (-1, b"")  # Kafka reports no offsets with the error


def _api_versions_bytes(version: int, corr: int) -> bytes:
    # Header v2 (tagged fields) and a v3-shaped body: what a newer client would send.
    body = struct.pack(">hhih", 18, version, corr, 4) + b"test" + b"\x00" + b"\x02a\x021\x00"
    return struct.pack(">i", len(body)) + body


def test_api_versions_at_an_unknown_version_gets_v0_error_35(broker) -> None:
    with WireClient(broker.bootstrap) as c:
        c.send_raw(_api_versions_bytes(99, 11))
        frame = c.read_frame()
        corr, error, n = struct.unpack_from(">ihi", frame)
        assert (corr, error) == (11, 35)
        keys = [struct.unpack_from(">hhh", frame, 10 + 6 * i) for i in range(n)]
        assert [k[0] for k in keys] == [18]
        assert keys[0][1] == 0 and keys[0][2] >= 3
        # The connection stays open: a proper ApiVersions v3 now succeeds.
        resp = c.request(
            ApiVersionsRequest, {"client_software_name": "odradek-tests", "client_software_version": "1"}
        )
        assert resp.error_code == 0


@pytest.mark.parametrize(
    "case",
    [
        "garbage_body",
        "truncated_header",
        "unknown_api_key",
        "unsupported_version",
        "oversized_frame",
        "negative_frame",
    ],
)
def test_malformed_requests_close_the_connection(broker, topic, case: str) -> None:
    if case == "garbage_body":
        body = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00" + b"\xff\xff\xff\x7f"  # topics count absurd
        data = struct.pack(">i", len(body)) + body
    elif case == "truncated_header":
        data = struct.pack(">i", 3) + b"\x00\x03\x00"
    elif case == "unknown_api_key":
        body = struct.pack(">hhih", 999, 0, 1, -1)
        data = struct.pack(">i", len(body)) + body
    elif case == "unsupported_version":
        body = struct.pack(">hhih", 3, 99, 1, -1) + b"\x00"
        data = struct.pack(">i", len(body)) + body
    elif case == "oversized_frame":
        data = struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 100  # beyond socket.request.max.bytes
    else:
        data = struct.pack(">i", -5)
    with WireClient(broker.bootstrap) as c:
        c.send_raw(data)
        assert c.is_closed_by_peer(), (broker.kind, case)
    # Other connections are unaffected and nothing was appended.
    with WireClient(broker.bootstrap) as other:
        assert latest_offset(other, topic) == 3


def test_compacted_topic_refuses_records_without_keys(broker, unique) -> None:
    name = unique("compacted")
    keyless = record_batch([(b"k", b"v"), (None, b"no key")])
    with WireClient(broker.bootstrap) as c:
        create_topic(c, name, configs={"cleanup.policy": "compact"})
        deadline = time.monotonic() + 10
        while (resp := produce(c, name, keyless)).error_code in (
            3,
            6,
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert resp.error_code == INVALID_RECORD
        assert latest_offset(c, name) == 0
        assert produce(c, name, make_batch()).error_code == 0  # keyed records are fine


def test_connections_past_max_connections_are_closed_and_the_open_ones_keep_working(odradek_factory) -> None:
    broker = odradek_factory({"max.connections": "2"})
    body = {"client_software_name": "t", "client_software_version": "1"}
    first, second = WireClient(broker.bootstrap), WireClient(broker.bootstrap)
    try:
        assert int(first.request(ApiVersionsRequest, body).error_code) == 0
        assert int(second.request(ApiVersionsRequest, body).error_code) == 0
        third = WireClient(broker.bootstrap)
        try:
            with pytest.raises((ConnectionError, OSError, EOFError)):
                third.request(ApiVersionsRequest, body)
        finally:
            third.close()
        assert int(first.request(ApiVersionsRequest, body).error_code) == 0
    finally:
        first.close()
        second.close()

    # Once one closes, a new connection is served again.
    def served() -> bool:
        try:
            with WireClient(broker.bootstrap) as again:
                return int(again.request(ApiVersionsRequest, body).error_code) == 0
        except (ConnectionError, OSError, EOFError):
            return False

    deadline = time.monotonic() + 10
    while not served():
        assert time.monotonic() < deadline, "a connection slot was never freed"
        time.sleep(0.1)
