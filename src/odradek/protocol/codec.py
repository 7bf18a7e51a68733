"""Sans-IO request/response codec: bytes in, typed requests out; plain data in, bytes out.

Message entities come from ``kio``. Handlers build responses as plain nested dicts that do not depend on
the API version; :func:`build` turns such a dict into the kio entity of the exact version asked for,
dropping fields that version lacks and filling fields it has from their schema defaults.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import DecodeError

from . import fast, guard
from .apis import SUPPORTED, ApiKey

_FIXED_HEADER = struct.Struct(">hhi")  # api key, api version, correlation id
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class ProtocolError(Exception):
    """Input the broker cannot parse. Kafka closes the connection on these; so do we."""


class FrameTooLarge(ProtocolError):
    pass


class FrameReader:
    """Splits a byte stream into size-prefixed frames.

    The buffer is bounded by ``max_frame_bytes`` (``socket.request.max.bytes``) plus one length prefix:
    a peer can never make the broker hold more than one maximal request per connection here.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole frames completed by ``data``, each copied once out of the stream."""
        buf = self._buf
        if not buf:
            # Nothing buffered: frames come straight out of ``data``; only a partial tail is kept.
            frames, pos = self._split(data)
            if pos < len(data):
                buf += memoryview(data)[pos:]
            return frames
        buf += data
        with memoryview(buf) as view:
            frames, pos = self._split(view)
        if pos:
            del buf[:pos]
        return frames

    def _split(self, data: bytes | memoryview) -> tuple[list[bytes], int]:
        frames: list[bytes] = []
        pos = 0
        end = len(data)
        while end - pos >= 4:
            (size,) = _I32.unpack_from(data, pos)
            if size < 0 or size > self.max_frame_bytes:
                raise FrameTooLarge(f"request size {size} is outside 0..{self.max_frame_bytes}")
            if end - pos - 4 < size:
                break
            frames.append(bytes(data[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return frames, pos

    def take_partial(self, min_size: int, max_size: int) -> tuple[int, bytearray] | None:
        """Hand over a partly received frame of ``min_size``..``max_size`` bytes: (its size, the bytes of
        it received so far), forgetting them here; None (and nothing changes) for any other tail."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (size,) = _I32.unpack_from(buf, 0)
        if not min_size <= size <= max_size:
            return None
        body = buf[4:]
        buf.clear()
        return size, body

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def read_fixed_header(frame: bytes) -> tuple[int, int, int]:
    """(api key, api version, correlation id): readable even for APIs the broker does not know."""
    if len(frame) < _FIXED_HEADER.size:
        raise ProtocolError(f"request of {len(frame)} bytes is too short for a header")
    return _FIXED_HEADER.unpack_from(frame, 0)


def request_is_flexible(api_key: int, api_version: int) -> bool:
    if api_key == ApiKey.PRODUCE and api_version < 3:
        return False
    return bool(_request_class(api_key, api_version).__flexible__)


def parse_header(frame: bytes) -> RequestHeader:
    api_key, api_version, correlation_id = read_fixed_header(frame)
    pos = _FIXED_HEADER.size
    if len(frame) < pos + 2:
        raise ProtocolError("request header ends before client_id")
    (n,) = _I16.unpack_from(frame, pos)
    pos += 2
    client_id: str | None = None
    if n >= 0:
        if len(frame) < pos + n:
            raise ProtocolError("request header client_id runs past the frame")
        client_id = bytes(frame[pos : pos + n]).decode("utf-8", "replace")
        pos += n
    elif n != -1:
        raise ProtocolError(f"invalid client_id length {n}")
    if request_is_flexible(api_key, api_version):
        pos = _skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    try:
        return guard.read_uvarint(buf, pos, len(buf))
    except guard.BodyOutOfBounds as e:
        raise ProtocolError(str(e)) from None


def _skip_tagged_fields(buf: bytes, pos: int) -> int:
    count, pos = _read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise ProtocolError("tagged field runs past the frame")
    return pos


@cache
def _request_class(api_key: int, api_version: int) -> Any:
    return load_request_schema(api_key, api_version)


@cache
def _response_class(api_key: int, api_version: int) -> Any:
    return load_response_schema(api_key, api_version)


@cache
def _reader(cls: Any) -> Callable[..., Any]:
    return entity_reader(cls)


