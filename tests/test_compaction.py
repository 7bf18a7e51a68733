"""Log compaction, differential: the same compacted topic on a private Odradek and a private Apache Kafka 4.4
(both with a fast cleaner) holds, once cleaned, exactly the last record of every key at its original
offset, and is still read from offset 0."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from support.kit import admin, read_to_end, wait_until
from support.odradek import OdradekBroker

pytestmark = pytest.mark.differential

FAST_CLEANER = {"log.cleaner.backoff.ms": "100"}
SEGMENT_MS = 1000
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
}


@pytest.fixture(params=["odradek", "kafka"])
def fast_cleaner_broker(request: pytest.FixtureRequest):
    if request.param == "odradek":
        return request.getfixturevalue("odradek_factory")(FAST_CLEANER)
    return request.getfixturevalue("kafka_factory")(FAST_CLEANER)


def _create(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
    wait_until(
        lambda: (
            (md := a.list_topics(topic=topic, timeout=5).topics.get(topic)) is not None
            and md.error is None
            and md.partitions[0].leader >= 0
        ),
        30,
        f"topic {topic} ready",
    )


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "log_level": 0})
    errors: list[str] = []
    for key, value in records:
        p.produce(topic, value, key, partition=0, on_delivery=lambda e, m: e and errors.append(str(e)))
    assert p.flush(30) == 0 and not errors, errors


def _scenario() -> list[tuple[bytes, bytes | None]]:
    """40 records over 13 keys, two of them ending in a tombstone (kept: delete.retention.ms is a day)."""
    out: list[tuple[bytes, bytes | None]] = [(b"k%02d" % (i % 13), b"v%02d" % i) for i in range(38)]
    return out + [(b"k03", None), (b"k07", None)]


def _rows(bootstrap: str, topic: str, group: str) -> list[tuple[int, bytes, bytes | None]]:
    msgs = read_to_end(bootstrap, topic, 1, committed=False, group=group, timeout=30)
    return [(m.offset(), m.key(), m.value()) for m in msgs]


def test_compacted_topic_keeps_the_last_value_per_key(fast_cleaner_broker, topic_name, group_name) -> None:
    bootstrap = fast_cleaner_broker.bootstrap
    _create(bootstrap, topic_name, TOPIC_CONFIG)
    records = _scenario()
    _produce(bootstrap, topic_name, records)
    last: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, (key, value) in enumerate(records):
        last[key] = (offset, value)
    time.sleep(SEGMENT_MS / 1000 + 0.3)
    _produce(bootstrap, topic_name, [(b"roll", b"r")])  # rolls the segment: the 40 records become cleanable
    expected = sorted([(o, k, v) for k, (o, v) in last.items()] + [(40, b"roll", b"r")])
    assert len(expected) == 14

    def compacted():
        rows = _rows(bootstrap, topic_name, group_name)
        return rows if len(rows) == len(expected) else None

    rows = wait_until(compacted, 60, "compaction to leave 13 keys and the roll record", interval=0.5)
    assert rows == expected
    # The log start and end are what they were: only records inside the log went.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group_name, "log_level": 0})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
        assert (low, high) == (0, 41)
        # A fetch from an offset compaction removed serves the next record still there.
        gone = next(o for o in range(41) if o not in {r[0] for r in rows})
        c.assign([TopicPartition(topic_name, 0, gone)])
        first = wait_until(lambda: c.poll(0.5), 20, "a record after a removed offset")
        assert first.error() is None and first.offset() == min(o for o, _, _ in rows if o > gone)
    finally:
        c.close()


def test_compaction_turned_on_at_run_time(fast_cleaner_broker, topic_name, group_name) -> None:
    """A topic created with cleanup.policy=delete and altered to compact (IncrementalAlterConfigs) is
    compacted from then on: the cleaner reads topic configs afresh every pass."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    bootstrap = fast_cleaner_broker.bootstrap
    _create(bootstrap, topic_name, {"segment.ms": str(SEGMENT_MS)})
    records = [(b"k%d" % (i % 3), b"v%d" % i) for i in range(12)]
    _produce(bootstrap, topic_name, records)
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in (("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.01"))
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=entries)
    a = admin(bootstrap)  # kept alive until the answer is in
    a.incremental_alter_configs([resource])[resource].result(30)
    time.sleep(SEGMENT_MS / 1000 + 0.3)
    _produce(bootstrap, topic_name, [(b"roll", b"r")])
    expected = [(9, b"k0", b"v9"), (10, b"k1", b"v10"), (11, b"k2", b"v11"), (12, b"roll", b"r")]

    def compacted():
        rows = _rows(bootstrap, topic_name, group_name)
        return rows if len(rows) == len(expected) else None

    assert wait_until(compacted, 60, "compaction after the policy changed", interval=0.5) == expected


