"""Produce and consume with real clients, every compression codec, against Odradek and Apache Kafka.

Consumers use manual assignment from offset 0, independent of consumer groups.
Each assertion below holds on both brokers: with ``compression.type=producer`` (the default on both)
the broker keeps the producer's codec and the consumer decompresses, so what comes back must be
byte-for-byte what went in, at the offsets the producer was acknowledged.
"""

from __future__ import annotations

import time

import pytest
from kclients import (
    COMPRESSIONS,
    LIBRARIES,
    Confluent,
    assert_partition_order,
    ends_of,
    expected_records,
    mixed_messages,
)

PARTITIONS = 3
N = 200


def _by_position(rows):
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _check_roundtrip(bootstrap, topic, producer, consumer, compression, *, n=N):
    msgs = mixed_messages(
        n,
        PARTITIONS,
        null_header_values=producer.null_header_values,
        null_key_and_value=producer.null_key_and_value,
        seed=compression,
    )
    t0 = int(time.time() * 1000)
    placed = producer.produce(bootstrap, topic, msgs, compression=compression, acks="all")
    t1 = int(time.time() * 1000)
    want = expected_records(msgs, placed)

    # A fresh topic: each partition's acknowledged offsets are exactly 0..count-1.
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o in placed if q == p)
        assert offsets == list(range(len(offsets))), f"partition {p} offsets {offsets}"

    ends = ends_of(placed, PARTITIONS)
    recs = consumer.consume(bootstrap, topic, {p: 0 for p in range(PARTITIONS)}, ends)
    assert_partition_order(recs)
    assert _by_position(r.ident() for r in recs) == _by_position(want)

    # Producer-set CreateTime, within the produce call (1s slack for clock granularity).
    for r in recs:
        assert r.timestamp_type == "create", r
        assert t0 - 1000 <= r.timestamp <= t1 + 1000, (r, t0, t1)

    marks = consumer.watermarks(bootstrap, topic, range(PARTITIONS))
    assert marks == {p: (0, ends[p]) for p in range(PARTITIONS)}
    return recs


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_same_library_roundtrip(broker, library, compression, topic_name):
    """Producer, consumer and admin of one library; ~200 messages over 3 partitions, acks=all."""
    library.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    _check_roundtrip(broker.bootstrap, topic_name, library, library, compression)


@pytest.mark.parametrize(
    ("producer", "compression", "consumer"),
    [
        ("kafka-python", "lz4", "confluent"),
        ("aiokafka", "zstd", "kafka-python"),
        ("confluent", "snappy", "aiokafka"),
        ("confluent", "gzip", "kafka-python"),
        ("kafka-python", "snappy", "aiokafka"),
        ("aiokafka", "lz4", "confluent"),
        ("confluent", "zstd", "aiokafka"),
        ("kafka-python", "gzip", "aiokafka"),
    ],
)
def test_cross_library_roundtrip(broker, producer, compression, consumer, topic_name):
    Confluent.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    _check_roundtrip(
        broker.bootstrap, topic_name, LIBRARIES[producer], LIBRARIES[consumer], compression, n=120
    )


def test_mixed_codecs_in_one_partition(broker, topic_name):
    """Batches with every codec interleaved in the same partitions, read back by every library.

    One fetch response then carries batches with different compression; each must be decoded on its own.
    """
    Confluent.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    want = []
    for round_ in range(2):
        for compression in COMPRESSIONS:
            msgs = mixed_messages(15, PARTITIONS, seed=f"{compression}-{round_}")
            placed = Confluent.produce(broker.bootstrap, topic_name, msgs, compression=compression)
            want += expected_records(msgs, placed)
    ends = {p: sum(1 for r in want if r[0] == p) for p in range(PARTITIONS)}
    assert sorted(r[1] for r in want) == sorted(o for p in ends for o in range(ends[p]))
    for consumer in LIBRARIES.values():
        recs = consumer.consume(broker.bootstrap, topic_name, {p: 0 for p in range(PARTITIONS)}, ends)
        assert_partition_order(recs)
        assert _by_position(r.ident() for r in recs) == _by_position(want), consumer.name


def test_kafka_python_default_producer(broker, topic_name):
    """kafka-python 3's KafkaProducer with its defaults: idempotence on (KIP-679), so it first asks for
    a producer id (InitProducerId) and then sends with sequence numbers.

    An unmodified kafka-python application uses exactly this configuration.
    """
    from kafka import KafkaProducer

    Confluent.create_topic(broker.bootstrap, topic_name, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        futures = [producer.send(topic_name, key=b"k%d" % i, value=b"v%d" % i) for i in range(10)]
        producer.flush(timeout=20)
        placed = [(md.partition, md.offset) for md in (f.get(timeout=20) for f in futures)]
    finally:
        producer.close(timeout=5)
    assert placed == [(0, i) for i in range(10)]
    recs = Confluent.consume(broker.bootstrap, topic_name, {0: 0}, {0: 10})
    assert [(r.offset, r.key, r.value) for r in recs] == [(i, b"k%d" % i, b"v%d" % i) for i in range(10)]
