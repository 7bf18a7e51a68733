"""Idempotent producer: exactly once and in order through a connection-cutting proxy, and the broker's
sequence checks on the wire (duplicate -> original offset, gap -> 45, stale epoch -> 47).

Both brokers. The chaos test uses private brokers whose ``advertised.listeners`` name the proxy, so a
client cannot bypass the proxy after bootstrap (see ``odradek.verify.proxy``).
"""

from __future__ import annotations

import time

import pytest
from eoskit import (
    INVALID_PRODUCER_EPOCH,
    NONE,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    Wire,
    batch,
    create_topic,
    producer,
    read_all,
    values_of,
)

from odradek.verify.proxy import ChaosProxy
from support.net import LOOPBACK, free_port

N = 20_000
PARTITIONS = 3


@pytest.fixture(params=["odradek", "kafka"])
def proxied(request, odradek_factory):
    """(kind, proxy) with a private broker of that kind reachable only through the proxy."""
    proxy = ChaosProxy(every_s=0.8, min_bytes=20_000, max_bytes=120_000, seed=7).start()
    advertised = {"advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{proxy.port}"}
    try:
        if request.param == "odradek":
            b = odradek_factory(advertised)
            proxy.target = (LOOPBACK, b.port)
        else:
            factory = request.getfixturevalue("kafka_factory")
            b = factory(advertised, start=False)
            b.port, b.controller_port = free_port(), free_port()
            proxy.target = (LOOPBACK, b.port)
            b.start()
        yield request.param, proxy
    finally:
        proxy.stop()


def test_idempotent_producer_through_cut_connections(proxied, unique):
    kind, proxy = proxied
    topic = unique("idem")
    create_topic(proxy.address, topic, PARTITIONS)
    p = producer(
        proxy.address,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "retries": 1_000_000,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 2,
            "batch.num.messages": 100,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 20,
            "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 200,
            "socket.timeout.ms": 10_000,
        },
    )
    errors: list = []
    delivered = 0

    def on_delivery(err, msg):
        nonlocal delivered
        if err is not None:
            errors.append(err)
        else:
            delivered += 1

    proxy.chaos = True
    t0 = time.monotonic()
    for i in range(N):
        while True:
            try:
                p.produce(topic, value=b"%08d" % i, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 400 == 399:
            p.poll(0.03)  # pace the sends so that connections are cut many times along the way
    remaining = p.flush(120)
    elapsed = time.monotonic() - t0
    proxy.chaos = False
    cuts = proxy.cuts
    assert remaining == 0, f"{remaining} messages undelivered after 120 s ({kind})"
    assert not errors, errors[:5]
    assert delivered == N
    assert cuts >= 5, f"the proxy cut only {cuts} connections in {elapsed:.1f}s: the test proved nothing"

    recs = read_all(proxy.address, topic, PARTITIONS, committed=False)
    for part in range(PARTITIONS):
        got = values_of(r for r in recs if r.partition == part)
        want = [f"{i:08d}" for i in range(part, N, PARTITIONS)]
        if got != want:
            dups = len(got) - len(set(got))
            missing = len(set(want) - set(got))
            raise AssertionError(
                f"partition {part}: {len(got)} records, {dups} duplicates, {missing} missing, "
                f"in order: {got == sorted(got)} ({cuts} cuts, {kind})"
            )
    print(f"{kind}: {N} messages through {cuts} cut connections in {elapsed:.1f}s")


# --------------------------------------------------------------------------------------------------
# Wire level, on the shared brokers


def _vals(seq: int, n: int) -> list[bytes]:
    return [b"seq-%d" % (seq + i) for i in range(n)]


@pytest.fixture
def wire_topic(broker, unique):
    topic = unique("idem-wire")
    create_topic(broker.bootstrap, topic, 1)
    with Wire(broker.bootstrap) as w:
        yield w, topic


def test_duplicate_batch_gets_original_offset(wire_topic):
    w, topic = wire_topic
    pid = w.init_producer_id()
    assert pid.producer_id >= 0 and pid.epoch == 0

    def send(seq, n=5):
        return w.produce(
            topic,
            0,
            batch(_vals(seq, n), producer_id=pid.producer_id, producer_epoch=pid.epoch, base_sequence=seq),
        )

    code, base = send(0)
    assert code == NONE
    assert w.hw(topic) == base + 5
    # The very same batch again: acknowledged with the first answer's offset, nothing appended.
    assert send(0) == (NONE, base)
    assert w.hw(topic) == base + 5
    assert send(5) == (NONE, base + 5)
    assert send(10) == (NONE, base + 10)
    # An older batch still inside the 5-batch window is a duplicate too.
    assert send(5) == (NONE, base + 5)
    assert send(0) == (NONE, base)
    assert w.hw(topic) == base + 15
    # The log holds each record once.
    got = values_of(read_all(w.bootstrap, topic, 1, committed=False))
    assert got == [v.decode() for v in _vals(0, 15)]


def test_duplicate_older_than_window_is_out_of_order(wire_topic):
    w, topic = wire_topic
    pid = w.init_producer_id()

    def send(seq):
        return w.produce(
            topic,
            0,
            batch(_vals(seq, 1), producer_id=pid.producer_id, producer_epoch=pid.epoch, base_sequence=seq),
        )

    bases = [send(s) for s in range(7)]
    assert all(code == NONE for code, _ in bases)
    end = w.hw(topic)
    # seq 2..6 are the 5 retained batches; seq 0 and 1 fell out of the window.
    assert send(2) == bases[2]
    assert send(0)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert w.hw(topic) == end


def test_sequence_gap_is_out_of_order(wire_topic):
    w, topic = wire_topic
    pid = w.init_producer_id()

    def send(seq, n=5):
        return w.produce(
            topic,
            0,
            batch(_vals(seq, n), producer_id=pid.producer_id, producer_epoch=pid.epoch, base_sequence=seq),
        )

    code, base = send(0)
    assert code == NONE
    assert send(10)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER  # a gap
    assert send(3)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER  # overlapping, not an exact duplicate
    assert w.hw(topic) == base + 5
    assert send(5) == (NONE, base + 5)  # the producer can go on at the right sequence
    assert w.hw(topic) == base + 10


def test_stale_epoch_is_rejected(wire_topic):
    w, topic = wire_topic
    pid = w.init_producer_id()

    def send(epoch, seq, n=2):
        return w.produce(
            topic,
            0,
            batch(_vals(seq, n), producer_id=pid.producer_id, producer_epoch=epoch, base_sequence=seq),
        )

    code, base = send(pid.epoch, 0)
    assert code == NONE
    assert send(pid.epoch, 2) == (NONE, base + 2)
    # A bumped epoch (KIP-360: idempotent producers bump their own) must start at sequence 0.
    assert send(pid.epoch + 1, 4)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert send(pid.epoch + 1, 0) == (NONE, base + 4)
    # From now on the old epoch is stale, whatever its sequence.
    assert send(pid.epoch, 4)[0] == INVALID_PRODUCER_EPOCH
    assert send(pid.epoch, 2)[0] == INVALID_PRODUCER_EPOCH
    assert w.hw(topic) == base + 6
    assert send(pid.epoch + 1, 2) == (NONE, base + 6)
