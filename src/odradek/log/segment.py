"""One segment: a ``.log`` file of whole record batches plus its two sparse indexes.

A segment knows positions and offsets, not partitions: rolling, retention and recovery policy live in
``partition.py``. All work is per batch header; record bodies are only touched by the CRC check that
recovery runs (in C, via crc32c).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from odradek.log.files import write_synced
from odradek.log.index import OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES, OffsetIndex, TimeIndex
from odradek.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    compute_crc,
    peek_offset_and_size,
    read_header,
    validate_stored_batch,
)

SCAN_CHUNK_BYTES = 1 << 20  # recovery reads the log in chunks this big, so memory stays flat
WALK_CHUNK_BYTES = 16384  # header walks (offset lookup) read this much per pread
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _write_at_end(fd: int, parts: Sequence[bytes | bytearray | memoryview], size: int, position: int) -> None:
    """Append one batch, given as consecutive buffers, to a file that ends at ``position``; a failed
    write is cut back so positions stay exact."""
    try:
        written = os.writev(fd, parts)
        if written < size:  # a short write (rare on a regular file): finish from one buffer
            rest = memoryview(b"".join(parts))
            while written < size:
                written += os.write(fd, rest[written:])
    except BaseException:
        os.ftruncate(fd, position)
        raise


class CorruptLogError(Exception):
    """A batch header read back from a segment is impossible; the log changed under us."""


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _cleaned_batch(buf: bytes, pos: int, size: int) -> BatchHeader | None:
    """A batch the log cleaner rewrote: fewer records than its offset range (none, where only the header
    was kept for a producer's state), still whole and with a good CRC32C."""
    header = read_header(buf, pos)
    if header.magic != 2 or not 0 <= header.record_count <= header.last_offset_delta:
        return None
    if compute_crc(memoryview(buf)[pos : pos + size]) != header.crc:
        return None
    return header


class Segment:
    """In-memory state of a segment; the log file descriptor is opened on first use and kept."""

    __slots__ = (
        "base_offset",
        "log_path",
        "index_path",
        "time_index_path",
        "fd",
        "files_created",
        "size",
        "unwritten",
        "next_offset",
        "index",
        "time_index",
        "max_ts",
        "max_ts_offset",
        "bytes_since_index",
        "roll_base_ms",
        "first_batch_ts",
    )

    def __init__(self, directory: Path, base_offset: int, *, files_created: bool) -> None:
        stem = segment_name(base_offset)
        self.base_offset = base_offset
        self.log_path = directory / f"{stem}.log"
        self.index_path = directory / f"{stem}.index"
        self.time_index_path = directory / f"{stem}.timeindex"
        self.fd: int | None = None
        self.files_created = files_created
        self._reset()
        self.roll_base_ms: int | None = None

    def _reset(self) -> None:
        self.size = 0  # bytes of the batches appended, whether written to the file yet or still queued
        self.unwritten = 0  # of those, bytes queued by queue() and not yet written (write_queued)
        self.next_offset = self.base_offset
        self.index = OffsetIndex()
        self.time_index = TimeIndex()
        self.max_ts = -1
        self.max_ts_offset = -1
        self.bytes_since_index = 0
        self.first_batch_ts: int | None = None

    # -- files -------------------------------------------------------------------------------------

    def create_files(self) -> None:
        """Create the three files of a new segment; an existing file at this name is stale by contract."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC
        self.fd = os.open(self.log_path, flags, 0o644)
        for path in (self.index_path, self.time_index_path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644))
        self.files_created = True

    def fd_open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND | _O_CLOEXEC)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def delete_files(self) -> None:
        self.close()
        for path in (self.log_path, self.index_path, self.time_index_path):
            path.unlink(missing_ok=True)

    def truncate_file(self, position: int) -> None:
        fd = self.fd_open()
        os.ftruncate(fd, position)
        os.fsync(fd)

    # -- appending ---------------------------------------------------------------------------------

    def append(
        self,
        parts: Sequence[bytes | bytearray | memoryview],
        base_offset: int,
        last_offset: int,
        max_ts: int,
        interval: int,
    ) -> None:
        """Write one batch, given as consecutive buffers, at the end. A failed write is cut back so
        positions stay exact."""
        assert not self.unwritten, "a direct append behind queued batches would land before them"
        position = self.size
        size = sum(memoryview(p).nbytes for p in parts)
        _write_at_end(self.fd_open(), parts, size, position)
        self._account(position, base_offset, last_offset, max_ts, size, interval)

    def queue(self, size: int, base_offset: int, last_offset: int, max_ts: int, interval: int) -> int:
        """Account for a batch of ``size`` bytes at the end that write_queued() writes later: offsets,
        indexes and ``size`` move now, the file catches up. Returns the batch's position."""
        self.fd_open()  # here, on the loop: the writing thread then never opens one beside a reader
        position = self.size
        self._account(position, base_offset, last_offset, max_ts, size, interval)
        self.unwritten += size
        return position

    def write_queued(self, parts: Sequence[bytes | bytearray | memoryview], size: int, position: int) -> None:
        """Write the oldest batch queue() accounted for, which starts at ``position``; never beside another
        write of this segment. A failed write is cut back to ``position``. The caller lowers ``unwritten``."""
        _write_at_end(self.fd_open(), parts, size, position)

    @property
    def written(self) -> int:
        """Bytes of the file that hold batches: what reads may touch."""
        return self.size - self.unwritten

    def _account(
        self, position: int, base_offset: int, last_offset: int, max_ts: int, size: int, interval: int
    ) -> None:
        """Index bookkeeping shared by append and recovery, so a rebuilt index equals the written one."""
        if self.bytes_since_index > interval:
            self.index.append(base_offset - self.base_offset, position)
            if self.max_ts >= 0:
                self.time_index.maybe_append(self.max_ts, self.max_ts_offset - self.base_offset)
            self.bytes_since_index = 0
        self.bytes_since_index += size
        self.size = position + size
        self.next_offset = last_offset + 1
        if max_ts > self.max_ts:
            self.max_ts = max_ts
            self.max_ts_offset = last_offset
        if self.first_batch_ts is None:
            self.first_batch_ts = max_ts

    def seal(self) -> None:
        """On roll: make the time index end with the segment's maximum, so reopening need not scan."""
        if self.max_ts >= 0:
            self.time_index.maybe_append(self.max_ts, self.max_ts_offset - self.base_offset)

    def take_pending(self) -> tuple[bytes, bytes]:
        idx, tim = bytes(self.index.pending), bytes(self.time_index.pending)
        self.index.pending.clear()
        self.time_index.pending.clear()
        return idx, tim

    def has_pending(self) -> bool:
        return bool(self.index.pending) or bool(self.time_index.pending)

    def write_pending(self, index_bytes: bytes, time_bytes: bytes, *, sync: bool) -> None:
        """Append queued index entries to the files (called by flush, off the event loop).

        Only a sealed segment's indexes are ever trusted by recovery, so only they are fsynced (once,
        when sealed); the active segment's are always rebuilt after a crash."""
        for path, data in ((self.index_path, index_bytes), (self.time_index_path, time_bytes)):
            if not data:
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | _O_CLOEXEC)
            except FileNotFoundError:
                continue  # segment deleted by retention meanwhile
            try:
                os.write(fd, data)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    # -- recovery ----------------------------------------------------------------------------------

    def recover(self, interval: int, *, sealed: bool, compacted: bool = False) -> tuple[int, str | None]:
        """Validate every batch and rebuild the in-memory indexes. In a ``compacted`` log, gaps between
        batches and batches with fewer records than offsets (the cleaner's doing) are expected.

        Returns (position after the last good batch, problem or None). Stops at the first torn, corrupt
        or out-of-sequence batch; the caller decides to cut there.
        """
        self._reset()
        fd = self.fd_open()
        file_size = os.fstat(fd).st_size
        buf = b""
        buf_pos = 0
        pos = 0
        problem: str | None = None
        while pos < file_size:
            left = file_size - pos
            if left < HEADER_SIZE:
                problem = f"torn batch header ({left} bytes)"
                break
            rel = pos - buf_pos
            if rel + LOG_OVERHEAD > len(buf):
                buf = os.pread(fd, min(SCAN_CHUNK_BYTES, left), pos)
                buf_pos, rel = pos, 0
            base_offset, size = peek_offset_and_size(buf, rel)
            if size < HEADER_SIZE or size > left:
                problem = f"torn or invalid batch length {size - LOG_OVERHEAD}"
                break
            if rel + size > len(buf):
                buf = os.pread(fd, min(max(SCAN_CHUNK_BYTES, size), left), pos)
                buf_pos, rel = pos, 0
            header = validate_stored_batch(buf, rel, rel + size)
            if header is None and compacted:
                header = _cleaned_batch(buf, rel, size)
            if header is None:
                problem = "corrupt batch (magic, record count or CRC32C mismatch)"
                break
            if base_offset < self.next_offset or (base_offset != self.next_offset and not compacted):
                expected = f"{self.next_offset} or more" if compacted else str(self.next_offset)
                problem = f"batch base offset {base_offset} where {expected} was expected"
                break
            self._account(pos, base_offset, header.last_offset, header.max_timestamp, size, interval)
            pos += size
        if problem is None and sealed:
            self.seal()
        return pos, problem

    def load_indexes(self, next_offset: int, interval: int, *, check: bool) -> bool:
        """Trust the index files of a segment that was fully fsynced; False when they look wrong."""
        idx_data = read_file(self.index_path)
        time_data = read_file(self.time_index_path)
        if idx_data is None or time_data is None:
            return False
        if len(idx_data) % OFFSET_ENTRY_BYTES or len(time_data) % TIME_ENTRY_BYTES:
            return False
        self._reset()
        self.size = os.stat(self.log_path).st_size
        self.next_offset = next_offset
        self.index = OffsetIndex.from_bytes(idx_data)
        self.time_index = TimeIndex.from_bytes(time_data)
        span = next_offset - self.base_offset
        if self.size < HEADER_SIZE or span <= 0:
            return False
        # An empty index is only right for a log no longer than one interval plus one batch; rebuilding
        # in that case costs about as much as the check would.
        if (not self.index and self.size > interval) or not self.time_index:
            return False
        if self.time_index.rel[-1] >= span:
            return False
        if check and not (self.index.is_sane(self.size) and self.time_index.is_sane(span)):
            return False
        if self.index:
            head = os.pread(self.fd_open(), LOG_OVERHEAD, self.index.pos[-1])
            if len(head) < LOG_OVERHEAD:
                return False
            base_offset, size = peek_offset_and_size(head, 0)
            if base_offset != self.base_offset + self.index.rel[-1] or size < HEADER_SIZE:
                return False
        self.max_ts = self.time_index.ts[-1]
        self.max_ts_offset = self.base_offset + self.time_index.rel[-1]
        return True

    def rewrite_index_files_if_changed(self) -> bool:
        """After recover(): make the files equal the rebuilt indexes. True when they differed."""
        idx, tim = self.take_pending()
        if read_file(self.index_path) == idx and read_file(self.time_index_path) == tim:
            return False
        for path, data in ((self.index_path, idx), (self.time_index_path, tim)):
            write_synced(path, data)
        return True

    # -- reading -----------------------------------------------------------------------------------

    def headers_from(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from ``position`` to the end, reading headers only."""
        fd = self.fd_open()
        end = self.written
        buf = b""
        buf_pos = position
        while position + HEADER_SIZE <= end:
            rel = position - buf_pos
            if rel + HEADER_SIZE > len(buf):
                buf = os.pread(fd, min(WALK_CHUNK_BYTES, end - position), position)
                buf_pos, rel = position, 0
                if len(buf) < HEADER_SIZE:
                    raise CorruptLogError(f"{self.log_path}: short read at position {position}")
            header = read_header(buf, rel)
            if header.batch_length + LOG_OVERHEAD < HEADER_SIZE:
                raise CorruptLogError(f"{self.log_path}: impossible batch length at position {position}")
            yield position, header
            position += header.batch_length + LOG_OVERHEAD

    def locate(self, offset: int) -> int | None:
        """File position of the batch containing ``offset`` (the sparse index narrows the walk)."""
        for position, header in self.headers_from(self.index.lookup(offset - self.base_offset)):
            if header.base_offset + header.last_offset_delta >= offset:
                return position
        return None

    def read_into(
        self,
        position: int,
        budget: int,
        max_offset: int | None,
        force_first: bool,
        out: list[memoryview | bytes],
    ) -> tuple[int, bool]:
        """Append whole batches from ``position`` within ``budget`` bytes to ``out``.

        Returns (bytes taken, stopped) where stopped means ``max_offset`` was reached. One pread serves
        all batches that fit; the returned views slice that single buffer.
        """
        fd = self.fd_open()
        available = self.written - position
        want = min(budget, available)
        buf = os.pread(fd, want, position) if want > 0 else b""
        view = memoryview(buf)
        taken = 0
        while taken + LOG_OVERHEAD <= len(buf):
            base_offset, size = peek_offset_and_size(buf, taken)
            if max_offset is not None and base_offset >= max_offset:
                return taken, True
            if taken + size > len(buf):
                break
            out.append(view[taken : taken + size])
            taken += size
        if taken == 0 and force_first and available >= HEADER_SIZE:
            head = os.pread(fd, LOG_OVERHEAD, position)
            base_offset, size = peek_offset_and_size(head, 0)
            if max_offset is not None and base_offset >= max_offset:
                return 0, True
            out.append(os.pread(fd, size, position))
            taken = size
        return taken, False

    def largest_timestamp_ms(self) -> int:
        """What retention compares with: the max batch timestamp, else the file's modification time."""
        if self.max_ts >= 0:
            return self.max_ts
        try:
            return int(os.stat(self.log_path).st_mtime * 1000)
        except FileNotFoundError:
            return -1
