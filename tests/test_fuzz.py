"""Corrupted requests of every kind never take the broker down (a private Odradek broker process).

Valid request bodies for every API and version the broker decodes (kio's hypothesis strategies) are
written by kio's writer, then damaged: a 4-byte window overwritten with a length-like value, a byte
flipped, or the body cut short. Each is sent as a real frame on a socket. The broker must still be
running after every one, and at the end a client produces and consumes on it as usual.
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

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.data(),
        st.sampled_from(["length", "varint", "flip", "cut"]),
        st.integers(0, 1 << 16),
        st.sampled_from(LENGTHS),
    )
    def one(data: st.DataObject, how: str, where: int, value: int) -> None:
        key, version = data.draw(st.sampled_from(REQUESTS))
        cls = codec._request_class(key, version)
        buf = io.BytesIO()
        entity_writer(cls)(buf, data.draw(st.from_type(cls)))
        _send(b.bootstrap, _frame(key, version, _damage(buf.getvalue(), how, where, value)))
        assert b.running, f"the broker died on a damaged {cls.__module__} ({how} at {where})"

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
