"""Sparse offset and time indexes of one segment: in-memory arrays, appended to their files lazily.

The arrays are the source of truth while the broker runs (bisect on them is C speed). New entries are
also queued as encoded bytes and written to the index file by ``flush()``, off the event loop, together
with the fsync of the log. A crash can therefore leave an index file short; recovery rebuilds it from the
log, which is why losing queued entries is harmless.

File formats (big-endian, Kafka's layout):
    offset index: relative offset i32 | file position i32            (8 bytes an entry)
    time index:   max timestamp i64   | relative offset i32          (12 bytes an entry)
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right

OFFSET_ENTRY_BYTES = 8
TIME_ENTRY_BYTES = 12
_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_LITTLE = sys.byteorder == "little"


class OffsetIndex:
    """Maps a relative base offset to the file position of the batch starting there."""

    __slots__ = ("rel", "pos", "pending")

    def __init__(self) -> None:
        self.rel = array("i")
        self.pos = array("i")
        self.pending = bytearray()

    def __len__(self) -> int:
        return len(self.rel)

    def append(self, rel_offset: int, position: int) -> None:
        self.rel.append(rel_offset)
        self.pos.append(position)
        self.pending += _OFFSET_ENTRY.pack(rel_offset, position)

    def lookup(self, rel_offset: int) -> int:
        """Position of the last indexed batch starting at or before ``rel_offset`` (0 if none)."""
        i = bisect_right(self.rel, rel_offset) - 1
        return self.pos[i] if i >= 0 else 0

    @classmethod
    def from_bytes(cls, data: bytes) -> OffsetIndex:
        """Decode a file; the caller has checked its length is a whole number of entries."""
        inter = array("i")
        inter.frombytes(data)
        if _LITTLE:
            inter.byteswap()
        index = cls()
        index.rel = inter[0::2]
        index.pos = inter[1::2]
        return index

    def is_sane(self, log_size: int) -> bool:
        """Plausibility for a file we did not write in this run: increasing and inside the log."""
        if not self.rel:
            return True
        if self.rel[0] < 0 or self.pos[0] <= 0 or self.pos[-1] >= log_size:
            return False
        return _strictly_increasing(self.rel) and _strictly_increasing(self.pos)


class TimeIndex:
    """Running maximum timestamp of a segment, sampled at index interval (and once when it rolls).

    Entry i says: every batch up to and including the one holding relative offset ``rel[i]`` has a max
    timestamp <= ``ts[i]``. ``rel`` is the last offset of the batch that set that maximum.
    """

    __slots__ = ("ts", "rel", "pending")

    def __init__(self) -> None:
        self.ts = array("q")
        self.rel = array("i")
        self.pending = bytearray()

    def __len__(self) -> int:
        return len(self.ts)

    def last_ts(self) -> int:
        return self.ts[-1] if self.ts else -1

    def maybe_append(self, timestamp_ms: int, rel_offset: int) -> None:
        """Append only when the maximum rose, which keeps the timestamps strictly increasing."""
        if timestamp_ms > self.last_ts():
            self.ts.append(timestamp_ms)
            self.rel.append(rel_offset)
            self.pending += _TIME_ENTRY.pack(timestamp_ms, rel_offset)

    def last_below(self, timestamp_ms: int) -> int | None:
        """Relative offset of the last entry whose timestamp is < ``timestamp_ms`` (None if none)."""
        i = bisect_left(self.ts, timestamp_ms) - 1
        return self.rel[i] if i >= 0 else None

    @classmethod
    def from_bytes(cls, data: bytes) -> TimeIndex:
        index = cls()
        for t, r in _TIME_ENTRY.iter_unpack(data):
            index.ts.append(t)
            index.rel.append(r)
        return index

    def is_sane(self, next_rel_offset: int) -> bool:
        if not self.ts:
            return True
        return (
            self.rel[0] >= 0
            and self.rel[-1] < next_rel_offset
            and _strictly_increasing(self.ts)
            and _non_decreasing(self.rel)
        )


def _strictly_increasing(values: array) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _non_decreasing(values: array) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False))
