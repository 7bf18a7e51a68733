"""Topic ``compression.type`` applied, on Odradek and on Apache Kafka 4.4 with the same assertions.

Producers send one codec into a topic configured with another; the raw batches fetched back (through
the small wire client, so nothing is decoded on the way) must carry the topic's codec, or the
producer's for ``producer``, and the records read back with confluent-kafka must be the ones sent.
Idempotent and transactional producers keep working into a recompressing topic, and transaction
markers stay uncompressed. Broken compressed batches get Kafka's error codes.
"""

from __future__ import annotations

import datetime
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from crc32c import crc32c
from kio.schema.fetch.v12.request import FetchRequest
from kio.schema.produce.v9.request import ProduceRequest

from odradek.protocol.recompress import Levels, compress
from odradek.protocol.records import HEADER_SIZE, read_header
from support.kit import admin, read_to_end, wait_until
from unit.batches import make_batch
from wire import WireClient, fetch_body

CODEC = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# compression.type of the topic -> what the producer sends (always something else, but for `producer`)
PRODUCER_CODEC = {
    "zstd": "lz4",
    "gzip": "zstd",
    "lz4": "gzip",
    "snappy": "zstd",
    "uncompressed": "lz4",
    "producer": "gzip",
}


def create_topic(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)])[topic].result(
        30
    )

    def ready() -> bool:
        md = a.list_topics(topic=topic, timeout=5).topics.get(topic)
        return md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values())

    wait_until(ready, 30, f"topic {topic} ready")


def raw_batches(bootstrap: str, topic: str) -> list[bytes]:
    """Every stored batch of partition 0, as the broker serves it (Fetch v12, read_uncommitted)."""
    out: list[bytes] = []
    offset = 0
    with WireClient(bootstrap) as c:
        for _ in range(1000):
            resp = c.request(FetchRequest, _fetch(topic, offset))
            part = resp.responses[0].partitions[0]
            assert part.error_code == 0, part
            data = part.records or b""
            pos = 0
            while pos + HEADER_SIZE <= len(data):
                h = read_header(data, pos)
                if pos + h.size > len(data):
                    break  # a partial batch at the end of the answer
                out.append(bytes(data[pos : pos + h.size]))
                offset = h.base_offset + h.last_offset_delta + 1
                pos += h.size
            if offset >= part.high_watermark:
                return out
    raise AssertionError(f"could not fetch {topic} to its end")


def _fetch(topic: str, offset: int) -> dict:
    return fetch_body({(topic, 0): offset}, max_bytes=1 << 22, partition_max_bytes=1 << 22)


def produce_raw(bootstrap: str, topic: str, batch: bytes) -> tuple[int, int]:
    """(error code, base offset) of one Produce v9 of ``batch`` with acks=all."""
    with WireClient(bootstrap) as c:
        resp = c.request(
            ProduceRequest,
            {
                "transactional_id": None,
                "acks": -1,
                "timeout": datetime.timedelta(seconds=10),
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            },
        )
    p = resp.responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def with_payload(batch: bytes | bytearray, codec: int, payload: bytes) -> bytes:
    """``batch``'s header over another records section in ``codec``, with a valid CRC32C."""
    out = bytearray(batch[:HEADER_SIZE]) + payload
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">h", out, 21, codec)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def sample_messages(n: int, now_ms: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]], int]]:
    return [
        (
            b"key-%d" % i,
            b'{"n": %d, "text": "%s"}' % (i, b"payload " * (i % 7 + 10)),
            [("h", b"%d" % i), ("trace", b"t-%d" % (i * 31))],
            now_ms - 1000 + i,
        )
        for i in range(n)
    ]


def read_back(bootstrap: str, topic: str, group: str, *, committed: bool = False) -> list[tuple]:
    msgs = read_to_end(bootstrap, topic, 1, committed=committed, group=group, timeout=30)
    return [(m.key(), m.value(), m.headers() or [], m.timestamp()[1]) for m in msgs]


