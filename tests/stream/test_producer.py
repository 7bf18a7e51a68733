"""GuaranteedProducer: the producer side of each guarantee, with message ids, on both brokers."""

from __future__ import annotations

import pytest
from streamkit import read_topic

from odradek.stream import DeliveryError, GuaranteedProducer, StartupError, StreamError
from support.kit import create_topic
from support.net import free_port


@pytest.mark.parametrize("guarantee", ["at-most-once", "at-least-once"])
def test_records_carry_message_ids(broker, unique, guarantee):
    topic = unique("t")
    create_topic(broker.bootstrap, topic, 1)
    p = GuaranteedProducer(broker.bootstrap, guarantee)
    ids = [p.send(topic, b"v%d" % i, key=b"k", headers=[("h", "x")]) for i in range(3)]
    given = p.send(topic, "text", message_id="order-7")
    p.flush()
    got = read_topic(broker.bootstrap, topic, 4)
    assert [m.value() for m in got] == [b"v0", b"v1", b"v2", b"text"]
    assert [dict(m.headers())["message-id"].decode() for m in got] == [*ids, "order-7"]
    assert given == "order-7" and len(set(ids)) == 3
    assert all(dict(m.headers())["h"] == b"x" for m in got[:3])


def test_exactly_once_sends_in_transactions_and_aborts_on_error(broker, unique):
    topic = unique("t")
    create_topic(broker.bootstrap, topic, 1)
    p = GuaranteedProducer(broker.bootstrap, "exactly-once", transactional_id=unique("txn"))
    with pytest.raises(StreamError, match="inside"):
        p.send(topic, b"outside")
    with p.transaction():
        p.send(topic, b"kept-1")
        p.send(topic, b"kept-2")
    with pytest.raises(RuntimeError, match="changed my mind"), p.transaction():
        p.send(topic, b"aborted")
        raise RuntimeError("changed my mind")
    with p.transaction():
        p.send(topic, b"kept-3")
    assert [m.value() for m in read_topic(broker.bootstrap, topic, 3)] == [b"kept-1", b"kept-2", b"kept-3"]


def test_exactly_once_needs_a_transactional_id():
    with pytest.raises(ValueError, match="transactional_id"):
        GuaranteedProducer("127.0.0.1:1", "exactly-once")


def test_at_least_once_reports_what_was_not_delivered():
    port = free_port()  # nothing listens there
    p = GuaranteedProducer(
        f"127.0.0.1:{port}", "at-least-once", config={"message.timeout.ms": 1000, "log_level": 0}
    )
    mid = p.send("t", b"lost?")
    with pytest.raises(DeliveryError) as e:
        p.flush(timeout_s=10)
    assert e.value.failed[0][0] == mid
    assert "1 record(s) not delivered" in str(e.value)


def test_a_transactional_producer_that_cannot_start_says_so_in_one_line():
    port = free_port()
    with pytest.raises(StartupError) as e:
        GuaranteedProducer(
            f"127.0.0.1:{port}",
            "exactly-once",
            transactional_id="x",
            init_timeout_s=2,
            config={"log_level": 0},
        )
    assert f"127.0.0.1:{port}" in str(e.value) and "\n" not in str(e.value)