CODECS = ("gzip", "snappy", "lz4", "zstd")


def test_compacted_compressed_batches_are_read_by_two_clients(fast_cleaner_broker, unique) -> None:
    """Batches the cleaner rewrote (re-compressed with the producer's codec) are read alike by librdkafka
    and kafka-python, and on Odradek by the Java client too."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    bootstrap = fast_cleaner_broker.bootstrap
    topics = {codec: unique(codec) for codec in CODECS}
    for topic in topics.values():
        _create(bootstrap, topic, TOPIC_CONFIG)
    for codec, topic in topics.items():
        p = Producer(
            {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50, "log_level": 0}
        )
        for i in range(600):
            p.produce(topic, (b"value-%d-" % i) * 20, b"k%02d" % (i % 20), partition=0)
        assert p.flush(30) == 0
    time.sleep(SEGMENT_MS / 1000 + 0.3)
    for topic in topics.values():
        _produce(bootstrap, topic, [(b"roll", b"r")])
    for codec, topic in topics.items():
        expected = sorted([(580 + k, b"k%02d" % k, (b"value-%d-" % (580 + k)) * 20) for k in range(20)])
        expected.append((600, b"roll", b"r"))
        group = unique("g")

        def compacted(topic=topic, expected=expected, group=group):
            rows = _rows(bootstrap, topic, group)
            return rows if len(rows) == len(expected) else None

        assert wait_until(compacted, 60, f"{codec} topic compacted", interval=0.5) == expected
        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            tp = KTopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got: list = []
            deadline = time.monotonic() + 20
            while len(got) < len(expected) and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=200).values():
                    got += [(m.offset, m.key, m.value) for m in msgs]
            assert got == expected, codec
        finally:
            c.close()
    if isinstance(fast_cleaner_broker, OdradekBroker):  # ...and by the Java client (Kafka's console consumer)
        from collections import Counter

        from support.kafka import run_kafka_tool

        out = run_kafka_tool(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            bootstrap,
            "--include",
            "|".join(topics.values()),
            "--from-beginning",
            "--max-messages",
            str(len(CODECS) * len(expected)),
            "--timeout-ms",
            "30000",
            "--property",
            "print.key=true",
            "--property",
            "print.offset=true",
            check=False,
        )
        lines = Counter(line for line in out.stdout.splitlines() if line.startswith("Offset:"))
        want = Counter(f"Offset:{o}\t{k.decode()}\t{v.decode()}" for o, k, v in expected for _ in CODECS)
        assert lines == want, out.stderr[-2000:]


def test_aborted_transactions_leave_a_compacted_topic(
    fast_cleaner_broker, topic_name, group_name, unique
) -> None:
    """Compaction removes the records of an aborted transaction (even read_uncommitted no longer sees
    them) and keeps the last committed value of each key, on both brokers."""
    bootstrap = fast_cleaner_broker.bootstrap
    _create(bootstrap, topic_name, TOPIC_CONFIG)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("txn"), "log_level": 0})
    p.init_transactions(30)
    for n, commit in enumerate((True, False, True, False)):
        p.begin_transaction()
        for k in range(3):
            p.produce(topic_name, b"t%d" % n, b"k%d" % k, partition=0)
        assert p.flush(30) == 0  # the aborted records too reach the log before the abort
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    time.sleep(SEGMENT_MS / 1000 + 0.3)
    _produce(bootstrap, topic_name, [(b"roll", b"r")])

    def compacted():
        rows = _rows(bootstrap, topic_name, group_name)
        return rows if len(rows) == 4 else None

    rows = wait_until(compacted, 60, "aborted records and older values compacted away", interval=0.5)
    # Offsets: each transaction takes three records and a marker, so the third one starts at 8.
    assert rows == [(8, b"k0", b"t2"), (9, b"k1", b"t2"), (10, b"k2", b"t2"), (16, b"roll", b"r")]
