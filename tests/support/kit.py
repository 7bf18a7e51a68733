"""Small client-level helpers shared by the test directories: bounded waiting, ready topics, reading a
partition back."""

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
