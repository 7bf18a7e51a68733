"""One small adapter per Python Kafka client, so a scenario can be written once and run with each.

Every adapter offers the same synchronous calls (aiokafka's run under ``asyncio.run``):

* ``create_topic(bootstrap, topic, partitions, config=None)``    with that library's admin client
* ``produce(bootstrap, topic, msgs, compression=..., acks=..., linger_ms=...)`` -> ``[(partition, offset)]``
  in the order of ``msgs`` (raises on any delivery error)
* ``consume(bootstrap, topic, starts, ends)`` -> ``[Rec]``: manual assignment (no consumer group), each
  partition read from ``starts[p]`` until its position reaches ``ends[p]``; fails on a bounded timeout
* ``offsets_for_times(bootstrap, topic, [{partition: ts}, ...])`` -> ``[{partition: offset or None}, ...]``
  (ListOffsets by timestamp, one consumer for all the queries)
* ``watermarks(bootstrap, topic, partitions)`` -> ``{partition: (low, high)}``

Consumers never commit and never join a group, so these tests do not depend on consumer groups.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
TIMEOUT_S = 20.0

Header = tuple[str, bytes | None]

# kafka-python and aiokafka log every retriable metadata error at WARNING/ERROR; keep test output readable.
for _name in ("kafka", "aiokafka"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Msg:
    """A message to produce (to an explicit partition)."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp: int | None = None  # ms; None = the client's clock


@dataclass(frozen=True)
class Rec:
    """A consumed record, normalized across libraries."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp: int = field(compare=False)
    timestamp_type: str = field(compare=False)  # "create" or "log_append"

    def ident(self) -> tuple:
        return (self.partition, self.offset, self.key, self.value, self.headers)


def wait_for_topic(bootstrap: str, topic: str, partitions: int, timeout: float = TIMEOUT_S) -> None:
    """Poll metadata (confluent) until ``topic`` has ``partitions`` partitions, each with a leader.

    Apache Kafka answers CreateTopics before every broker's metadata cache has the topic.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        last = md
        if (
            md is not None
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in md.partitions.values())
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions: {last}")


