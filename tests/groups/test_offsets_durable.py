"""Committed offsets survive a broker SIGKILL (private Odradek broker, restarted on the same data dir).

Offsets are committed by a classic member and by a KIP-848 member (``group.protocol=consumer``), the
broker is SIGKILLed as soon as the commits are answered, then restarted on the same port and data.
OffsetFetch (admin) and the still-open consumers' ``committed()`` return the offsets, metadata included,
and new members of both groups resume exactly there.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition
from gkit import CLASSIC, committed, create_topic, produce, wait_until

PARTS, PER_PART = 3, 10
KIP848_BROKER = {"group.consumer.session.timeout.ms": "3000", "group.consumer.heartbeat.interval.ms": "500"}


def _consumer(bootstrap: str, group: str, protocol: str) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 0,
    }
    if protocol == "classic":
        conf.update(CLASSIC)
    else:
        conf["group.protocol"] = "consumer"
    return Consumer(conf)


def _join(c: Consumer, topic: str) -> None:
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(c.assignment()) < PARTS:
        assert time.monotonic() < deadline, f"no full assignment: {c.assignment()}"
        c.poll(0.1)


def _drain(c: Consumer, total: int) -> list[tuple[int, int]]:
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + 30
    while len(got) < total:
        assert time.monotonic() < deadline, f"only {len(got)} of {total} records: {got}"
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.offset()))
    return got


def test_committed_offsets_survive_broker_sigkill(odradek_factory, unique):
    broker = odradek_factory(KIP848_BROKER)
    topic = unique("topic")
    create_topic(broker.bootstrap, topic, PARTS)
    produce(broker.bootstrap, topic, [f"v{i}" for i in range(PARTS * PER_PART)], partitions=PARTS)
    want = {
        "classic": (unique("classic"), {0: 2, 1: 4, 2: 6}),
        "consumer": (unique("kip848"), {0: 5, 1: 3, 2: 1}),
    }
    live = {}
    for protocol, (group, offsets) in want.items():
        c = _consumer(broker.bootstrap, group, protocol)
        _join(c, topic)
        res = c.commit(
            offsets=[TopicPartition(topic, p, o, metadata=f"{protocol}-{p}") for p, o in offsets.items()],
            asynchronous=False,
        )
        assert all(tp.error is None for tp in res), res
        live[protocol] = c

    broker.kill()  # right after the commits were answered
    broker.restart()

    for protocol, (group, offsets) in want.items():
        assert committed(broker.bootstrap, group, topic, PARTS) == offsets, protocol
        # The open consumer reconnects; committed() (OffsetFetch) returns the offsets and the metadata.
        c = live.pop(protocol)
        tps = wait_until(
            lambda c=c: _committed_or_none(c, topic), 20, f"{protocol}: committed() after the restart"
        )
        assert {tp.partition: tp.offset for tp in tps} == offsets
        assert {tp.partition: tp.metadata for tp in tps} == {p: f"{protocol}-{p}" for p in range(PARTS)}
        c.close()

    # New members resume from the committed offsets.
    for protocol, (group, offsets) in want.items():
        c = _consumer(broker.bootstrap, group, protocol)
        try:
            c.subscribe([topic])
            got = _drain(c, sum(PER_PART - o for o in offsets.values()))
            for p, o in offsets.items():
                assert sorted(off for part, off in got if part == p) == list(range(o, PER_PART)), protocol
        finally:
            c.close()


def _committed_or_none(c: Consumer, topic: str):
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTS)], timeout=5)
    except Exception:
        return None
    return tps if all(tp.error is None for tp in tps) else None
