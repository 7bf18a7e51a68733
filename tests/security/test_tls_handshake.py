"""A TLS handshake that stalls is dropped after a bound, and never stops the broker serving others.

Odradek bounds the handshake with ``ssl.handshake.timeout.ms`` (its own key, set to 500 ms here). Kafka
has no handshake timeout of its own: a connection stuck before the end of its handshake is an idle
connection, closed after ``connections.max.idle.ms`` (set to 1 s here). On both, while stalled
connections keep arriving (silent ones, ones that sent half a ClientHello, ones that sent a whole
ClientHello and never answer the server's flight), a normal TLS client produces and consumes, and then
every stalled connection is seen closed by the broker within a generous bound.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from support.certs import Certs
from support.kafka import KafkaBroker
from support.net import LOOPBACK, free_ports
from support.odradek import OdradekBroker

HANDSHAKE_TIMEOUT_MS = 500  # Odradek's ssl.handshake.timeout.ms
KAFKA_IDLE_MS = 1000  # Kafka's connections.max.idle.ms, its bound on the same stall
DROP_BOUND_S = 60.0  # generous: "dropped at all, not minutes later", not a timing measurement
RECORDS = 50


def _tls_settings(plain: int, tls: int, certs: Certs) -> dict[str, str]:
    endpoints = f"PLAINTEXT://{LOOPBACK}:{plain},SSL://{LOOPBACK}:{tls}"
    return {
        "listeners": endpoints,
        "advertised.listeners": endpoints,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.server.bundle),
        "ssl.client.auth": "none",
    }


class Target:
    def __init__(self, kind: str, process: OdradekBroker | KafkaBroker, plain: int, tls: int) -> None:
        self.kind, self.process, self.plain, self.tls = kind, process, plain, tls


@pytest.fixture(params=["odradek", "kafka"])
def target(request: pytest.FixtureRequest, tmp_path: Path, secure_certs: Certs) -> Iterator[Target]:
    plain, tls, controller = free_ports(3)
    settings = _tls_settings(plain, tls, secure_certs)
    if request.param == "odradek":
        settings["ssl.handshake.timeout.ms"] = str(HANDSHAKE_TIMEOUT_MS)
        process: OdradekBroker | KafkaBroker = OdradekBroker(tmp_path / "data", settings=settings)
    else:
        request.getfixturevalue("kafka_jars")  # java and the jars, or skip / fail under CI
        settings["listeners"] += f",CONTROLLER://{LOOPBACK}:{controller}"
        settings["listener.security.protocol.map"] += ",CONTROLLER:PLAINTEXT"
        settings["connections.max.idle.ms"] = str(KAFKA_IDLE_MS)
        process = KafkaBroker(tmp_path / "kafka", settings=settings)
        process.port, process.controller_port = plain, controller
    process.start()
    try:
        yield Target(request.param, process, plain, tls)
    finally:
        alive = process.running
        process.stop()
    assert alive, f"the {request.param} broker died during the test"


def _client_hello(certs: Certs) -> bytes:
    """A real ClientHello, as a TLS client sends it first."""
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=LOOPBACK)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:16]  # a handshake record
    return hello


class Staller:
    """Keeps opening stalled connections to ``port`` until stopped, in turn: one that sends nothing,
    one that sends half a ClientHello, one that sends a whole ClientHello; every socket is kept for
    :meth:`wait_dropped`."""

    def __init__(self, port: int, hello: bytes, interval_s: float = 0.1) -> None:
        self.port, self.interval_s = port, interval_s
        self.first_bytes = (b"", hello[: len(hello) // 2], hello)
        self.sockets: list[socket.socket] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-staller", daemon=True)

    def open_one(self) -> None:
        s = socket.create_connection((LOOPBACK, self.port), timeout=10)
        first = self.first_bytes[len(self.sockets) % len(self.first_bytes)]
        if first:
            s.sendall(first)
        self.sockets.append(s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.open_one()
            except OSError as e:
                self.errors.append(repr(e))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Staller:
        for _ in range(6):  # several stalled before the good client starts
            self.open_one()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_dropped(self, bound_s: float) -> list[int]:
        """Indexes of the sockets the broker did NOT close within ``bound_s`` (from now)."""
        deadline = time.monotonic() + bound_s
        open_ones = []
        for i, s in enumerate(self.sockets):
            if not _closed_by_peer(s, deadline):
                open_ones.append(i)
        return open_ones

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def _closed_by_peer(s: socket.socket, deadline: float) -> bool:
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except TimeoutError:
            return False
        except ConnectionError:  # reset: dropped as well
            return True
        if not data:
            return True
        # The server's first flight (after a whole ClientHello) or an alert: read on to the end.
        if time.monotonic() >= deadline:
            return False


def _tls_client(target: Target, certs: Certs) -> dict:
    return {
        "bootstrap.servers": f"{LOOPBACK}:{target.tls}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs.ca_file),
    }


def _produce_and_consume(target: Target, certs: Certs) -> list[bytes]:
    topic = f"tls-stall-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": f"{LOOPBACK}:{target.plain}"})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    producer = Producer({**_tls_client(target, certs), "acks": "all", "enable.idempotence": True})
    for i in range(RECORDS):
        producer.produce(topic, f"v{i}".encode(), partition=0)
    assert producer.flush(60) == 0
    consumer = Consumer({**_tls_client(target, certs), "group.id": topic, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < RECORDS and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_stalled_tls_handshakes_are_dropped_and_others_served(target: Target, secure_certs: Certs) -> None:
    staller = Staller(target.tls, _client_hello(secure_certs))
    try:
        with staller:
            values = _produce_and_consume(target, secure_certs)
            during = len(staller.sockets)
        assert values == [f"v{i}".encode() for i in range(RECORDS)]
        assert not staller.errors, staller.errors[:5]
        assert during > 6  # stalled connections kept arriving while the client worked
        still_open = staller.wait_dropped(DROP_BOUND_S)
        assert not still_open, (
            f"{len(still_open)} of {len(staller.sockets)} stalled connections still open after "
            f"{DROP_BOUND_S:.0f} s (indexes {still_open[:10]})"
        )
        # And the broker still serves a new client once the stalls are gone.
        assert _produce_and_consume(target, secure_certs) == [f"v{i}".encode() for i in range(RECORDS)]
    finally:
        staller.close()


def test_connections_in_their_handshake_count_toward_max_connections(
    tmp_path: Path, secure_certs: Certs
) -> None:
    """Counted from accept, as Kafka counts them: stalled handshakes fill max.connections, a new
    connection on any listener is refused at once, and once the stalls are dropped clients are served.
    Odradek only: past max.connections Kafka stops accepting (the connection waits in the listen backlog)
    where Odradek closes it, a difference docs/compatibility.md records."""
    plain, tls = free_ports(2)
    settings = {
        **_tls_settings(plain, tls, secure_certs),
        "ssl.handshake.timeout.ms": "3000",  # the stalls outlive the check of the fourth connection
        "max.connections": "3",
    }
    broker = OdradekBroker(tmp_path / "data", settings=settings).start()
    stalled = [socket.create_connection((LOOPBACK, tls), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.2)  # the broker has accepted them (nothing to wait on from outside)
        extra = socket.create_connection((LOOPBACK, plain), timeout=10)
        assert _closed_by_peer(extra, time.monotonic() + 10), "a fourth connection was let in"
        extra.close()
        assert all(_closed_by_peer(s, time.monotonic() + DROP_BOUND_S) for s in stalled)
        target = Target("odradek", broker, plain, tls)
        assert _produce_and_consume(target, secure_certs) == [f"v{i}".encode() for i in range(RECORDS)]
    finally:
        for s in stalled:
            s.close()
        broker.stop()
