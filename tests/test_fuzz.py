"""Random and corrupted requests of every kind never take the broker down (a private broker process).

Valid request bodies for every API and version the broker decodes (kio's hypothesis strategies) are
written by kio's writer and sent as real frames on a socket:
- damaged: a 4-byte window overwritten with a length-like value, a byte flipped, or the body cut short.
  The broker must still be running after every one, and at the end a client produces and consumes.
- well-formed, with random values: every handler must answer without an internal error (which would
  close the connection with a traceback in the log instead of the error code Kafka returns).
The examples are derandomized so that CI runs the same requests every time.
"""

from __future__ import annotations

import io
import socket
import struct

from confluent_kafka import Consumer, Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer
from kio.static.primitive import Records

from odradek.protocol import codec
from odradek.protocol.apis import SUPPORTED

REQUESTS = sorted(
    {
        (key.value, version)
        for key, r in SUPPORTED.items()
        for version in range(max(r.min_version, r.refused_below), r.max_version + 1)
    }
)
st.register_type_strategy(Records, st.binary(max_size=64).map(Records))

LENGTHS = [0x7FFFFFFF, 0xFFFFFFFF, 0x40000000, 0x0FFFFFFF, 0x00FFFFFF]


def _frame(key: int, version: int, body: bytes) -> bytes:
    client = b"fuzz"
    header = struct.pack(">hhih", key, version, 7, len(client)) + client
    if codec.request_is_flexible(key, version):
        header += b"\x00"  # no tagged fields in the header
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _damage(body: bytes, how: str, where: int, value: int) -> bytes:
    if not body:
        return body
    where %= len(body)
    if how == "length":
        return body[:where] + struct.pack(">I", value) + body[where + 4 :]
    if how == "varint":  # a 5-byte varint claiming about 2^32
        return body[:where] + b"\xff\xff\xff\xff\x0f" + body[where + 5 :]
    if how == "flip":
        return body[:where] + bytes([body[where] ^ 0xFF]) + body[where + 1 :]
    return body[:where]  # cut


def _body(data: st.DataObject, key: int, version: int) -> bytes:
    cls = codec._request_class(key, version)
    buf = io.BytesIO()
    entity_writer(cls)(buf, data.draw(st.from_type(cls)))
    return buf.getvalue()


def _send(bootstrap: str, frame: bytes) -> None:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(frame)
        s.settimeout(0.2)
        try:
            s.recv(1 << 16)  # an answer, or the broker closing the connection
        except (TimeoutError, ConnectionError):
            pass


def test_corrupted_requests_never_stop_the_broker(fresh_odradek, unique):
    b = fresh_odradek

    for key, version in REQUESTS:  # every API and version, a few damaged bodies each

        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(
            st.data(),
            st.sampled_from(["length", "varint", "flip", "cut"]),
            st.integers(0, 1 << 16),
            st.sampled_from(LENGTHS),
        )
        def one(data: st.DataObject, how: str, where: int, value: int) -> None:
            body = _damage(_body(data, key, version), how, where, value)  # noqa: B023
            _send(b.bootstrap, _frame(key, version, body))  # noqa: B023
            assert b.running, f"the broker died on api {key} v{version} damaged ({how} at {where})"  # noqa: B023

        one()

    topic = unique("after-fuzz")
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce(topic, b"still here")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        for _ in range(100):
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                assert m.value() == b"still here"
                break
        else:
            raise AssertionError("no record after the fuzzing")
    finally:
        c.close()
    assert b.running


def test_well_formed_random_requests_get_answers_not_internal_errors(fresh_odradek):
    b = fresh_odradek

    for key, version in REQUESTS:  # every API and version, a few random bodies each

        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(st.data())
        def one(data: st.DataObject) -> None:
            _send(b.bootstrap, _frame(key, version, _body(data, key, version)))  # noqa: B023
            assert b.running, f"the broker died on api {key} v{version}"  # noqa: B023

        one()
    log = b.log_path.read_text(errors="replace")
    assert "internal error" not in log, log[log.index("internal error") - 300 :][:3000]


def test_no_request_is_served_before_sasl_authentication(tmp_path):
    """Every API and version but ApiVersions and SaslHandshake, sent first on a SASL listener: the broker
    closes the connection without an answer (as Kafka does), and still logs a good client in after."""
    from support.certs import make_certs
    from support.secure import start_secured_odradek

    b = start_secured_odradek(tmp_path / "data", make_certs(tmp_path / "certs"))
    try:
        host, port = b.bootstrap("SASL_PLAINTEXT").rsplit(":", 1)
        for key, version in REQUESTS:
            if key in (17, 18):  # SaslHandshake, ApiVersions: answered before authentication
                continue

            @settings(
                max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
            )
            @given(st.data())
            def one(data: st.DataObject) -> None:
                frame = _frame(key, version, _body(data, key, version))  # noqa: B023
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(frame)
                    try:
                        answer = s.recv(1 << 16)
                    except ConnectionResetError:
                        answer = b""
                    except TimeoutError:
                        answer = b"(neither answered nor closed within 5 s)"
                assert answer == b"", f"api {key} v{version} before authentication: {answer[:60]!r}"  # noqa: B023
                assert b.process.running, f"the broker died on api {key} v{version}"  # noqa: B023

            one()
        b.wait_login("SASL_PLAINTEXT", "PLAIN", "alice")
    finally:
        b.stop()