@cache
def _writer(cls: Any) -> Callable[..., Any]:
    return entity_writer(cls)


def decode_request(header: RequestHeader, frame: bytes) -> Any:
    """The kio request entity for the frame's body; ProtocolError if it does not parse."""
    if header.api_key == ApiKey.PRODUCE and header.api_version < 3:
        return decode_old_produce(header.api_version, frame, header.body_offset)
    cls = _request_class(header.api_key, header.api_version)
    try:
        # Lengths are checked first: kio's reader would try to allocate whatever a length claims.
        guard.check(cls, frame, header.body_offset)
        entity, _ = _reader(cls)(frame, header.body_offset)
    except (DecodeError, ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError, KeyError) as e:
        raise ProtocolError(
            f"cannot parse api_key={header.api_key} v{header.api_version} body: {type(e).__name__}: {e}"
        ) from None
    return entity


@dataclass(frozen=True, slots=True)
class OldProduceRequest:
    """Produce v0-v2, which kio does not model: parsed only so each partition can be refused."""

    acks: int
    topics: tuple[tuple[str, tuple[int, ...]], ...]


def decode_old_produce(version: int, frame: bytes, pos: int) -> OldProduceRequest:
    try:
        (acks,) = _I16.unpack_from(frame, pos)
        pos += 2 + 4  # acks, timeout
        (n_topics,) = _I32.unpack_from(frame, pos)
        pos += 4
        if n_topics < 0 or n_topics > len(frame):
            raise ProtocolError("bad topic count")
        topics = []
        for _ in range(n_topics):
            (name_len,) = _I16.unpack_from(frame, pos)
            name = frame[pos + 2 : pos + 2 + name_len].decode()
            pos += 2 + name_len
            (n_parts,) = _I32.unpack_from(frame, pos)
            pos += 4
            if n_parts < 0 or n_parts > len(frame):
                raise ProtocolError("bad partition count")
            parts = []
            for _ in range(n_parts):
                index, size = struct.unpack_from(">ii", frame, pos)
                pos += 8 + max(size, 0)
                parts.append(index)
            topics.append((name, tuple(parts)))
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"cannot parse Produce v{version}: {e}") from None
    return OldProduceRequest(acks, tuple(topics))