@pytest.mark.parametrize("topic_codec", list(PRODUCER_CODEC))
def test_batches_are_stored_in_the_topics_codec(broker, unique, topic_codec: str) -> None:
    topic = unique("compressed")
    create_topic(broker.bootstrap, topic, {"compression.type": topic_codec})
    sent_codec = PRODUCER_CODEC[topic_codec]
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": sent_codec,
            "linger.ms": 20,
            "batch.num.messages": 40,
            "log_level": 0,
        }
    )
    sent = sample_messages(120, int(time.time() * 1000))
    for key, value, headers, ts in sent:
        p.produce(topic, value=value, key=key, headers=headers, timestamp=ts)
    assert p.flush(30) == 0

    batches = raw_batches(broker.bootstrap, topic)
    expected = CODEC[sent_codec] if topic_codec == "producer" else CODEC[topic_codec]
    assert batches
    assert {read_header(b).codec for b in batches} == {expected}
    assert sum(read_header(b).record_count for b in batches) == len(sent)
    assert read_back(broker.bootstrap, topic, unique("g")) == [(k, v, h, ts) for k, v, h, ts in sent]


def test_kafka_python_producer_into_a_recompressing_topic(broker, unique) -> None:
    from kafka import KafkaProducer

    topic = unique("kp")
    create_topic(broker.bootstrap, topic, {"compression.type": "zstd"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=20)
    sent = sample_messages(60, int(time.time() * 1000))
    for key, value, headers, ts in sent:
        producer.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts)
    producer.flush(30)
    producer.close()
    batches = raw_batches(broker.bootstrap, topic)
    assert {read_header(b).codec for b in batches} == {CODEC["zstd"]}
    assert read_back(broker.bootstrap, topic, unique("g")) == [(k, v, h, ts) for k, v, h, ts in sent]


def test_idempotent_producer_into_a_recompressing_topic(broker, unique) -> None:
    topic = unique("idem")
    create_topic(broker.bootstrap, topic, {"compression.type": "zstd"})
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 5,
            "batch.num.messages": 25,
            "log_level": 0,
        }
    )
    values = [b"idempotent-%d" % i for i in range(300)]
    for v in values:
        p.produce(topic, value=v)
        p.poll(0)
    assert p.flush(30) == 0

    headers = [read_header(b) for b in raw_batches(broker.bootstrap, topic)]
    assert {h.codec for h in headers} == {CODEC["zstd"]}
    assert len({h.producer_id for h in headers}) == 1 and headers[0].producer_id >= 0
    expected_sequence = 0
    for h in headers:  # the producer's sequence numbers survive the rewrite, batch after batch
        assert h.base_sequence == expected_sequence
        assert h.base_offset == expected_sequence
        expected_sequence += h.record_count
    assert [m[1] for m in read_back(broker.bootstrap, topic, unique("g"))] == values


def test_transactional_producer_into_a_recompressing_topic(broker, unique) -> None:
    topic = unique("txn")
    create_topic(broker.bootstrap, topic, {"compression.type": "gzip"})
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": unique("tx"),
            "compression.type": "lz4",
            "linger.ms": 5,
            "log_level": 0,
        }
    )
    p.init_transactions(30)
    committed: list[bytes] = []
    for round_, commit in enumerate((True, False, True)):
        p.begin_transaction()
        for i in range(40):
            value = b"round-%d-%d" % (round_, i)
            p.produce(topic, value=value)
            if commit:
                committed.append(value)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    def all_markers() -> list | None:  # Kafka writes the markers just after commit_transaction returns
        headers = [read_header(b) for b in raw_batches(broker.bootstrap, topic)]
        return headers if sum(h.is_control for h in headers) >= 3 else None

    headers = wait_until(all_markers, 30, "three transaction markers in the log")
    data = [h for h in headers if not h.is_control]
    markers = [h for h in headers if h.is_control]
    assert {h.codec for h in data} == {CODEC["gzip"]}
    assert all(h.is_transactional and h.producer_id >= 0 for h in data)
    assert len(markers) == 3
    assert {h.codec for h in markers} == {0}, "transaction markers are never compressed"
    got = read_back(broker.bootstrap, topic, unique("g"), committed=True)
    assert [m[1] for m in got] == committed


