"""A small durable journal of records: the broker's own state (committed offsets) survives restarts.

Each record is ``length u32 | crc32c u32 | payload``. Appends go to the OS on the event loop; ``flush``
(fsync) runs in the group-commit worker like any partition log. On open, records are replayed up to the
first torn or corrupt one and the file is truncated there. ``rewrite`` replaces the whole file
atomically with the live state when it has grown well past it (compaction).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from crc32c import crc32c

from .files import fsync_dir, write_synced

log = logging.getLogger("odradek.log")

_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 16 * 1024 * 1024


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = -1
        self.size_bytes = 0
        self._unflushed = False

    def open(self) -> list[bytes]:
        """Open (creating if needed) and return every intact record, truncating a damaged tail."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        good = 0
        records = []
        for payload, end in _parse(data):
            records.append(payload)
            good = end
        if good < len(data):
            log.warning(
                "journal %s: dropped %d damaged bytes at position %d", self.path, len(data) - good, good
            )
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if good < len(data):
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self.size_bytes = good
        return records

    def append(self, payloads: Iterable[bytes]) -> None:
        buf = bytearray()
        for p in payloads:
            if not 0 < len(p) <= MAX_RECORD_BYTES:
                raise ValueError(f"journal record of {len(p)} bytes is outside 1..{MAX_RECORD_BYTES}")
            buf += _HEADER.pack(len(p), crc32c(p)) + p
        if buf:
            with self._lock:
                os.write(self._fd, buf)
                self.size_bytes += len(buf)
                self._unflushed = True

    def flush(self) -> None:
        with self._lock:
            if not self._unflushed or self._fd < 0:
                return
            fd = os.dup(self._fd)  # a rewrite may close the original while this fsync runs
            self._unflushed = False
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rewrite(self, payloads: Iterable[bytes]) -> None:
        """Replace the journal with exactly ``payloads``: written aside, fsynced, renamed over."""
        tmp = self.path.with_suffix(".tmp")
        buf = bytearray()
        for p in payloads:
            buf += _HEADER.pack(len(p), crc32c(p)) + p
        write_synced(tmp, buf)
        with self._lock:
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            self.size_bytes = len(buf)
            self._unflushed = False

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _parse(data: bytes) -> Iterator[tuple[bytes, int]]:
    pos = 0
    while pos + _HEADER.size <= len(data):
        size, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if size == 0 or size > MAX_RECORD_BYTES or start + size > len(data):
            return  # records are never empty: zeros are what a power cut leaves, not data
        payload = data[start : start + size]
        if crc32c(payload) != crc:
            return
        pos = start + size
        yield payload, pos