def encode_old_produce_response(version: int, correlation_id: int, topics: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    out.write(_I32.pack(correlation_id))
    out.write(_I32.pack(len(topics)))
    for t in topics:
        name = t["name"].encode()
        out.write(_I16.pack(len(name)) + name)
        out.write(_I32.pack(len(t["partitions"])))
        for p in t["partitions"]:
            out.write(struct.pack(">ihq", p["index"], p["error_code"], -1))
            if version >= 2:
                out.write(struct.pack(">q", -1))
    if version >= 1:
        out.write(_I32.pack(0))
    body = out.getvalue()
    return _I32.pack(len(body)) + body


# --- responses -------------------------------------------------------------------------------------


def encode_response(
    api_key: int, api_version: int, correlation_id: int, data: Mapping[str, Any], *, fast_path: bool = True
) -> bytes:
    """Size-prefixed response frame for ``data`` at exactly ``api_version``."""
    if fast_path and api_key == ApiKey.PRODUCE and api_version >= 3:
        return fast.produce_response(api_version, correlation_id, data["responses"])
    if fast_path and api_key == ApiKey.FETCH:
        return b"".join(fast.fetch_response(api_version, correlation_id, data))
    cls = _response_class(api_key, api_version)
    entity = build(cls, data)
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    # ApiVersions always answers with header v0 so that a client can read it before knowing versions.
    if cls.__flexible__ and api_key != ApiKey.API_VERSIONS:
        _writer(ResponseHeaderV1)(buf, ResponseHeaderV1(correlation_id=correlation_id))
    else:
        _writer(ResponseHeaderV0)(buf, ResponseHeaderV0(correlation_id=correlation_id))
    _writer(cls)(buf, entity)
    frame = buf.getbuffer()
    _I32.pack_into(frame, 0, len(frame) - 4)
    return bytes(frame)


def encode_response_parts(
    api_key: int, api_version: int, correlation_id: int, data: Mapping[str, Any]
) -> list[bytes | memoryview]:
    """The response frame as buffers to write in order: Fetch passes stored batches through unjoined."""
    if api_key == ApiKey.FETCH:
        return fast.fetch_response(api_version, correlation_id, data)
    return [encode_response(api_key, api_version, correlation_id, data)]


def encode_api_versions_fallback(correlation_id: int) -> bytes:
    """KIP-511: an ApiVersions request at an unknown version gets a v0 body with error 35 and our range."""
    r = SUPPORTED[ApiKey.API_VERSIONS]
    return encode_response(
        ApiKey.API_VERSIONS,
        0,
        correlation_id,
        {
            "error_code": ErrorCode.unsupported_version,
            "api_keys": [{"api_key": r.key, "min_version": r.min_version, "max_version": r.max_version}],
        },
    )


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    kind: str  # "entity", "entities", "error", "ms", "value"
    target: Any  # nested entity class where kind is entity/entities
    required: bool
    nullable: bool


@cache
def _plan(cls: Any) -> tuple[_FieldPlan, ...]:
    hints = typing.get_type_hints(cls)
    plans = []
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        kafka_type = f.metadata.get("kafka_type")
        kind, target = "value", None
        inner = _strip_optional(t)
        if typing.get_origin(inner) is tuple:
            arg = typing.get_args(inner)[0]
            if dataclasses.is_dataclass(arg):
                kind, target = "entities", arg
        elif dataclasses.is_dataclass(inner):
            kind, target = "entity", inner
        elif kafka_type == "error_code":
            kind = "error"
        elif kafka_type in ("timedelta_i32", "timedelta_i64"):
            kind = "ms"
        elif kafka_type == "datetime_i64":
            kind = "datetime"
        nullable = type(None) in typing.get_args(t)
        plans.append(_FieldPlan(f.name, kind, target, required, nullable))
    return tuple(plans)


def _strip_optional(t: Any) -> Any:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


_ZERO_BY_KIND = {"error": ErrorCode.none, "ms": datetime.timedelta(0)}


def _datetime(v: Any, nullable: bool) -> datetime.datetime | None:
    """Kafka's -1 means "no time": None where kio's field is nullable; otherwise the instant that kio
    writes as -1 (one millisecond before the epoch)."""
    if isinstance(v, datetime.datetime):
        return v
    if v < 0 and nullable:
        return None
    return datetime.datetime.fromtimestamp(v / 1000, tz=datetime.UTC)


def _zero(p: _FieldPlan, cls: Any) -> Any:
    if p.kind in _ZERO_BY_KIND:
        return _ZERO_BY_KIND[p.kind]
    t = _strip_optional(typing.get_type_hints(cls)[p.name])
    if isinstance(t, type):
        if issubclass(t, bool):
            return False
        if issubclass(t, str):
            return ""
        if issubclass(t, bytes):
            return b""
        if t is uuid.UUID:
            return uuid.UUID(int=0)
    return 0


def build(cls: Any, data: Mapping[str, Any]) -> Any:
    """The kio entity ``cls`` from a version-independent dict.

    Keys the version does not have are ignored, as Kafka drops fields an older version lacks. A
    required field with no value gets its type's zero: handlers state what matters, not every field.
    """
    kwargs: dict[str, Any] = {}
    for p in _plan(cls):
        if p.name in data:
            v = data[p.name]
            if v is None:
                # A field nullable only in later versions is sent as its zero value in earlier ones.
                kwargs[p.name] = None if p.nullable else _zero(p, cls)
            elif p.kind == "entities":
                kwargs[p.name] = tuple(build(p.target, item) for item in v)
            elif p.kind == "entity":
                kwargs[p.name] = build(p.target, v)
            elif p.kind == "error":
                kwargs[p.name] = ErrorCode(int(v))
            elif p.kind == "datetime":
                kwargs[p.name] = _datetime(v, p.nullable)
            elif p.kind == "ms":
                kwargs[p.name] = (
                    v if isinstance(v, datetime.timedelta) else datetime.timedelta(milliseconds=v)
                )
            else:
                kwargs[p.name] = v
        elif p.required:
            if p.kind == "entities":
                kwargs[p.name] = ()
            elif p.kind == "entity":
                kwargs[p.name] = build(p.target, {})
            else:
                kwargs[p.name] = _zero(p, cls)
    return cls(**kwargs)
