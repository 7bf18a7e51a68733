"""Small client-level helpers shared by the test directories: bounded waiting, ready topics, reading a
partition or a whole topic back."""

from __future__ import annotations

import time
from collections.abc import Callable

TIMEOUT_S = 30.0


def wait_until(pred: Callable[[], object], timeout: float, what: str | Callable[[], str], interval=0.05):
    """Poll ``pred`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for: {text}")
        time.sleep(interval)


def admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout: float = TIMEOUT_S) -> None:
    """Create a topic and wait until every partition has a leader (Kafka propagates this with a delay)."""
    from confluent_kafka.admin import NewTopic

    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout)

    def ready():
        md = a.list_topics(topic=topic, timeout=5).topics.get(topic)
        return (
            md is not None
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        )

    wait_until(ready, timeout, f"topic {topic} with {partitions} partitions")


def read_values(bootstrap: str, topic: str, group: str, partition: int = 0) -> list[bytes]:
    """Every value of one partition, from offset 0 to the log end offset seen when the read began."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        _, end = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        c.assign([TopicPartition(topic, partition, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < end and time.monotonic() < deadline:
            for m in c.consume(max(1, end), 0.2):
                assert m.error() is None, m.error()
                got.append(m.value())
        return got
    finally:
        c.close()


def read_to_end(bootstrap: str, topic: str, partitions: int, *, committed: bool, group: str, timeout: float):
    """Every record (confluent-kafka ``Message``) of ``topic`` from the beginning up to the end of each
    partition (the LSO for read_committed), by assignment, in the order consumed. Call it when no
    transaction on the topic is open, or read_committed waits for it to end (bounded: ``timeout``)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "fetch.wait.max.ms": 50,
            "log_level": 0,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = []
        at_eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_eof) < partitions:
            assert time.monotonic() < deadline, f"reading {topic} timed out; at the end of {sorted(at_eof)}"
            for m in c.consume(1000, 0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(m.partition())
                        continue
                    raise AssertionError(f"consume error: {err}")
                at_eof.discard(m.partition())
                out.append(m)
        return out
    finally:
        c.close()
