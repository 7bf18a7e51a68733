"""Bounds check of a request body before kio's native reader sees it.

kio's reader trusts the lengths it reads: an array or string length far beyond the frame makes it try to
allocate that much memory, and a failed allocation aborts the whole process. So every request body is
first walked here, following the same schema (field types, flexible or not, nullable, tagged fields), and
any length that runs past the end of the frame, or a tagged field the schema does not define, is refused
as malformed (the connection is closed, as Kafka closes it on a request it cannot parse). Nothing is
built: fixed-size fields, strings and bytes are skipped; only arrays and nested entities are walked.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

# (buffer, position, end) -> position after the field; ValueError when the field does not fit.
Skip = Callable[[Any, int, int], int]

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")

_FIXED_SIZE = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}


class BodyOutOfBounds(ValueError):
    pass


def check(entity_type: type, buf: Any, pos: int) -> int:
    """Where the body of ``entity_type`` at ``pos`` ends; BodyOutOfBounds unless every length fits."""
    try:
        return _entity_skipper(entity_type)(buf, pos, len(buf))
    except struct.error:
        raise BodyOutOfBounds("the request body ends inside a field") from None


def read_uvarint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it; BodyOutOfBounds if cut or too long."""
    value = shift = 0
    while True:
        if pos >= end:
            raise BodyOutOfBounds("a varint runs past the end of the request")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise BodyOutOfBounds("varint longer than 5 bytes")


def _need(pos: int, size: int, end: int) -> int:
    if size < 0 or pos + size > end:
        raise BodyOutOfBounds(f"a length of {size} runs past the end of the request ({end - pos} bytes left)")
    return pos + size


def _fixed(size: int) -> Skip:
    return lambda buf, pos, end: _need(pos, size, end)


def _compact_bytes(buf: Any, pos: int, end: int) -> int:
    n, pos = read_uvarint(buf, pos, end)
    return pos if n == 0 else _need(pos, n - 1, end)  # 0: null


def _legacy_string(buf: Any, pos: int, end: int) -> int:
    _need(pos, 2, end)
    (n,) = _I16.unpack_from(buf, pos)
    return pos + 2 if n < 0 else _need(pos + 2, n, end)  # -1: null


def _legacy_bytes(buf: Any, pos: int, end: int) -> int:
    _need(pos, 4, end)
    (n,) = _I32.unpack_from(buf, pos)
    return pos + 4 if n < 0 else _need(pos + 4, n, end)  # -1: null


def _array(element: Skip, fixed: int | None, flexible: bool) -> Skip:
    def skip(buf: Any, pos: int, end: int) -> int:
        if flexible:
            n, pos = read_uvarint(buf, pos, end)
            if n == 0:
                return pos  # null
            n -= 1
        else:
            _need(pos, 4, end)
            (n,) = _I32.unpack_from(buf, pos)
            pos += 4
            if n < 0:
                return pos  # null
        # Every element takes at least one byte: a count beyond the bytes left is a lie.
        _need(pos, n if fixed is None else n * fixed, end)
        if fixed is not None:
            return pos + n * fixed
        for _ in range(n):
            pos = element(buf, pos, end)
        return pos

    return skip


def _nullable_entity(inner: Skip) -> Skip:
    def skip(buf: Any, pos: int, end: int) -> int:
        _need(pos, 1, end)
        (marker,) = _I8.unpack_from(buf, pos)
        return pos + 1 if marker < 0 else inner(buf, pos + 1, end)

    return skip


def _unwrap(t: Any) -> tuple[Any, bool]:
    """(type without None, whether None was allowed)."""
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return t, False


def _field_skipper(f: dataclasses.Field, hint: Any, flexible: bool, tagged: bool) -> Skip:
    t, optional = _unwrap(hint)
    optional = optional and not tagged  # a tagged field's absence is its null
    is_array = typing.get_origin(t) is tuple
    inner = _unwrap(typing.get_args(t)[0])[0] if is_array else t
    fixed: int | None = None
    if dataclasses.is_dataclass(inner):
        element = _entity_skipper(inner)
        if optional and not is_array:
            element = _nullable_entity(element)
    else:
        kafka_type = f.metadata["kafka_type"]
        if kafka_type in _FIXED_SIZE:
            fixed = _FIXED_SIZE[kafka_type]
            element = _fixed(fixed)
        elif flexible:
            element = _compact_bytes
        elif kafka_type == "string":
            element = _legacy_string
        else:  # bytes, records
            element = _legacy_bytes
    return _array(element, fixed, flexible) if is_array else element


@cache
def _entity_skipper(entity_type: type) -> Skip:
    flexible = bool(getattr(entity_type, "__flexible__", False))
    hints = typing.get_type_hints(entity_type)
    plain: list[Skip] = []
    tagged: dict[int, Skip] = {}
    for f in dataclasses.fields(entity_type):
        tag = f.metadata.get("tag")
        skipper = _field_skipper(f, hints[f.name], flexible, tag is not None)
        if tag is None:
            plain.append(skipper)
        else:
            tagged[int(tag)] = skipper

    def skip(buf: Any, pos: int, end: int) -> int:
        for s in plain:
            pos = s(buf, pos, end)
        if not flexible:
            return pos
        count, pos = read_uvarint(buf, pos, end)
        _need(pos, count, end)  # each tagged field takes at least two bytes
        for _ in range(count):
            tag, pos = read_uvarint(buf, pos, end)
            size, pos = read_uvarint(buf, pos, end)
            stop = _need(pos, size, end)
            field = tagged.get(tag)
            if field is None:
                raise BodyOutOfBounds(f"tagged field {tag} is not in this request's schema")
            if field(buf, pos, stop) != stop:
                raise BodyOutOfBounds(f"tagged field {tag} does not fill its {size} bytes")
            pos = stop
        return pos

    return skip