def test_broken_compressed_batches_get_kafkas_error_codes(broker, unique) -> None:
    topic = unique("broken")
    create_topic(broker.bootstrap, topic, {"compression.type": "gzip"})
    base = make_batch([b"one", b"two", b"three"], base_timestamp=int(time.time() * 1000))
    section = bytes(base[HEADER_SIZE:])
    not_lz4 = with_payload(base, CODEC["lz4"], b"\x04\x22\x4d\x18" + b"garbage" * 4)
    cut_short = with_payload(base, CODEC["zstd"], compress(CODEC["zstd"], section[:-4]))
    not_records = with_payload(base, CODEC["zstd"], compress(CODEC["zstd"], b"\x01\x02\x03 not records"))
    good = with_payload(base, CODEC["snappy"], compress(CODEC["snappy"], section))
    assert produce_raw(broker.bootstrap, topic, not_lz4)[0] == -1  # UNKNOWN_SERVER_ERROR, as Kafka
    assert produce_raw(broker.bootstrap, topic, cut_short)[0] == 87  # INVALID_RECORD
    assert produce_raw(broker.bootstrap, topic, not_records)[0] == 87
    assert produce_raw(broker.bootstrap, topic, good) == (0, 0)
    batches = raw_batches(broker.bootstrap, topic)
    assert [read_header(b).codec for b in batches] == [CODEC["gzip"]]


def test_the_zstd_level_reaches_the_stored_batch(broker, unique) -> None:
    records = [b"%d: the quick brown fox jumps over the lazy dog %d" % (i, i % 10) for i in range(2000)]
    batch = make_batch(records, base_timestamp=int(time.time() * 1000))
    sizes = {}
    for level in ("-100", "19"):
        topic = unique("lvl")
        create_topic(broker.bootstrap, topic, {"compression.type": "zstd", "compression.zstd.level": level})
        assert produce_raw(broker.bootstrap, topic, bytes(batch))[0] == 0
        [stored] = raw_batches(broker.bootstrap, topic)
        assert read_header(stored).codec == CODEC["zstd"]
        sizes[level] = len(stored)
    assert sizes["-100"] > 2 * sizes["19"], sizes


def test_pipelined_batches_keep_their_order_when_only_some_are_recompressed(broker, unique) -> None:
    """A recompressed batch followed at once, on the same connection, by one stored as sent (and then
    another recompressed one): the log holds them in the order they were sent."""
    topic = unique("order")
    create_topic(broker.bootstrap, topic, {"compression.type": "zstd"})
    now = int(time.time() * 1000)
    big = make_batch([b"big-%d " % i + b"x" * 2000 for i in range(400)], base_timestamp=now)
    first = with_payload(big, CODEC["lz4"], compress(CODEC["lz4"], bytes(big[HEADER_SIZE:])))
    small = make_batch([b"second"], base_timestamp=now)
    second = with_payload(small, CODEC["zstd"], compress(CODEC["zstd"], bytes(small[HEADER_SIZE:])))
    last = make_batch([b"third"], base_timestamp=now)  # uncompressed: recompressed too
    with WireClient(broker.bootstrap) as c:
        ids = []
        for batch in (first, second, bytes(last)):
            corr = c.next_correlation_id()
            data = {
                "transactional_id": None,
                "acks": -1,
                "timeout": datetime.timedelta(seconds=10),
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            }
            c.send_raw(c.encode_request(ProduceRequest, data, corr))
            ids.append(corr)
        answers = [c.read_response(0, 9, corr).responses[0].partition_responses[0] for corr in ids]
    assert [(a.error_code, a.base_offset) for a in answers] == [(0, 0), (0, 400), (0, 401)]
    stored = raw_batches(broker.bootstrap, topic)
    assert [(read_header(b).base_offset, read_header(b).codec) for b in stored] == [
        (0, 4),
        (400, 4),
        (401, 4),
    ]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_batches_compressed_as_the_broker_writes_them_are_read_by_kafkas_codecs(
    broker, unique, codec
) -> None:
    """Odradek's own output framing (lz4 frames, Xerial snappy, ...) sent to a topic that stores it
    uncompressed: Kafka's Java codecs must inflate it, and the records come back intact."""
    topic = unique("framing")
    create_topic(broker.bootstrap, topic, {"compression.type": "uncompressed"})
    values = [b"%d: framing %s " % (i, codec.encode()) * 30 for i in range(300)]  # several 32 KiB blocks
    base = make_batch(values, base_timestamp=int(time.time() * 1000))
    batch = with_payload(base, CODEC[codec], compress(CODEC[codec], bytes(base[HEADER_SIZE:])))
    assert produce_raw(broker.bootstrap, topic, batch) == (0, 0)
    assert [read_header(b).codec for b in raw_batches(broker.bootstrap, topic)] == [0]
    assert [m[1] for m in read_back(broker.bootstrap, topic, unique("g"))] == values


