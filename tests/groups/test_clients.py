"""A subscribe-based consumer-group round trip with every client, on Odradek and on Kafka.

Each client joins a group, consumes every produced message of a 2-partition topic, commits, and leaves;
afterwards OffsetFetch (admin) must return the end offset of every partition for the group.

Clients: confluent-kafka classic and ``group.protocol=consumer`` (KIP-848), kafka-python, aiokafka,
kafkajs (tests/node/groups_consume.js), and Kafka 4.4's Java consumer through
``org.apache.kafka.tools.VerifiableConsumer`` (``--group-protocol classic`` and ``consumer``).
KIP-848 clients on Odradek use a private broker with low ``group.consumer.*`` timeouts.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from gkit import CLASSIC, committed, create_topic, end_offsets, produce

from support.kafka import run_kafka_tool
from support.node import json_lines, run_node

PARTS, N = 2, 20
KIP848_BROKER = {"group.consumer.session.timeout.ms": "6000", "group.consumer.heartbeat.interval.ms": "500"}


def confluent(bootstrap, topic, group, protocol="classic"):
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 0,
    }
    conf.update(CLASSIC if protocol == "classic" else {"group.protocol": "consumer"})
    c = Consumer(conf)
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < N and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def confluent_kip848(bootstrap, topic, group):
    return confluent(bootstrap, topic, group, "consumer")


def kafka_python(bootstrap, topic, group):
    from kafka import KafkaConsumer

    c = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    got = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < N and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got.extend(r.value.decode() for r in recs)
        c.commit()
    finally:
        c.close()
    return got


def aiokafka(bootstrap, topic, group):
    from aiokafka import AIOKafkaConsumer

    async def run():
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        await c.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < N and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got.extend(r.value.decode() for r in recs)
            await c.commit()
        finally:
            await c.stop()
        return got

    return asyncio.run(run())


def kafkajs(bootstrap, topic, group):
    proc = run_node("groups_consume.js", bootstrap, topic, group, N, timeout=60)
    (out,) = json_lines(proc.stdout)
    assert out["assigned"] == list(range(PARTS)), out
    return [m["value"] for m in out["messages"]]


def java(bootstrap, topic, group, protocol):
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--group-id", group]
    args += ["--group-protocol", protocol, "--max-messages", N, "--reset-policy", "earliest", "--verbose"]
    if protocol == "classic":
        args += ["--session-timeout", 6000]
    proc = run_kafka_tool("org.apache.kafka.tools.VerifiableConsumer", *args, timeout=90)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    kinds = {e["name"] for e in events}
    assert {"startup_complete", "partitions_assigned", "records_consumed", "offsets_committed"} <= kinds
    assert all(e["success"] for e in events if e["name"] == "offsets_committed"), events
    assigned = {p["partition"] for e in events if e["name"] == "partitions_assigned" for p in e["partitions"]}
    assert assigned == set(range(PARTS)), events
    return [e["value"] for e in events if e["name"] == "record_data"]


def java_classic(bootstrap, topic, group):
    return java(bootstrap, topic, group, "classic")


def java_kip848(bootstrap, topic, group):
    return java(bootstrap, topic, group, "consumer")


CLIENTS = {
    "confluent-classic": (confluent, False),
    "confluent-consumer": (confluent_kip848, True),
    "kafka-python": (kafka_python, False),
    "aiokafka": (aiokafka, False),
    "kafkajs": (kafkajs, False),
    "java-classic": (java_classic, False),
    "java-consumer": (java_kip848, True),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_group_round_trip(broker, client, unique, request):
    run, kip848 = CLIENTS[client]
    if client == "kafkajs":
        request.getfixturevalue("kafkajs")
    if client.startswith("java"):
        request.getfixturevalue("kafka_jars")
    bootstrap = broker.bootstrap
    if kip848 and broker.is_odradek:
        bootstrap = request.getfixturevalue("odradek_factory")(KIP848_BROKER).bootstrap
    topic, group = unique("topic"), unique("group")
    create_topic(bootstrap, topic, PARTS)
    values = [f"{client}-{i}" for i in range(N)]
    produce(bootstrap, topic, values, partitions=PARTS)
    t0 = time.monotonic()
    got = run(bootstrap, topic, group)
    took = time.monotonic() - t0
    assert sorted(got) == sorted(values), f"{client}: consumed {len(got)} of {N}: {got}"
    ends = end_offsets(bootstrap, topic, PARTS)
    assert ends == {p: N // PARTS for p in range(PARTS)}
    assert committed(bootstrap, group, topic, PARTS) == ends, client
    print(f"[{broker.kind}] {client}: {took:.2f}s")
