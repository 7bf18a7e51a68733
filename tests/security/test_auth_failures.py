"""Refused clients, on Odradek as on Kafka 4.4: the same error code, or the same closed connection.

Each case is seen where it is clearest: SASL outcomes on a raw socket (the SaslHandshake /
SaslAuthenticate error code, then the broker closing the connection), and once through a real client
(the error confluent-kafka and kafka-python surface); TLS outcomes through Python's ``ssl`` (the handshake
or the first read fails, no Kafka response ever arrives). After every case the broker must still serve
good clients on every listener (:func:`_serves_good_clients`, run by an autouse fixture).

What Kafka 4.4 does, measured with support/secure.py's configuration:

* wrong password / unknown user, PLAIN: SaslAuthenticate error 58 (SASL_AUTHENTICATION_FAILED),
  "Authentication failed: Invalid username or password", then the connection is closed;
* the same for SCRAM (at the client-first message for an unknown user, at the proof for a wrong
  password): 58, "Authentication failed during authentication due to invalid credentials with SASL
  mechanism SCRAM-SHA-512", then closed;
* a mechanism not enabled (GSSAPI, SCRAM-SHA-1, lower-case "plain", ""): SaslHandshake error 33
  (UNSUPPORTED_SASL_MECHANISM) listing the enabled mechanisms, then closed;
* a request other than ApiVersions / SaslHandshake before authenticating on a SASL listener: closed;
* a plaintext request on a TLS port: no Kafka response (Kafka answers with a TLS alert record), closed;
* a TLS ClientHello on a plaintext port: the handshake fails (the broker closes the connection);
* on the SSL listener (ssl.client.auth=required): an expired client certificate, one from another CA
  and none at all are refused in the handshake; a client that does not trust the broker's CA gives up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import ssl
import time
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from support.secure import MECHANISMS, USERS, SecuredBroker
from wire import WireClient

pytestmark = pytest.mark.differential

SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
PLAIN_FAILED = "Authentication failed: Invalid username or password"
TIMEOUT_S = 20.0
API_VERSIONS = {"client_software_name": "odradek-tests", "client_software_version": "1"}

logging.getLogger("kafka").setLevel(logging.CRITICAL)


def scram_failed(mechanism: str) -> str:
    return (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism "
        + mechanism
    )


# --------------------------------------------------------------------------------------------------
# Helpers


def _serves_good_clients(secured: SecuredBroker) -> None:
    """A good client of each authenticated listener still gets Metadata (one try each, no retries)."""
    from confluent_kafka.admin import AdminClient

    good = [
        ("SSL", None, None),
        ("SASL_PLAINTEXT", "PLAIN", "alice"),
        ("SASL_SSL", "PLAIN", "bob"),
    ]
    if not secured.scram_error:
        good.append(("SASL_SSL", "SCRAM-SHA-512", "alice"))
    for case in good:
        metadata = AdminClient(secured.confluent_config(*case)).list_topics(timeout=TIMEOUT_S)
        assert metadata.brokers, f"{secured.kind}: no brokers in Metadata over {case}"


@pytest.fixture(autouse=True)
def still_serving(secured: SecuredBroker):
    yield
    _serves_good_clients(secured)


def _handshake(
    secured: SecuredBroker, mechanism: str, listener: str = "SASL_PLAINTEXT"
) -> tuple[WireClient, Any]:
    wire = _wire(secured, listener)
    return wire, wire.request(SaslHandshakeRequest, {"mechanism": mechanism})


def _wire(secured: SecuredBroker, listener: str) -> WireClient:
    wire = WireClient(secured.bootstrap(listener), timeout_s=TIMEOUT_S)
    if listener in ("SSL", "SASL_SSL"):
        wire.sock = secured.ssl_context(listener).wrap_socket(wire.sock, server_hostname="127.0.0.1")
    return wire


def _authenticate(wire: WireClient, token: bytes) -> Any:
    return wire.request(SaslAuthenticateRequest, {"auth_bytes": token})


def _closed(wire: WireClient) -> bool:
    try:
        return wire.is_closed_by_peer(TIMEOUT_S)
    except (ssl.SSLError, OSError):
        return True
    finally:
        wire.close()


class ScramClient:
    """The client side of SCRAM (RFC 5802), enough to send a chosen proof."""

    def __init__(self, mechanism: str, user: str) -> None:
        self.hash = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes, password: str) -> bytes:
        fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
        assert fields["r"].startswith(self.nonce), server_first
        salted = hashlib.pbkdf2_hmac(
            self.hash, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored_key = hashlib.new(self.hash, client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def _client_errors(conf: dict[str, Any], codes: set[int]) -> list[Any]:
    """The errors confluent-kafka reports (error_cb) while trying to connect with ``conf``, until one
    has a code in ``codes`` (or a bound passes)."""
    from confluent_kafka import Producer

    errors: list[Any] = []
    producer = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and not any(e.code() in codes for e in errors):
        producer.poll(0.2)
    return errors


# --------------------------------------------------------------------------------------------------
# SASL


@pytest.mark.parametrize("user", ["alice", "mallory"], ids=["wrong-password", "unknown-user"])
def test_plain_refused(secured: SecuredBroker, user: str) -> None:
    wire, handshake = _handshake(secured, "PLAIN")
    assert handshake.error_code == 0
    response = _authenticate(wire, f"\0{user}\0not-the-password".encode())
    assert (response.error_code, response.error_message) == (SASL_AUTHENTICATION_FAILED, PLAIN_FAILED)
    assert _closed(wire), "the broker kept the connection open after a failed authentication"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_wrong_password(secured: SecuredBroker, mechanism: str) -> None:
    secured.require_scram()
    wire, handshake = _handshake(secured, mechanism, "SASL_SSL")
    assert handshake.error_code == 0
    scram = ScramClient(mechanism, "alice")
    first = _authenticate(wire, scram.first())
    assert first.error_code == 0, first
    response = _authenticate(wire, scram.final(first.auth_bytes, "not-the-password"))
    assert (response.error_code, response.error_message) == (
        SASL_AUTHENTICATION_FAILED,
        scram_failed(mechanism),
    )
    assert _closed(wire)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_unknown_user(secured: SecuredBroker, mechanism: str) -> None:
    wire, handshake = _handshake(secured, mechanism)
    assert handshake.error_code == 0
    response = _authenticate(wire, ScramClient(mechanism, "mallory").first())
    assert (response.error_code, response.error_message) == (
        SASL_AUTHENTICATION_FAILED,
        scram_failed(mechanism),
    )
    assert _closed(wire)


def test_scram_good_proof_accepted(secured: SecuredBroker) -> None:
    """The hand-made SCRAM client above is right: with the right password the broker lets it in."""
    secured.require_scram()
    wire, _ = _handshake(secured, "SCRAM-SHA-512")
    scram = ScramClient("SCRAM-SHA-512", "bob")
    first = _authenticate(wire, scram.first())
    final = _authenticate(wire, scram.final(first.auth_bytes, USERS["bob"]))
    assert (final.error_code, final.auth_bytes[:2]) == (0, b"v="), final
    metadata = wire.request(
        MetadataRequest,
        {"topics": [], "allow_auto_topic_creation": False, "include_topic_authorized_operations": False},
    )
    assert len(metadata.brokers) == 1
    wire.close()


@pytest.mark.parametrize("mechanism", ["GSSAPI", "SCRAM-SHA-1", "OAUTHBEARER", "plain", ""])
def test_unknown_mechanism(secured: SecuredBroker, mechanism: str) -> None:
    wire, handshake = _handshake(secured, mechanism)
    assert handshake.error_code == UNSUPPORTED_SASL_MECHANISM
    # Kafka 4.4 lists them as PLAIN, SCRAM-SHA-512, SCRAM-SHA-256 (not in the configured order).
    assert sorted(handshake.mechanisms) == sorted(MECHANISMS)
    assert _closed(wire)


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_request_before_authentication_closes(secured: SecuredBroker, listener: str) -> None:
    """ApiVersions is answered before SASL; Metadata is not: the broker closes the connection."""
    wire = _wire(secured, listener)
    versions = wire.request(ApiVersionsRequest, API_VERSIONS)
    assert versions.error_code == 0 and versions.api_keys
    body = {"topics": None, "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
    wire.send_raw(wire.encode_request(MetadataRequest, body, wire.next_correlation_id()))
    assert _closed(wire)


def test_confluent_surfaces_authentication_error(secured: SecuredBroker) -> None:
    from confluent_kafka import KafkaError

    conf = secured.confluent_config("SASL_PLAINTEXT", "PLAIN", "alice", password="nope")
    errors = _client_errors(conf, {KafkaError._AUTHENTICATION})
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error reported: {errors}"
    assert PLAIN_FAILED in auth[0].str()
    assert "nope" not in auth[0].str()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kafka_python_surfaces_authentication_error(
    secured: SecuredBroker, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3 gives up bootstrapping (a timeout). Against Kafka 4.4 it logs most attempts as
    "socket disconnected" (KafkaConnectionError), some as the SaslAuthenticate error: either is accepted."""
    from kafka import KafkaConsumer
    from kafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        RequestTimedOutError,
        SaslAuthenticationFailedError,
    )

    if mechanism != "PLAIN":
        secured.require_scram()
    kw = secured.python_config("SASL_PLAINTEXT", mechanism, "bob", password="nope")
    caplog.set_level(logging.WARNING, logger="kafka.net.manager")
    with pytest.raises(KafkaTimeoutError):
        KafkaConsumer(**kw, bootstrap_timeout_ms=8000)
    refusals = [
        arg
        for record in caplog.records
        for arg in (record.args or ())
        if isinstance(arg, Exception) and not isinstance(arg, KafkaTimeoutError)
    ]
    refused = (KafkaConnectionError, SaslAuthenticationFailedError)
    assert any(isinstance(e, refused) for e in refusals), refusals
    # On a loaded machine a reconnect attempt may also time out on its own (kafka-python's short
    # bootstrap request timeout); nothing else may appear.
    assert all(isinstance(e, (*refused, RequestTimedOutError)) for e in refusals), refusals