def test_log_append_time_topic_that_recompresses(broker, unique) -> None:
    topic = unique("lat")
    create_topic(
        broker.bootstrap, topic, {"compression.type": "zstd", "message.timestamp.type": "LogAppendTime"}
    )
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "snappy", "log_level": 0})
    before = int(time.time() * 1000)
    for i in range(20):
        p.produce(topic, value=b"stamped-%d" % i, timestamp=1_000_000 + i)  # replaced by the broker's time
    assert p.flush(30) == 0
    headers = [read_header(b) for b in raw_batches(broker.bootstrap, topic)]
    assert all(h.codec == CODEC["zstd"] and h.log_append_time for h in headers)
    assert all(h.max_timestamp >= before - 1000 for h in headers)
    msgs = read_to_end(broker.bootstrap, topic, 1, committed=False, group=unique("g"), timeout=30)
    assert [m.value() for m in msgs] == [b"stamped-%d" % i for i in range(20)]
    stamps = [h.max_timestamp for h in headers for _ in range(h.record_count)]
    assert [m.timestamp() for m in msgs] == [(2, ts) for ts in stamps]  # TIMESTAMP_LOG_APPEND_TIME


def test_broken_compressed_batches_into_a_compacted_topic(broker, unique) -> None:
    """A compacted topic decodes every batch for its keys, whatever its codec: the same codes."""
    topic = unique("compact")
    create_topic(broker.bootstrap, topic, {"cleanup.policy": "compact"})
    base = make_batch([b"one", b"two"], base_timestamp=int(time.time() * 1000))
    not_snappy = with_payload(base, CODEC["snappy"], b"\xff\xff\xff\xff\x0f" + b"garbage" * 4)
    not_records = with_payload(base, CODEC["zstd"], compress(CODEC["zstd"], b"\x01\x02\x03 not records"))
    good = with_payload(base, CODEC["lz4"], compress(CODEC["lz4"], bytes(base[HEADER_SIZE:])))
    assert produce_raw(broker.bootstrap, topic, not_snappy)[0] == -1
    assert produce_raw(broker.bootstrap, topic, not_records)[0] == 87
    assert produce_raw(broker.bootstrap, topic, good) == (0, 0)


