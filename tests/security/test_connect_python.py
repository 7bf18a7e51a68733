"""The Python clients produce and consume over every secured listener, on Odradek as on Kafka 4.4.

confluent-kafka, kafka-python and aiokafka each write a few records and read them back over SSL (client
certificate), SASL_PLAINTEXT with PLAIN and with SCRAM-SHA-512, and SASL_SSL with SCRAM-SHA-512
(SCRAM-SHA-256 once, with confluent-kafka). The principal (the certificate's DN, or the SASL user) is
granted exactly the ACLs a producer and a consumer need on the test's own topic; confluent-kafka's consumer
also joins a group and commits, so the group's ACLs are exercised. kafka-python's producer is idempotent
(its default), which Kafka 3+ allows with WRITE on the topic alone.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from support.secure import SecuredBroker

TIMEOUT_S = 30.0
COUNT = 5

for _name in ("kafka", "aiokafka"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

# (listener, mechanism, user)
CASES = [
    ("SSL", None, None),
    ("SASL_PLAINTEXT", "PLAIN", "alice"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "alice"),
    ("SASL_SSL", "SCRAM-SHA-512", "bob"),
]


def _case_id(case: tuple[str, str | None, str | None]) -> str:
    listener, mechanism, user = case
    return "-".join(filter(None, (listener, mechanism, user)))


def _records(topic: str) -> list[tuple[bytes, bytes]]:
    return [(f"k{i}".encode(), f"{topic} value {i}".encode()) for i in range(COUNT)]


# --------------------------------------------------------------------------------------------------
# One round trip per library


def _confluent(secured: SecuredBroker, case, topic: str, group: str) -> list[tuple[bytes, bytes]]:
    """Produce, then consume in a group and commit; the committed offset is checked too."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    conf = secured.confluent_config(*case)
    producer = Producer({**conf, "acks": "all"})
    failures: list[object] = []
    for key, value in _records(topic):
        producer.produce(topic, value, key, on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(TIMEOUT_S) == 0, "records left undelivered"
    assert failures == []

    consumer = Consumer(
        {**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < COUNT and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value()))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
        assert [(tp.offset, tp.error) for tp in committed] == [(COUNT, None)]
    finally:
        consumer.close()
    return got


def _kafka_python(secured: SecuredBroker, case, topic: str, group: str) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    kw = secured.python_config(*case)
    producer = KafkaProducer(**kw, acks="all")
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in _records(topic)]
        producer.flush(TIMEOUT_S)
        assert [f.get(TIMEOUT_S).offset for f in futures] == list(range(COUNT))
    finally:
        producer.close(5)
    consumer = KafkaConsumer(**kw, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    got: list[tuple[bytes, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < COUNT and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got += [(r.key, r.value) for r in records]
    finally:
        consumer.close()
    return got


def _aiokafka(secured: SecuredBroker, case, topic: str, group: str) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    kw = secured.python_config(*case)

    async def run() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(**kw, acks="all")
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic, value, key=key) for key, value in _records(topic)]
            assert [meta.offset for meta in sent] == list(range(COUNT))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            **kw, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            consumer.assign([TopicPartition(topic, 0)])
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < COUNT and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(r.key, r.value) for r in records]
        finally:
            await consumer.stop()
        return got

    return asyncio.run(asyncio.wait_for(run(), 3 * TIMEOUT_S))


LIBRARIES = {"confluent": _confluent, "kafka-python": _kafka_python, "aiokafka": _aiokafka}


def _round_trip(secured: SecuredBroker, library: str, case, unique) -> None:
    listener, mechanism, user = case
    if mechanism and mechanism.startswith("SCRAM"):
        secured.require_scram()
    topic, group = unique("sec"), unique("sec-group")
    secured.create_topic(topic)
    secured.grant_produce_consume(secured.principal(listener, user), topic, group)
    got = LIBRARIES[library](secured, case, topic, group)
    assert got == _records(topic)


@pytest.mark.differential
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_produce_consume(secured: SecuredBroker, library: str, case, unique) -> None:
    _round_trip(secured, library, case, unique)


@pytest.mark.differential
def test_scram_sha_256_over_sasl_ssl(secured: SecuredBroker, unique) -> None:
    _round_trip(secured, "confluent", ("SASL_SSL", "SCRAM-SHA-256", "alice"), unique)
