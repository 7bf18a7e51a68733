"""Seeking with real clients: by offset, by timestamp (ListOffsets), and the watermarks.

Consumers use manual assignment (no consumer group). Run against both brokers with the
same assertions.
"""

from __future__ import annotations

import json
import time

import pytest
from kclients import LIBRARIES, Confluent, Msg, expected_records

from support.node import json_lines, run_node

PARTITIONS = 2
PER_PARTITION = 30
BATCH = 10  # records per produce round: each round is one batch per partition (linger holds them)


def _timestamps(base: int, partition: int) -> list[int]:
    """Ascending CreateTimes, 1 s apart, with equal neighbours across a batch boundary (9, 10) and
    inside a batch (20, 21); partition 1 is shifted by 500 ms so the two partitions answer differently."""
    ts = [base + partition * 500 + i * 1000 for i in range(PER_PARTITION)]
    ts[10] = ts[9]
    ts[21] = ts[20]
    return ts


def _first_at_or_after(ts: list[int], target: int) -> int | None:
    return next((i for i, t in enumerate(ts) if t >= target), None)


@pytest.fixture
def timed_topic(broker, topic_name):
    """A 2-partition topic with PER_PARTITION records per partition at explicit timestamps, written in
    rounds of BATCH records (lz4, one batch per partition per round). Returns (topic, base, msgs, placed)."""
    Confluent.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    base = (int(time.time()) - 3600) * 1000  # an hour ago: well inside any retention
    stamps = {p: _timestamps(base, p) for p in range(PARTITIONS)}
    msgs, placed = [], []
    for start in range(0, PER_PARTITION, BATCH):
        chunk = [
            Msg(p, f"k{p}-{i}".encode(), f"v{p}-{i}".encode(), (("i", str(i).encode()),), stamps[p][i])
            for i in range(start, start + BATCH)
            for p in range(PARTITIONS)
        ]
        placed += Confluent.produce(broker.bootstrap, topic_name, chunk, compression="lz4", linger_ms=100)
        msgs += chunk
    for p in range(PARTITIONS):
        assert sorted(o for q, o in placed if q == p) == list(range(PER_PARTITION))
    return topic_name, base, stamps, msgs, placed


def _timestamp_queries(base: int, stamps: dict[int, list[int]]):
    """(query, expected) pairs: before everything, at and just below each record, between records,
    at the last record, and past the end (None)."""
    targets = {base - 10_000, base, stamps[1][-1] + 1, stamps[1][-1] + 10_000}
    for p in range(PARTITIONS):
        for t in stamps[p]:
            targets |= {t - 1, t, t + 1}
    out = []
    for target in sorted(targets):
        query = {p: target for p in range(PARTITIONS)}
        expected = {p: _first_at_or_after(stamps[p], target) for p in range(PARTITIONS)}
        out.append((query, expected))
    return out


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_offsets_for_times(broker, timed_topic, lib):
    topic, base, stamps, _, _ = timed_topic
    client = LIBRARIES[lib]
    pairs = _timestamp_queries(base, stamps)
    answers = client.offsets_for_times(broker.bootstrap, topic, [q for q, _ in pairs])
    wrong = [(q, exp, got) for (q, exp), got in zip(pairs, answers, strict=True) if got != exp]
    assert wrong == [], f"{len(wrong)} of {len(pairs)} lookups wrong (query, expected, got): {wrong[:8]}"


def test_explicit_timestamps_kept(broker, timed_topic):
    topic, _, stamps, msgs, placed = timed_topic
    recs = Confluent.consume(
        broker.bootstrap,
        topic,
        {p: 0 for p in range(PARTITIONS)},
        {p: PER_PARTITION for p in range(PARTITIONS)},
    )
    assert sorted((r.partition, r.offset, r.timestamp, r.timestamp_type) for r in recs) == sorted(
        (p, i, stamps[p][i], "create") for p in range(PARTITIONS) for i in range(PER_PARTITION)
    )


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_seek_to_offset(broker, timed_topic, lib):
    """Seek into the middle of a (compressed) batch: exactly the suffix comes back.

    The broker may return the whole batch holding the fetch offset (Kafka does); the client drops the
    records before it. Seeking to the end returns nothing.
    """
    topic, _, _, msgs, placed = timed_topic
    client = LIBRARIES[lib]
    want = sorted(expected_records(msgs, placed), key=lambda r: (r[0], r[1]))
    starts = {0: 15, 1: 27}  # mid-batch (records 10..19) and mid-last-batch (20..29)
    ends = {p: PER_PARTITION for p in range(PARTITIONS)}
    recs = client.consume(broker.bootstrap, topic, starts, ends)
    got = sorted((r.ident() for r in recs), key=lambda r: (r[0], r[1]))
    assert got == [r for r in want if r[1] >= starts[r[0]]]

    recs = client.consume(broker.bootstrap, topic, {0: 29}, {0: PER_PARTITION})
    assert [r.offset for r in recs] == [29]


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_watermarks(broker, topic_name, lib):
    client = LIBRARIES[lib]
    Confluent.create_topic(broker.bootstrap, topic_name, 3)
    assert client.watermarks(broker.bootstrap, topic_name, range(3)) == {p: (0, 0) for p in range(3)}
    msgs = [Msg(p, b"k", b"v%d" % i) for p, n in ((0, 5), (2, 12)) for i in range(n)]
    client.produce(broker.bootstrap, topic_name, msgs)
    assert client.watermarks(broker.bootstrap, topic_name, range(3)) == {0: (0, 5), 1: (0, 0), 2: (0, 12)}


def test_out_of_range_offset_resets(broker, timed_topic):
    """Assigned at an offset past the end, the fetch gets OFFSET_OUT_OF_RANGE and the client applies
    auto.offset.reset=earliest: reading restarts at offset 0."""
    from confluent_kafka import Consumer, TopicPartition

    topic, *_ = timed_topic
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "odradek-tests-unused",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 1000)])
        deadline = time.monotonic() + 20
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
        assert msg is not None and msg.error() is None, msg and msg.error()
        assert (msg.partition(), msg.offset()) == (0, 0)
    finally:
        consumer.close()


def test_kafkajs_offsets(broker, timed_topic, kafkajs):
    """kafkajs admin: fetchTopicOffsets (watermarks) and fetchTopicOffsetsByTimestamp.

    kafkajs replaces a "no such offset" answer (-1) by the partition's high watermark.
    """
    topic, base, stamps, _, _ = timed_topic
    pairs = [(q, e) for q, e in _timestamp_queries(base, stamps)]
    # a sample (each timestamp is a separate admin call): before, exact, between, duplicates, past the end
    picks = sorted(
        {
            base - 10_000,
            stamps[0][0],
            stamps[0][5] - 1,
            stamps[0][5] + 1,
            stamps[0][9],
            stamps[1][20],
            stamps[1][29],
            stamps[1][29] + 1,
        }
    )
    pairs = [(q, e) for q, e in pairs if q[0] in picks]
    proc = run_node("clients_offsets.js", broker.bootstrap, topic, *[q[0] for q, _ in pairs])
    (out,) = json_lines(proc.stdout)
    assert out["offsets"] == [
        {"partition": p, "offset": PER_PARTITION, "low": 0, "high": PER_PARTITION} for p in range(PARTITIONS)
    ]
    for query, expected in pairs:
        got = {e["partition"]: e["offset"] for e in out["byTimestamp"][str(query[0])]}
        want = {p: PER_PARTITION if o is None else o for p, o in expected.items()}
        assert got == want, (query, json.dumps(out["byTimestamp"][str(query[0])]))
