"""The "At-Most-Once Delivery" Python example of docs delivery-guarantees.md, run as written.

The consumer configuration is the snippet's, unchanged (only the bootstrap address and a unique group
name substituted): auto-commit every second, so offsets are committed independently of processing and
a message whose processing fails is not delivered again. The producer side of the pattern sends with
acks=0. Added, as the snippet leaves them out: a subscription, a process_message body (one message
fails), and a way to stop the loop.

This needs consumer groups (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
OffsetFetch) on the broker.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kclients import Confluent

N = 20
POISON = b"message-7"


def test_at_most_once_consumer(broker, topic_name, group_name, caplog):
    Confluent.create_topic(broker.bootstrap, topic_name, 1)

    # --- the snippet's consumer --------------------------------------------------------------------
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group_name,
            "enable.auto.commit": True,  # Auto-commit before processing
            "auto.commit.interval.ms": 1000,
        }
    )
    # ---------------------------------------------------------------------------------------------

    tp = TopicPartition(topic_name, 0)
    assigned: list[TopicPartition] = []
    consumer.subscribe([topic_name], on_assign=lambda c, parts: assigned.extend(parts))

    processed: list[bytes] = []

    def process_message(value: bytes) -> None:
        if value == POISON:
            raise RuntimeError(f"cannot process {value!r}")
        processed.append(value)

    try:
        # The group has no committed offset and the snippet sets no auto.offset.reset, so the consumer
        # starts at the end of the partition, once it has joined and looked the end up. librdkafka does
        # not expose that moment: send warm-up messages until one arrives, then the real ones.
        warmup = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        warmups = 0
        deadline = time.monotonic() + 20
        msg = None
        while msg is None:
            assert time.monotonic() < deadline, f"no warm-up message consumed (assigned={assigned})"
            if assigned:
                warmup.produce(topic_name, value=b"warm-up")
                warmup.flush(10)
                warmups += 1
            msg = consumer.poll(0.3)
            assert msg is None or msg.error() is None, msg.error()
        assert msg.value() == b"warm-up"
        # drain the other warm-ups still in flight
        drained = 1
        while drained < warmups:
            msg = consumer.poll(1.0)
            assert msg is not None and msg.error() is None and msg.value() == b"warm-up"
            drained += 1
        start = consumer.position([tp])[0].offset

        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 0})  # fire and forget
        for i in range(N):
            producer.produce(topic_name, value=b"message-%d" % i)
        assert producer.flush(10) == 0

        # --- the snippet's loop, with a way to stop ----------------------------------------------
        seen = 0
        deadline = time.monotonic() + 30
        while seen < N and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            seen += 1

            # Message may be lost if processing fails
            try:
                process_message(msg.value())
            except Exception as e:
                # Offset already committed - message lost
                logging.error(f"Message lost: {e}")
        # -----------------------------------------------------------------------------------------
    finally:
        consumer.close()  # commits the stored offsets (auto-commit)

    assert seen == N
    assert processed == [b"message-%d" % i for i in range(N) if b"message-%d" % i != POISON]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"Message lost: cannot process {POISON!r}"
    ]

    # At most once: the group's committed offset is past every delivered message, the failed one
    # included, so a restarted member would not see it again.
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_name})
    try:
        (committed,) = again.committed([tp], timeout=10)
    finally:
        again.close()
    assert committed.error is None and committed.offset == start + N