def deadline_loop(timeout: float, what: str):
    """Yield until ``timeout`` seconds passed, then fail with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
    raise AssertionError(f"timed out after {timeout}s: {what}")


# ---------------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)


class Confluent:
    name = "confluent"
    # librdkafka supports None header values and records with neither key nor value.
    null_header_values = True
    null_key_and_value = True

    @staticmethod
    def create_topic(bootstrap: str, topic: str, partitions: int, config: Mapping[str, str] | None = None):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap})
        fut = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config or {}))]
        )[topic]
        fut.result(TIMEOUT_S)
        wait_for_topic(bootstrap, topic, partitions)

    @staticmethod
    def produce(
        bootstrap: str,
        topic: str,
        msgs: Sequence[Msg],
        *,
        compression: str = "none",
        acks: str = "all",
        linger_ms: int = 5,
        extra: Mapping[str, object] | None = None,
    ) -> list[tuple[int, int]]:
        from confluent_kafka import Producer

        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": acks,
                "compression.type": compression,
                "linger.ms": linger_ms,
                "batch.num.messages": 10000,
                **(extra or {}),
            }
        )
        results: list[tuple[int, int] | None] = [None] * len(msgs)
        errors: list[object] = []

        def report(i: int):
            def on_delivery(err, msg) -> None:
                if err is not None:
                    errors.append((i, err))
                else:
                    results[i] = (msg.partition(), msg.offset())

            return on_delivery

        for i, m in enumerate(msgs):
            kw = {}
            if m.timestamp is not None:
                kw["timestamp"] = m.timestamp
            producer.produce(
                topic,
                key=m.key,
                value=m.value,
                partition=m.partition,
                headers=list(m.headers) if m.headers else None,
                on_delivery=report(i),
                **kw,
            )
            producer.poll(0)
        assert producer.flush(TIMEOUT_S) == 0, "confluent producer did not deliver everything in time"
        assert errors == [], errors
        return results  # type: ignore[return-value]

    @staticmethod
    def _consumer(bootstrap: str):
        from confluent_kafka import Consumer

        # A group.id is required to build a Consumer, but assign() never talks to the coordinator as
        # long as nothing is committed.
        return Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "odradek-tests-unused",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
            }
        )

    @classmethod
    def consume(
        cls, bootstrap: str, topic: str, starts: Mapping[int, int], ends: Mapping[int, int]
    ) -> list[Rec]:
        from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

        consumer = cls._consumer(bootstrap)
        out: list[Rec] = []
        try:
            consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
            pos = dict(starts)
            for _ in deadline_loop(TIMEOUT_S, f"confluent consume {topic} {pos} -> {dict(ends)}"):
                if all(pos[p] >= ends[p] for p in starts):
                    break
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                ts_type, ts = msg.timestamp()
                out.append(
                    Rec(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        tuple(msg.headers() or ()),
                        ts,
                        "log_append" if ts_type == TIMESTAMP_LOG_APPEND_TIME else "create",
                    )
                )
                pos[msg.partition()] = msg.offset() + 1
        finally:
            consumer.close()
        return out

    @classmethod
    def offsets_for_times(
        cls, bootstrap: str, topic: str, queries: Sequence[Mapping[int, int]]
    ) -> list[dict]:
        from confluent_kafka import TopicPartition

        consumer = cls._consumer(bootstrap)
        answers = []
        try:
            for targets in queries:
                got = consumer.offsets_for_times(
                    [TopicPartition(topic, p, ts) for p, ts in targets.items()], timeout=TIMEOUT_S
                )
                for tp in got:
                    assert tp.error is None, tp.error
                answers.append({tp.partition: (None if tp.offset < 0 else tp.offset) for tp in got})
        finally:
            consumer.close()
        return answers

    @classmethod
    def watermarks(cls, bootstrap: str, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        from confluent_kafka import TopicPartition

        consumer = cls._consumer(bootstrap)
        try:
            return {
                p: tuple(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S))
                for p in partitions
            }
        finally:
            consumer.close()


# ---------------------------------------------------------------------------------------------------
# kafka-python


class KafkaPython:
    name = "kafka-python"
    # KafkaProducer.send() insists on (str, bytes) header tuples (no None values), and raises
    # "Need at least one: key or value".
    null_header_values = False
    null_key_and_value = False

    @staticmethod
    def create_topic(bootstrap: str, topic: str, partitions: int, config: Mapping[str, str] | None = None):
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))
        try:
            admin.create_topics(
                [NewTopic(topic, partitions, 1, topic_configs=dict(config or {}))],
                timeout_ms=int(TIMEOUT_S * 1000),
            )
        finally:
            admin.close()
        wait_for_topic(bootstrap, topic, partitions)

    @staticmethod
    def produce(
        bootstrap: str,
        topic: str,
        msgs: Sequence[Msg],
        *,
        compression: str = "none",
        acks: str = "all",
        linger_ms: int = 5,
        extra: Mapping[str, object] | None = None,
    ) -> list[tuple[int, int]]:
        from kafka import KafkaProducer

        # kafka-python 3 enables idempotence by default (KIP-679), which needs InitProducerId; the
        # default-config producer has its own test (test_roundtrip.py::test_kafka_python_default_producer).
        config = {"enable_idempotence": False, **(extra or {})}
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks=acks if acks == "all" else int(acks),
            compression_type=None if compression == "none" else compression,
            linger_ms=linger_ms,
            batch_size=1 << 20,
            **config,
        )
        try:
            futures = [
                producer.send(
                    topic,
                    key=m.key,
                    value=m.value,
                    partition=m.partition,
                    headers=list(m.headers),
                    timestamp_ms=m.timestamp,
                )
                for m in msgs
            ]
            producer.flush(timeout=TIMEOUT_S)
            out = []
            for f in futures:
                md = f.get(timeout=TIMEOUT_S)
                out.append((md.partition, md.offset))
            return out
        finally:
            producer.close(timeout=5)

    @staticmethod
    def _consumer(bootstrap: str):
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(TIMEOUT_S * 1000) + 1000,
        )

    @classmethod
    def consume(
        cls, bootstrap: str, topic: str, starts: Mapping[int, int], ends: Mapping[int, int]
    ) -> list[Rec]:
        from kafka import TopicPartition

        consumer = cls._consumer(bootstrap)
        out: list[Rec] = []
        try:
            consumer.assign([TopicPartition(topic, p) for p in starts])
            for p, o in starts.items():
                consumer.seek(TopicPartition(topic, p), o)
            pos = dict(starts)
            for _ in deadline_loop(TIMEOUT_S, f"kafka-python consume {topic} {pos} -> {dict(ends)}"):
                if all(pos[p] >= ends[p] for p in starts):
                    break
                for tp, records in consumer.poll(timeout_ms=200).items():
                    for r in records:
                        out.append(
                            Rec(
                                r.partition,
                                r.offset,
                                r.key,
                                r.value,
                                tuple(r.headers or ()),
                                r.timestamp,
                                "log_append" if r.timestamp_type == 1 else "create",
                            )
                        )
                        pos[tp.partition] = r.offset + 1
        finally:
            consumer.close()
        return out

    @classmethod
    def offsets_for_times(
        cls, bootstrap: str, topic: str, queries: Sequence[Mapping[int, int]]
    ) -> list[dict]:
        from kafka import TopicPartition

        consumer = cls._consumer(bootstrap)
        answers = []
        try:
            for targets in queries:
                got = consumer.offsets_for_times({TopicPartition(topic, p): ts for p, ts in targets.items()})
                answers.append({tp.partition: (None if v is None else v.offset) for tp, v in got.items()})
        finally:
            consumer.close()
        return answers

    @classmethod
    def watermarks(cls, bootstrap: str, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        from kafka import TopicPartition

        consumer = cls._consumer(bootstrap)
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            low = consumer.beginning_offsets(tps)
            high = consumer.end_offsets(tps)
        finally:
            consumer.close()
        return {tp.partition: (low[tp], high[tp]) for tp in tps}


# ---------------------------------------------------------------------------------------------------
# aiokafka


class AioKafka:
    name = "aiokafka"
    null_header_values = True
    # AIOKafkaProducer.send() asserts "Need at least one: key or value".
    null_key_and_value = False

    @staticmethod
    def create_topic(bootstrap: str, topic: str, partitions: int, config: Mapping[str, str] | None = None):
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        async def run():
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(topic, partitions, 1, topic_configs=dict(config or {}))],
                    timeout_ms=int(TIMEOUT_S * 1000),
                )
            finally:
                await admin.close()

        asyncio.run(run())
        wait_for_topic(bootstrap, topic, partitions)

    @staticmethod
    def produce(
        bootstrap: str,
        topic: str,
        msgs: Sequence[Msg],
        *,
        compression: str = "none",
        acks: str = "all",
        linger_ms: int = 5,
        extra: Mapping[str, object] | None = None,
    ) -> list[tuple[int, int]]:
        from aiokafka import AIOKafkaProducer

        async def run():
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                acks=acks if acks == "all" else int(acks),
                compression_type=None if compression == "none" else compression,
                linger_ms=linger_ms,
                max_batch_size=1 << 20,
                **(extra or {}),
            )
            await producer.start()
            try:
                futures = [
                    await producer.send(
                        topic,
                        key=m.key,
                        value=m.value,
                        partition=m.partition,
                        headers=list(m.headers),
                        timestamp_ms=m.timestamp,
                    )
                    for m in msgs
                ]
                mds = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
                return [(md.partition, md.offset) for md in mds]
            finally:
                await producer.stop()

        return asyncio.run(run())

    @staticmethod
    async def _consumer(bootstrap: str):
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        return consumer

    @classmethod
    def consume(
        cls, bootstrap: str, topic: str, starts: Mapping[int, int], ends: Mapping[int, int]
    ) -> list[Rec]:
        from aiokafka import TopicPartition

        async def run():
            consumer = await cls._consumer(bootstrap)
            out: list[Rec] = []
            try:
                consumer.assign([TopicPartition(topic, p) for p in starts])
                for p, o in starts.items():
                    consumer.seek(TopicPartition(topic, p), o)
                pos = dict(starts)
                for _ in deadline_loop(TIMEOUT_S, f"aiokafka consume {topic} {pos} -> {dict(ends)}"):
                    if all(pos[p] >= ends[p] for p in starts):
                        break
                    batches = await consumer.getmany(timeout_ms=200)
                    for tp, records in batches.items():
                        for r in records:
                            out.append(
                                Rec(
                                    r.partition,
                                    r.offset,
                                    r.key,
                                    r.value,
                                    tuple(r.headers or ()),
                                    r.timestamp,
                                    "log_append" if r.timestamp_type == 1 else "create",
                                )
                            )
                            pos[tp.partition] = r.offset + 1
            finally:
                await consumer.stop()
            return out

        return asyncio.run(run())

    @classmethod
    def offsets_for_times(
        cls, bootstrap: str, topic: str, queries: Sequence[Mapping[int, int]]
    ) -> list[dict]:
        from aiokafka import TopicPartition

        async def run():
            consumer = await cls._consumer(bootstrap)
            answers = []
            try:
                for targets in queries:
                    got = await consumer.offsets_for_times(
                        {TopicPartition(topic, p): ts for p, ts in targets.items()}
                    )
                    answers.append({tp.partition: (None if v is None else v.offset) for tp, v in got.items()})
            finally:
                await consumer.stop()
            return answers

        return asyncio.run(run())

    @classmethod
    def watermarks(cls, bootstrap: str, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        from aiokafka import TopicPartition

        async def run():
            consumer = await cls._consumer(bootstrap)
            try:
                tps = [TopicPartition(topic, p) for p in partitions]
                return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
            finally:
                await consumer.stop()

        low, high = asyncio.run(run())
        return {tp.partition: (low[tp], high[tp]) for tp in low}


Library = type[Confluent] | type[KafkaPython] | type[AioKafka]
LIBRARIES: dict[str, Library] = {c.name: c for c in (Confluent, KafkaPython, AioKafka)}


# ---------------------------------------------------------------------------------------------------
# Data sets and checks


def mixed_messages(
    n: int,
    partitions: int,
    *,
    null_header_values: bool = True,
    null_key_and_value: bool = True,
    seed: str = "m",
) -> list[Msg]:
    """``n`` messages spread over ``partitions``: some keys None, some values None (tombstones), a few
    with both None, multiple headers with a duplicate key, binary bytes, an empty value, and (when the
    library allows) a header whose value is None."""
    msgs = []
    for i in range(n):
        key = None if i % 7 == 3 else f"{seed}-key-{i}".encode()
        if i % 11 == 5:
            value = None
        elif i % 13 == 6:
            value = b""
        else:
            value = f"{seed}-value-{i}-".encode() + bytes(range(i % 256)) + b"x" * (i % 37)
        if key is None and value is None and not null_key_and_value:
            key = f"{seed}-key-{i}".encode()
        headers: list[Header] = []
        if i % 3 != 0:
            headers = [
                ("trace", f"t{i}".encode()),
                ("dup", b"first"),
                ("dup", b"second"),
                ("bin", b"\x00\xff"),
            ]
            if i % 5 == 1:
                headers.append(("empty", b""))
            if null_header_values and i % 4 == 1:
                headers.append(("nullable", None))
        msgs.append(Msg(i % partitions, key, value, tuple(headers)))
    return msgs


def expected_records(msgs: Sequence[Msg], placed: Sequence[tuple[int, int]]) -> list[tuple]:
    """The (partition, offset, key, value, headers) each message must come back as."""
    out = []
    for m, (p, o) in zip(msgs, placed, strict=True):
        assert p == m.partition, f"message for partition {m.partition} was acknowledged on {p}"
        out.append((p, o, m.key, m.value, tuple(m.headers)))
    return out


def assert_partition_order(recs: Sequence[Rec]) -> None:
    by_partition: dict[int, list[int]] = {}
    for r in recs:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for p, offsets in by_partition.items():
        assert offsets == sorted(offsets), f"partition {p} delivered out of order: {offsets}"
        assert len(set(offsets)) == len(offsets), f"partition {p} delivered duplicates: {offsets}"


def ends_of(placed: Sequence[tuple[int, int]], partitions: int) -> dict[int, int]:
    ends = {p: 0 for p in range(partitions)}
    for p, o in placed:
        ends[p] = max(ends[p], o + 1)
    return ends