# --------------------------------------------------------------------------------------------------
# TLS


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(TIMEOUT_S)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_plaintext_client_on_tls_port(secured: SecuredBroker, listener: str) -> None:
    wire = WireClient(secured.bootstrap(listener), timeout_s=TIMEOUT_S)
    try:
        wire.send_raw(wire.encode_request(ApiVersionsRequest, API_VERSIONS, 1))
        data = _read_until_closed(wire.sock)
    finally:
        wire.close()
    # Nothing, or a TLS alert record (content type 21): never a Kafka response.
    assert data == b"" or data[:1] == b"\x15", data[:40]


@pytest.mark.parametrize("listener", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_client_on_plaintext_port(secured: SecuredBroker, listener: str) -> None:
    ctx = secured.ssl_context("SASL_SSL")
    with socket.create_connection(("127.0.0.1", secured.ports[listener]), timeout=TIMEOUT_S) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(sock, server_hostname="127.0.0.1")


def _tls_api_versions(secured: SecuredBroker, *, cert: str, ca: str = "ca") -> Any:
    """An ApiVersions request over TLS to the SSL listener, presenting ``cert`` and trusting ``ca``."""
    wire = WireClient(secured.bootstrap("SSL"), timeout_s=TIMEOUT_S)
    try:
        wire.sock = secured.ssl_context("SSL", cert=cert, ca=ca).wrap_socket(
            wire.sock, server_hostname="127.0.0.1"
        )
        return wire.request(ApiVersionsRequest, API_VERSIONS)
    finally:
        wire.close()


def test_trusted_client_certificate_accepted(secured: SecuredBroker) -> None:
    """The baseline of the refusals below: the good certificate gets an ApiVersions answer."""
    assert _tls_api_versions(secured, cert="client").error_code == 0


@pytest.mark.parametrize("cert", ["expired_client", "untrusted_client", "none"])
def test_bad_client_certificate_refused(secured: SecuredBroker, cert: str) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_api_versions(secured, cert=cert)


def test_client_not_trusting_the_broker(secured: SecuredBroker) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_api_versions(secured, cert="client", ca="other_ca")


def test_confluent_bad_certificate_refused(secured: SecuredBroker) -> None:
    """librdkafka with an expired certificate never gets a Kafka response: its error_cb reports the
    broker down (Kafka's TLS alert also shows as a transport error naming it; see the test below)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    codes = {KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
    errors = _client_errors(secured.confluent_config("SSL", cert="expired_client"), codes)
    assert any(e.code() in codes for e in errors), errors
    with pytest.raises(KafkaException):
        AdminClient(secured.confluent_config("SSL", cert="expired_client")).list_topics(timeout=3)


# OpenSSL writes no alert for bytes that are not a TLS record at all (Kafka's Java TLS answers them with
# one); either way the plaintext client's connection is closed without a Kafka response.
ODRADEK_NO_ALERT_FOR_PLAINTEXT = (
    "OpenSSL sends no alert to a peer whose first bytes are not a TLS record; Odradek closes the connection "
    "(Kafka's Java TLS sends an alert, then closes)"
)


@pytest.mark.parametrize("case", ["expired_client", "untrusted_client", "none", "plaintext"])
def test_refused_tls_peer_gets_alert(
    secured: SecuredBroker, case: str, request: pytest.FixtureRequest
) -> None:
    """A refused TLS peer is told why, with a fatal TLS alert record, before the connection closes."""
    if secured.is_odradek and case == "plaintext":
        request.applymarker(pytest.mark.xfail(strict=True, reason=ODRADEK_NO_ALERT_FOR_PLAINTEXT))
    if case == "plaintext":
        wire = WireClient(secured.bootstrap("SSL"), timeout_s=TIMEOUT_S)
        try:
            wire.send_raw(wire.encode_request(ApiVersionsRequest, API_VERSIONS, 1))
            data = _read_until_closed(wire.sock)
        finally:
            wire.close()
        assert data[:3] == b"\x15\x03\x03", data[:40]  # alert record, TLS 1.2 framing
        return
    with pytest.raises(ssl.SSLError, match="ALERT"):
        _tls_api_versions(secured, cert=case)


# --------------------------------------------------------------------------------------------------
# Logs


def test_passwords_never_logged(secured: SecuredBroker) -> None:
    """Neither the configured passwords nor a refused client's password reach the broker's log."""
    refused = "refused-" + os.urandom(6).hex()
    wire, _ = _handshake(secured, "PLAIN")
    assert _authenticate(wire, f"\0alice\0{refused}".encode()).error_code == SASL_AUTHENTICATION_FAILED
    assert _closed(wire)
    if not secured.scram_error:
        wire, _ = _handshake(secured, "SCRAM-SHA-512")
        scram = ScramClient("SCRAM-SHA-512", "alice")
        first = _authenticate(wire, scram.first())
        _authenticate(wire, scram.final(first.auth_bytes, refused))
        assert _closed(wire)
    log = secured.process.log_path.read_text(errors="replace")
    assert "alice" in log or secured.is_kafka, "the refusal of alice is not logged"
    for secret in (refused, *USERS.values()):
        assert secret not in log, f"{secret!r} appears in {secured.process.log_path}"