def test_compression_type_altered_on_a_live_topic(broker, unique) -> None:
    """IncrementalAlterConfigs turns recompression on for a topic that has data: later batches only."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    topic = unique("alter")
    create_topic(broker.bootstrap, topic, {})
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "log_level": 0})
    p.produce(topic, value=b"before " * 50)
    assert p.flush(30) == 0
    entry = ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    a = admin(broker.bootstrap)
    a.incremental_alter_configs([resource])[resource].result(30)

    def applied() -> bool:  # Kafka applies a topic config change a moment after answering
        p.produce(topic, value=b"after " * 50)
        assert p.flush(30) == 0
        return read_header(raw_batches(broker.bootstrap, topic)[-1]).codec == CODEC["zstd"]

    wait_until(applied, 30, "compression.type=zstd applied")
    assert read_header(raw_batches(broker.bootstrap, topic)[0]).codec == CODEC["lz4"]  # stored as it was


def test_bench_compression_runs(tmp_path: Path) -> None:
    """``python -m bench.compression`` keeps working (Odradek only, one short round): every row has a
    figure, and the recompressed rows take less room than lz4 as sent."""
    from support.odradek import REPO_ROOT

    results = tmp_path / "results"
    argv = ["--only", "odradek", "--seconds", "0.5", "--rounds", "1", "--results-dir", str(results)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compression", *argv, "--work-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    [report] = [json.loads(f.read_text()) for f in results.glob("*-compression.json")]
    rows = report["brokers"]["odradek"]["rows"]
    assert set(rows) == {"producer<-lz4", "lz4<-lz4", "zstd<-lz4", "gzip<-lz4", "zstd<-none"}
    assert all(r["msg_per_s"] > 0 for r in rows.values())
    assert rows["zstd<-lz4"]["stored_bytes_per_msg"] < rows["producer<-lz4"]["stored_bytes_per_msg"]
    assert rows["gzip<-lz4"]["stored_bytes_per_msg"] < rows["lz4<-lz4"]["stored_bytes_per_msg"]


@pytest.mark.parametrize("kind", ["odradek", "kafka"])
def test_broker_default_compression_type_and_level(request, unique, kind: str) -> None:
    """The broker's ``compression.type`` and ``compression.zstd.level`` apply to a topic without its own;
    a topic's own ``compression.type`` still wins."""
    settings = {"compression.type": "zstd", "compression.zstd.level": "-100"}
    factory = request.getfixturevalue(f"{kind}_factory")
    broker = factory(settings=settings)
    records = [b"%d: the quick brown fox jumps over the lazy dog %d" % (i, i % 10) for i in range(2000)]
    batch = make_batch(records, base_timestamp=int(time.time() * 1000))
    stored = {}
    for name, config in (("default", {}), ("own", {"compression.type": "gzip"})):
        topic = unique(name)
        create_topic(broker.bootstrap, topic, config)
        assert produce_raw(broker.bootstrap, topic, bytes(batch))[0] == 0
        [stored[name]] = raw_batches(broker.bootstrap, topic)
    assert read_header(stored["default"]).codec == CODEC["zstd"]
    assert read_header(stored["own"]).codec == CODEC["gzip"]
    level_19 = len(compress(CODEC["zstd"], bytes(batch[HEADER_SIZE:]), Levels(zstd=19)))
    assert len(stored["default"]) - HEADER_SIZE > 2 * level_19, "the broker's level -100 was used"


def test_zstd_batches_are_served_to_fetch_versions_before_10_as_kafka_4_does(broker, unique) -> None:
    """KIP-110 once refused zstd to Fetch below v10 (UNSUPPORTED_COMPRESSION_TYPE); Kafka 4.4, which no
    longer down-converts, serves the stored batch to v9 as to v12."""
    from kio.schema.fetch.v9.request import FetchRequest as FetchRequestV9

    topic = unique("zstd-old-fetch")
    create_topic(broker.bootstrap, topic, {"compression.type": "zstd"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "linger.ms": 0})
    p.produce(topic, b"v", key=b"k")
    assert p.flush(30) == 0
    body = _fetch(topic, 0)
    for key in ("rack_id", "forgotten_topics_data"):
        body.pop(key)
    for part in body["topics"][0]["partitions"]:
        part.pop("last_fetched_epoch")
    body["forgotten_topics_data"] = []
    with WireClient(broker.bootstrap) as c:
        old = c.request(FetchRequestV9, body).responses[0].partitions[0]
        new = c.request(FetchRequest, _fetch(topic, 0)).responses[0].partitions[0]
    assert int(new.error_code) == 0 and new.records
    assert int(old.error_code) == 0, old
    assert bytes(old.records) == bytes(new.records)
    assert read_header(bytes(old.records), 0).attributes & 7 == CODEC["zstd"]
