"""KIP-368 re-authentication (``connections.max.reauth.ms``), on Odradek and Apache Kafka 4.4 alike.

A raw client sees the session lifetime in SaslAuthenticate, renews it on the open connection, and is
disconnected by a request after it ends; librdkafka re-authenticates on its own and keeps producing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from support.certs import Certs
from support.kafka import KafkaBroker
from support.net import free_ports
from support.secure import (
    LISTENERS,
    SecuredBroker,
    SecuredOdradek,
    kafka_settings,
    security_settings,
)
from wire import WireClient

LIFETIME_MS = 3000


@pytest.fixture(scope="module", params=["odradek", "kafka"])
def reauth_broker(request, tmp_path_factory, secure_certs: Certs) -> Iterator[SecuredBroker]:
    work = tmp_path_factory.mktemp(f"reauth-{request.param}")
    if request.param == "kafka":
        request.getfixturevalue("kafka_jars")
        *listener_ports, controller = free_ports(len(LISTENERS) + 1)
        ports = dict(zip(LISTENERS, listener_ports, strict=True))
        settings = kafka_settings(ports, controller, secure_certs)
        settings["connections.max.reauth.ms"] = str(LIFETIME_MS)
        process = KafkaBroker(work, settings=settings)
        process.port, process.controller_port = ports["PLAINTEXT"], controller
    else:
        ports = dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True))
        settings = security_settings(ports, secure_certs)
        settings["connections.max.reauth.ms"] = str(LIFETIME_MS)
        process = SecuredOdradek(work / "data", settings=settings)
    process.start()
    broker = SecuredBroker(request.param, process, ports, secure_certs)
    try:
        broker.create_scram_users()
        yield broker
    finally:
        broker.stop()


def plain_login(c: WireClient) -> int:
    """SaslHandshake v1 + SaslAuthenticate v2 as alice (PLAIN); the session lifetime."""
    hs = c.request(SaslHandshakeRequest, {"mechanism": "PLAIN"})
    assert int(hs.error_code) == 0
    auth = c.request(SaslAuthenticateRequest, {"auth_bytes": b"\0alice\0alice-secret"})
    assert (int(auth.error_code), auth.error_message) == (0, "")
    return int(auth.session_lifetime.total_seconds() * 1000)


def metadata(c: WireClient):
    body = {"topics": [], "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
    return c.request(MetadataRequest, body)


def test_the_session_has_the_configured_lifetime_and_renews_on_the_same_connection(reauth_broker):
    with WireClient(reauth_broker.bootstrap("SASL_PLAINTEXT")) as c:
        assert plain_login(c) == LIFETIME_MS
        assert len(metadata(c).brokers) == 1
        time.sleep(LIFETIME_MS / 2000)
        assert plain_login(c) == LIFETIME_MS  # re-authenticated before the end
        time.sleep(LIFETIME_MS / 2000 + 0.2)  # past the first session's end, inside the second's
        assert len(metadata(c).brokers) == 1


def test_a_request_after_the_session_ended_closes_the_connection(reauth_broker):
    with WireClient(reauth_broker.bootstrap("SASL_PLAINTEXT")) as c:
        plain_login(c)
        time.sleep(LIFETIME_MS / 1000 + 0.3)
        with pytest.raises((ConnectionError, OSError)):
            metadata(c)


def test_librdkafka_reauthenticates_by_itself_and_keeps_producing(reauth_broker, unique):
    topic = unique("reauth")
    reauth_broker.create_topic(topic)
    reauth_broker.grant_produce_consume("User:alice", topic)
    conf = reauth_broker.confluent_config("SASL_SSL", "SCRAM-SHA-512", "alice", acks="all")
    errors: list[str] = []
    producer = Producer({**conf, "error_cb": lambda e: errors.append(str(e))})
    delivered = []

    def report(err, msg):
        (errors.append(str(err)) if err else delivered.append(msg.offset()))

    deadline = time.monotonic() + 2.5 * LIFETIME_MS / 1000  # through at least two re-authentications
    sent = 0
    while time.monotonic() < deadline:
        producer.produce(topic, b"v%d" % sent, on_delivery=report)
        sent += 1
        producer.poll(0.1)
    assert producer.flush(30) == 0
    assert errors == []
    assert sorted(delivered) == list(range(sent))
