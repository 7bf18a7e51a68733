"""Transactions through other clients, both brokers: kafka-python, aiokafka, kafkajs
(``tests/node/eos_txn.js``) and the Java client from Kafka 4.4 running the consume-transform-produce loop
of delivery-guarantees.md (``tests/java``, built with Maven once and cached by a hash of its sources).

Each client commits one transaction with offsets, aborts one, commits another; read_committed consumers
of the same client see only the committed records, once each and in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time

import pytest
from eoskit import Wire, committed_offsets, create_topic, produce_values, read_all, values_of

from support.java import java_main
from support.node import json_lines, run_node

pytestmark = pytest.mark.differential
COUNT = 20

for _name in ("kafka", "aiokafka"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def names(prefix: str, n: int = COUNT) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_kafka_python_transactions(broker, unique):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic, group = unique("kp"), unique("kp-src")
    create_topic(broker.bootstrap, topic, 1)
    p = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        transactional_id=unique("kp-txn"),
        enable_idempotence=True,
        acks="all",
    )
    try:
        p.init_transactions()
        p.begin_transaction()
        for v in names("commit"):
            p.send(topic, value=v.encode(), partition=0)
        p.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(7, "", -1)}, group)
        p.commit_transaction()
        p.begin_transaction()
        for v in names("abort"):
            p.send(topic, value=v.encode(), partition=0)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        for v in names("late"):
            p.send(topic, value=v.encode(), partition=0)
        p.commit_transaction()
    finally:
        p.close(timeout=10)

    c = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        got: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < 2 * COUNT:
            for recs in c.poll(timeout_ms=200).values():
                got += [r.value.decode() for r in recs]
        for recs in c.poll(timeout_ms=1000).values():  # nothing more may come
            got += [r.value.decode() for r in recs]
    finally:
        c.close()
    assert got == names("commit") + names("late")
    assert committed_offsets(broker.bootstrap, group, topic, 1) == {0: 7}


def test_aiokafka_transactions(broker, unique):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic, group = unique("aio"), unique("aio-src")
    create_topic(broker.bootstrap, topic, 1)

    async def run() -> list[str]:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique("aio-txn"))
        await p.start()
        try:
            async with p.transaction():
                for v in names("commit"):
                    await p.send(topic, value=v.encode(), partition=0)
                await p.send_offsets_to_transaction({TopicPartition(topic, 0): 9}, group)
            await p.begin_transaction()
            for v in names("abort"):
                await p.send_and_wait(topic, value=v.encode(), partition=0)
            await p.abort_transaction()
            async with p.transaction():
                for v in names("late"):
                    await p.send(topic, value=v.encode(), partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            await c.seek_to_beginning()
            got: list[str] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(got) < 2 * COUNT:
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got += [r.value.decode() for r in recs]
            for recs in (await c.getmany(timeout_ms=1000)).values():
                got += [r.value.decode() for r in recs]
            return got
        finally:
            await c.stop()

    got = asyncio.run(asyncio.wait_for(run(), 60))
    assert got == names("commit") + names("late")
    assert committed_offsets(broker.bootstrap, group, topic, 1) == {0: 9}


def test_kafkajs_transactions(broker, kafkajs, unique):
    topic, group = unique("kjs"), unique("kjs-group")
    # kafkajs gives up on a TxnOffsetCommit answered NOT_COORDINATOR, which a Kafka broker started moments
    # ago answers until it has loaded the group's __consumer_offsets partition: wait for that first.
    with Wire(broker.bootstrap) as w:
        w.offset_fetch(f"{group}-src", topic, [0], require_stable=False)  # the group eos_txn.js commits to
    proc = run_node("eos_txn.js", broker.bootstrap, topic, group, unique("kjs-txn"), COUNT, timeout=90)
    (out,) = json_lines(proc.stdout)
    assert out["end"] == "done", out
    assert out["consumed"] == names("commit") + names("late"), proc.stderr[-2000:]
    assert out["offsets"] == [[0, 5]]
    # and confluent-kafka agrees on what is committed
    assert values_of(read_all(broker.bootstrap, topic, 1, committed=True)) == names("commit") + names("late")


# --------------------------------------------------------------------------------------------------
# Java (Kafka 4.4 client)


@pytest.fixture(scope="session")
def java_copier() -> list[str]:
    """The ``java -cp ...`` argv prefix for odradek.eos.EosCopier (built with Maven unless current)."""
    return java_main("odradek.eos.EosCopier")


def test_java_consume_transform_produce(broker, java_copier, unique):
    n, partitions = 3000, 3
    topic_in, topic_out, group = unique("java-in"), unique("java-out"), unique("java-group")
    create_topic(broker.bootstrap, topic_in, partitions)
    create_topic(broker.bootstrap, topic_out, partitions)
    inputs = [f"in-{i:05d}" for i in range(n)]
    produce_values(broker.bootstrap, topic_in, inputs, partitions)
    proc = subprocess.run(
        [*java_copier, broker.bootstrap, topic_in, topic_out, group, unique("java-txn"), str(n)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = json_lines(proc.stdout)
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    assert lines[-1] == {"committed": n, "aborted": 0}, proc.stderr[-4000:]

    out = values_of(read_all(broker.bootstrap, topic_out, partitions, committed=True))
    assert len(out) == n and sorted(out) == sorted(f"copied:{v}" for v in inputs)
    ins = read_all(broker.bootstrap, topic_in, partitions, committed=True)
    ends = {p: 1 + max(r.offset for r in ins if r.partition == p) for p in range(partitions)}
    assert committed_offsets(broker.bootstrap, group, topic_in, partitions) == ends
    print(json.dumps({"broker": broker.kind, "java": lines[-1]}))
