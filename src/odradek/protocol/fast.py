"""Hand-written encoders for the two hot responses, Produce and Fetch.

Everything else is encoded by kio from the generic response dicts. These two run for every batch a
client sends or reads, so they write the wire format directly with ``struct`` and, for Fetch, leave the
stored record bytes as separate buffers (no join, no copy) for a vectored socket write. They produce
exactly the bytes kio would; ``tests/unit/test_fast_encoders.py`` checks that for every version.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_PRODUCE_PART_V8 = struct.Struct(">ihqqq")  # index, error, base offset, log append time, log start
_FETCH_PART = struct.Struct(">ihqqq")  # index, error, high watermark, last stable, log start
_ABORTED = struct.Struct(">qq")

PRODUCE_FLEXIBLE_FROM = 9
FETCH_FLEXIBLE_FROM = 12


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(s: str, flexible: bool) -> bytes:
    raw = s.encode()
    return (_uvarint(len(raw) + 1) if flexible else _I16.pack(len(raw))) + raw


def _nullable_string(s: str | None, flexible: bool) -> bytes:
    if s is None:
        return b"\x00" if flexible else b"\xff\xff"
    return _string(s, flexible)


def _array_len(n: int, flexible: bool) -> bytes:
    return _uvarint(n + 1) if flexible else _I32.pack(n)


def produce_response(version: int, correlation_id: int, topics: Sequence[dict[str, Any]]) -> bytes:
    """Produce v3-v11 response frame (with size prefix) from the handler's response topics."""
    flexible = version >= PRODUCE_FLEXIBLE_FROM
    out = [b"", _I32.pack(correlation_id)]
    if flexible:
        out.append(b"\x00")  # response header tagged fields
    out.append(_array_len(len(topics), flexible))
    for t in topics:
        out.append(_string(t["name"], flexible))
        parts = t["partition_responses"]
        out.append(_array_len(len(parts), flexible))
        for p in parts:
            out.append(
                _I32.pack(p["index"])
                + _I16.pack(p["error_code"])
                + _I64.pack(p["base_offset"])
                + _I64.pack(p.get("log_append_time", -1))
            )
            if version >= 5:
                out.append(_I64.pack(p.get("log_start_offset", -1)))
            if version >= 8:
                out.append(_array_len(0, flexible))  # record_errors
                out.append(_nullable_string(p.get("error_message"), flexible))
            if flexible:
                out.append(b"\x00")
        if flexible:
            out.append(b"\x00")
    out.append(_I32.pack(0))  # throttle_time_ms
    if flexible:
        out.append(b"\x00")
    body = b"".join(out)
    return _I32.pack(len(body)) + body


def fetch_response(version: int, correlation_id: int, response: dict[str, Any]) -> list[bytes | memoryview]:
    """Fetch v4-v12 response frame as a list of buffers; stored record batches are passed through."""
    flexible = version >= FETCH_FLEXIBLE_FROM
    head = bytearray(_I32.pack(correlation_id))
    if flexible:
        head += b"\x00"
    head += _I32.pack(0)  # throttle_time_ms
    if version >= 7:
        head += _I16.pack(response["error_code"]) + _I32.pack(response["session_id"])
    topics = response["responses"]
    head += _array_len(len(topics), flexible)
    buffers: list[bytes | memoryview] = [b"", head]
    cur = head
    for t in topics:
        cur += _string(t["topic"], flexible)
        parts = t["partitions"]
        cur += _array_len(len(parts), flexible)
        for p in parts:
            cur += (
                _FETCH_PART.pack(
                    p["partition_index"],
                    p["error_code"],
                    p["high_watermark"],
                    p["last_stable_offset"],
                    p["log_start_offset"],
                )
                if version >= 5
                else (
                    _I32.pack(p["partition_index"])
                    + _I16.pack(p["error_code"])
                    + _I64.pack(p["high_watermark"])
                    + _I64.pack(p["last_stable_offset"])
                )
            )
            aborted = p["aborted_transactions"]
            if aborted is None:
                cur += b"\x00" if flexible else b"\xff\xff\xff\xff"
            else:
                cur += _array_len(len(aborted), flexible)
                for a in aborted:
                    cur += _ABORTED.pack(a["producer_id"], a["first_offset"])
                    if flexible:
                        cur += b"\x00"
            if version >= 11:
                cur += _I32.pack(p.get("preferred_read_replica", -1))
            chunks = p["records"]
            if chunks is None:
                cur += b"\x00" if flexible else b"\xff\xff\xff\xff"
            else:
                if isinstance(chunks, (bytes, bytearray, memoryview)):
                    chunks = [chunks]
                size = sum(len(c) for c in chunks)
                cur += _uvarint(size + 1) if flexible else _I32.pack(size)
                if size:
                    buffers.extend(chunks)
                    cur = bytearray()
                    buffers.append(cur)
            if flexible:
                cur += b"\x00"
        if flexible:
            cur += b"\x00"
    if flexible:
        cur += b"\x00"
    total = sum(len(b) for b in buffers)
    buffers[0] = _I32.pack(total)
    return buffers
