"""The log of one partition: a list of segments, appends, reads, group-commit flush, retention, recovery.

Threading: the event-loop thread calls everything; only ``flush()`` may run concurrently in a worker
thread. ``_lock`` guards the few fields both touch (segment list, pending index bytes, offsets, the write
queue) and is held only for in-memory work, never across a write or an fsync. ``_flush_lock`` serialises
flushes and is also taken by the rare operations that rewrite files flush could be writing (truncate_to,
close, delete). ``_write_lock`` serialises writes of queued batches. Locks are taken in that order.

Write-behind: an append whose caller will wait for it (``defer=True``: acks=1 waits for the write, acks=all
for the write and an fsync) is only queued; the flusher's thread writes the queue (``write_queued()``, or
``flush()``, which writes and then fsyncs), so the page-cache copy (slow on this project's machines while
an fsync of the same file runs) leaves the event loop, and a write never contends with an fsync of its
own file. Until then reads see what is written: a read at or past the first queued batch writes the
queue out first, on the caller's thread; any other append (acks=0, markers) writes the queue before it
returns. A failed write or fsync leaves the log failed (offline): every later append, read, write or
flush raises it, and nothing after the failed batch is written (the restart's recovery sees the log as it
was written).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import signal
import struct
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from crc32c import crc32c

from odradek.log import cleaner
from odradek.log.files import fsync_dir, replace_durably, write_synced
from odradek.log.producer_state import Duplicate, ProducerStateManager
from odradek.log.segment import SCAN_CHUNK_BYTES, Segment, segment_name
from odradek.protocol.record_decode import control_type
from odradek.protocol.records import (
    ATTR_LOG_APPEND_TIME,
    CONTROL_ABORT,
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    build_control_batch,
    read_header,
    set_base_offset,
    set_leader_epoch,
)

logger = logging.getLogger("odradek.log")

RECOVERY_POINT_FILE = "recovery-point"
CLEAN_SHUTDOWN_FILE = "clean-shutdown"
PRODUCER_SNAPSHOT_FILE = "producer-state.json"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
# A cleaned segment on its way in: "<base>.log.cleaned" while written (always discarded by recovery), then
# "<base>.log.<upto>.swap", fsynced, which replaces the segments whose base offsets are in [base, upto).
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
_SWAP_NAME = re.compile(r"^(\d{20})\.log\.(\d{20})\.swap$")
# Test-only crash points of a clean (see docs/compaction.md): the broker SIGKILLs itself at the named step.
_KILL_AT = os.environ.get("ODRADEK_TEST_CLEANER_KILL_AT", "")
_INT32_MAX = 2**31 - 1
_LOG_SUFFIX = ".log"
_INDEX_SUFFIXES = (".index", ".timeindex")
_BASE = attrgetter("base_offset")
# Base offset (0-8), batch length (8-12) and partition leader epoch (12-16): the bytes patched on append.
_PATCHED_HEAD = 16
_LENGTH = struct.Struct(">i")
_TAIL_FIELDS = struct.Struct(">hiqq")  # attributes, lastOffsetDelta, baseTimestamp, maxTimestamp @21
_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")


class _Queued(NamedTuple):
    """An appended batch not yet written (write-behind)."""

    seg: Segment
    parts: tuple[bytearray, memoryview]
    size: int
    position: int
    base_offset: int


# At most this many buffers per writev of queued batches (Linux's IOV_MAX is 1024; two per batch).
_WRITEV_PARTS_MAX = 512


class LogWriteFailed(OSError):
    """A write or fsync of this log failed earlier: the log is offline (no reads, no writes) until it is
    reopened, as Kafka takes a failed log directory offline."""


class OffsetOutOfRange(Exception):
    """The requested offset is below the log start or beyond the log end (Kafka error 1)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(
            f"offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]; "
            "reset the consumer position (auto.offset.reset) or seek inside that range"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1073741824  # log.segment.bytes
    segment_ms: int = 604800000  # log.roll.ms
    retention_ms: int = 604800000  # log.retention.ms; -1 keeps forever
    retention_bytes: int = -1  # log.retention.bytes; -1 = unlimited
    index_interval_bytes: int = 4096  # log.index.interval.bytes
    index_max_bytes: int = 10485760  # log.index.size.max.bytes; a full offset index rolls the segment
    cleanup_policy: str = "delete"  # cleanup.policy: retention deletes segments only where it says delete


@dataclass(frozen=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the caller asked for LogAppendTime


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # offset of the abort marker


_LAST_OFFSET = attrgetter("last_offset")


class PartitionLog:
    """Kafka-layout log of one partition in ``<data_dir>/<topic>-<partition>/``.

    Public attributes are plain fields (read them freely; only this class writes them):
    ``log_start_offset``, ``log_end_offset``, ``flushed_offset``, ``size_bytes``.
    """

    log_start_offset: int
    log_end_offset: int
    flushed_offset: int
    size_bytes: int

    def __init__(self, directory: Path, config: LogConfig) -> None:
        """Use ``open()``; this only sets fields."""
        self.directory = directory
        self.config = config
        self._segments: list[Segment] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._queued: collections.deque[_Queued] = collections.deque()  # under _lock; oldest first
        self._write_error: OSError | None = None
        self._dir_dirty = False
        self._checkpoint_offset = -1
        self._closed = False  # no more appends
        self._fds_closed = False  # nothing left to flush
        self._max_index_entries = max(1, config.index_max_bytes // 8)
        self._max_time_entries = max(1, config.index_max_bytes // 12)
        self.log_start_offset = self.log_end_offset = self.flushed_offset = self.size_bytes = 0
        self.producers = ProducerStateManager()
        self.aborted: list[AbortedTxn] = []  # ordered by last_offset (the marker's offset)
        self.first_dirty_offset = 0  # the log cleaner's checkpoint: everything below was compacted
        self._written_first_dirty = 0
        self._clean_lock = threading.Lock()  # held by a cleaning worker; close and delete wait for it
        # Once cleaned (the checkpoint file is written before the first swap), a log may have gaps between
        # batches; recovery of any other log still treats a gap as damage.
        self._compacted = False

    # -- opening and recovery ----------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, now_ms: int) -> PartitionLog:
        """Open or create the log; validate what a crash could have damaged and cut it off."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        log = cls(directory, config)
        log._recover(now_ms)
        log._load_producer_state(now_ms)
        log._load_cleaner_checkpoint()
        return log

    def _load_producer_state(self, now_ms: int) -> None:
        """Idempotence and open transactions survive restarts: a snapshot from a clean close, else the
        batch headers replayed (markers read to tell commits from aborts)."""
        path = self.directory / PRODUCER_SNAPSHOT_FILE
        self.producers = ProducerStateManager()
        self.aborted = []
        loaded = False
        try:
            snapshot = json.loads(path.read_text())
            if snapshot["offset"] == self.log_end_offset:
                self.producers.load_json(snapshot["state"])
                self.aborted = [AbortedTxn(*a) for a in snapshot["aborted"]]
                loaded = True
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("partition %s: ignoring unreadable producer snapshot: %s", self.directory.name, e)
        if path.exists():
            path.unlink()  # only a clean close writes it; it must never outlive the state it describes
        if not loaded:
            self._replay_headers(now_ms)

    def _replay_headers(self, now_ms: int) -> None:
        for seg in list(self._segments):
            if not seg.size:
                continue
            for position, header in seg.headers_from(0):
                if header.is_control and header.producer_id >= 0:
                    entry = self.producers.entries.get(header.producer_id)
                    first = entry.txn_first_offset if entry is not None else None
                    batch = os.pread(seg.fd_open(), header.size, position)
                    if control_type(batch) == CONTROL_ABORT and first is not None:
                        self.aborted.append(AbortedTxn(header.producer_id, first, header.base_offset))
                self.producers.update(header, now_ms)
            seg.close()  # as after recovery: idle partitions hold no descriptors

    def _recover(self, now_ms: int) -> None:
        names = self._finish_swaps(os.listdir(self.directory))
        self._compacted = CLEANER_CHECKPOINT_FILE in names
        if not names:
            self._segments = [Segment(self.directory, 0, files_created=False)]
            return
        clean = CLEAN_SHUTDOWN_FILE in names
        if clean:
            # Gone before the first append, so a later crash is seen as unclean. Its removal becomes
            # durable with the next flush's directory fsync; until then the recovery point (== LEO at
            # close) still forces validation of everything written after this open.
            os.unlink(self.directory / CLEAN_SHUTDOWN_FILE)
            self._dir_dirty = True
        recovery_point = self._read_checkpoint() if RECOVERY_POINT_FILE in names else None
        bases = self._scan_directory(names)
        if not bases:
            self._segments = [Segment(self.directory, 0, files_created=False)]
            self._finish_open(recovery_point, now_ms)
            return
        segments = [Segment(self.directory, b, files_created=True) for b in bases]
        start = 0
        if recovery_point is not None:
            start = max(0, bisect_right(bases, recovery_point) - 1)
        start = min(start, len(segments) - 1)
        if not clean:
            self._dir_dirty = True  # entries found may predate any directory fsync: the first flush does one
            logger.info(
                "partition %s: unclean shutdown, validating from segment %s (recovery point %s)",
                self.directory.name,
                segment_name(bases[start]),
                recovery_point,
            )
        interval = self.config.index_interval_bytes
        keep = len(segments)
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            if i < start and seg.load_indexes(segments[i + 1].base_offset, interval, check=not clean):
                continue
            if i > 0 and segments[i - 1].next_offset != seg.base_offset:
                keep = i
                logger.warning(
                    "recovered partition %s: segment %s starts at offset %d but the log before it ends "
                    "to %d; removed %d segments from there",
                    self.directory.name,
                    seg.log_path.name,
                    seg.base_offset,
                    segments[i - 1].next_offset,
                    len(segments) - i,
                )
                break
            good, problem = seg.recover(interval, sealed=not last, compacted=self._compacted)
            if problem is not None:
                file_size = os.fstat(seg.fd_open()).st_size
                seg.truncate_file(good)
                keep = i + 1
                logger.warning(
                    "recovered partition %s: truncated segment %s at position %d (%d bytes dropped: %s), "
                    "removed %d later segments",
                    self.directory.name,
                    seg.log_path.name,
                    good,
                    file_size - good,
                    problem,
                    len(segments) - keep,
                )
            if seg.rewrite_index_files_if_changed():
                logger.info(
                    "recovered partition %s: rebuilt indexes of segment %s",
                    self.directory.name,
                    seg.log_path.name,
                )
            if problem is not None:
                break
        for seg in segments[keep:]:
            seg.delete_files()
        if keep < len(segments):
            fsync_dir(self.directory)
        self._segments = segments[:keep]
        self._finish_open(recovery_point, now_ms)

    def _scan_directory(self, names: list[str]) -> list[int]:
        """Base offsets of the segments present; stray index and temporary files are removed."""
        bases: list[int] = []
        for name in names:
            stem = name[: -len(_LOG_SUFFIX)]
            if name.endswith(_LOG_SUFFIX) and len(stem) == 20 and stem.isdigit():
                bases.append(int(stem))
        have = {segment_name(b) for b in bases}
        for name in names:
            stem, _, suffix = name.rpartition(".")
            stray_index = "." + suffix in _INDEX_SUFFIXES and stem not in have
            if stray_index or name.endswith(".tmp"):
                os.unlink(self.directory / name)
                logger.info("partition %s: removed stray file %s", self.directory.name, name)
        bases.sort()
        return bases

    def _finish_open(self, recovery_point: int | None, now_ms: int) -> None:
        segments = self._segments
        active = segments[-1]
        self.log_start_offset = segments[0].base_offset
        self.log_end_offset = active.next_offset
        self.size_bytes = sum(s.size for s in segments)
        first_ts = active.first_batch_ts
        if first_ts is not None:
            active.roll_base_ms = now_ms if first_ts < 0 else min(now_ms, first_ts)
        for seg in segments:
            seg.close()  # reopened on first use: idle partitions hold no descriptors
        if recovery_point is None:
            self.flushed_offset = self.log_start_offset
        else:
            self.flushed_offset = max(self.log_start_offset, min(recovery_point, self.log_end_offset))
            self._checkpoint_offset = recovery_point
            if recovery_point > self.log_end_offset:
                logger.warning(
                    "partition %s: recovery point %d is beyond the recovered log end %d; lowered it",
                    self.directory.name,
                    recovery_point,
                    self.log_end_offset,
                )
                self._write_checkpoint(self.log_end_offset)

    def _read_checkpoint(self) -> int | None:
        path = self.directory / RECOVERY_POINT_FILE
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            logger.warning(
                "partition %s: unreadable %s; validating every segment",
                self.directory.name,
                RECOVERY_POINT_FILE,
            )
            return None
        return value if value >= 0 else None

    def _write_checkpoint(self, offset: int) -> None:
        """Atomically record that everything below ``offset`` is on disk (tmp, fsync, rename, fsync dir)."""
        replace_durably(self.directory / RECOVERY_POINT_FILE, f"{offset}\n".encode())
        self._checkpoint_offset = offset

    # -- appending ---------------------------------------------------------------------------------

    def append(
        self,
        batch: bytearray | memoryview,
        *,
        leader_epoch: int,
        now_ms: int,
        log_append_time: bool = False,
        defer: bool = False,
    ) -> AppendResult:
        """Assign offsets and write one validated batch to the OS (no fsync; see flush()). With ``defer``
        the write is left to the next flush() (write-behind: the caller is about to wait for one).

        The caller's buffer is not modified (and, when deferred, must not change until flushed): the
        base offset and leader epoch (outside the CRC) go into a copy of the first bytes, written
        together with the rest of the batch as it came."""
        view = memoryview(batch)
        size = view.nbytes
        if size < HEADER_SIZE or _LENGTH.unpack_from(view, 8)[0] + LOG_OVERHEAD != size:
            raise ValueError(f"append needs exactly one whole record batch; got {size} bytes")
        attributes, delta, _, max_ts = _TAIL_FIELDS.unpack_from(view, 21)
        if delta < 0:
            raise ValueError(f"record batch has negative lastOffsetDelta {delta}")
        if log_append_time:  # the header and CRC change: the batch is rewritten from a private copy
            view = memoryview(bytearray(view))
            _I16.pack_into(view, 21, attributes | ATTR_LOG_APPEND_TIME)
            _I64.pack_into(view, 35, now_ms)
            _U32.pack_into(view, 17, crc32c(view[CRC_START:]))
            max_ts = now_ms
        with self._lock:
            if self._closed:
                raise ValueError(f"partition log {self.directory} is closed")
            if self._write_error is not None:
                raise self._failed()
            seg = self._segments[-1]
            if self._should_roll(seg, size, delta, now_ms):
                seg = self._roll()
            elif not seg.files_created:
                seg.create_files()
                self._dir_dirty = True
            base = self.log_end_offset
            head = bytearray(view[:_PATCHED_HEAD])
            set_base_offset(head, base)
            set_leader_epoch(head, leader_epoch)
            parts = (head, view[_PATCHED_HEAD:])
            interval = self.config.index_interval_bytes
            queue = defer or bool(self._queued)
            if queue:  # behind queued batches, a write must wait its turn
                position = seg.queue(size, base, base + delta, max_ts, interval)
                self._queued.append(_Queued(seg, parts, size, position, base))
            else:
                seg.append(parts, base, base + delta, max_ts, interval)
            if seg.roll_base_ms is None:
                seg.roll_base_ms = now_ms
            self.size_bytes += size
            self.log_end_offset = base + delta + 1
        if queue and not defer:
            self.write_queued()
        return AppendResult(base, base + delta, now_ms if log_append_time else -1)

    # -- write-behind ------------------------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """A write or fsync failed: the log is offline until the broker restarts."""
        return self._write_error is not None

    @property
    def written_offset(self) -> int:
        """Every batch below this offset is written to its file (the rest is queued)."""
        queued = self._queued
        return queued[0].base_offset if queued else self.log_end_offset

    def _failed(self) -> LogWriteFailed:
        return LogWriteFailed(
            f"partition {self.directory.name} is offline (no writes, no reads) "
            "after a failed write or fsync "
            f"({self._write_error}); "
            "free space or fix the disk, then restart the broker"
        )

    def write_queued(self) -> None:
        """Write every queued batch, oldest first, a writev per run of one segment's batches."""
        with self._write_lock:
            with self._lock:
                if self._write_error is not None:
                    raise self._failed()
                entries = list(self._queued)
            done = 0
            try:
                while done < len(entries):
                    first = entries[done]
                    run = [first]
                    parts_n = len(first.parts)
                    for e in entries[done + 1 :]:
                        if e.seg is not first.seg or parts_n + len(e.parts) > _WRITEV_PARTS_MAX:
                            break
                        run.append(e)
                        parts_n += len(e.parts)
                    first.seg.write_queued(
                        [p for e in run for p in e.parts], sum(e.size for e in run), first.position
                    )
                    done += len(run)
            except OSError as e:
                with self._lock:
                    self._write_error = e
                logger.error(
                    "partition %s: writing %d queued batches failed, the log is offline until a restart: %s",
                    self.directory.name,
                    len(entries) - done,
                    e,
                )
                raise
            finally:
                with self._lock:
                    for _ in range(done):
                        e = self._queued.popleft()
                        e.seg.unwritten -= e.size

    # -- idempotent and transactional appends ------------------------------------------------------

    def append_producer_batch(
        self,
        batch: bytearray | memoryview,
        header: BatchHeader,
        *,
        leader_epoch: int,
        now_ms: int,
        log_append_time: bool = False,
        defer: bool = False,
    ) -> AppendResult | Duplicate:
        """Append a producer's batch after the idempotence checks (ProducerStateError if refused).
        A retry of a batch already in the log is not written again: its original place is returned."""
        duplicate = self.producers.check(header)
        if duplicate is not None:
            return duplicate
        result = self.append(
            batch, leader_epoch=leader_epoch, now_ms=now_ms, log_append_time=log_append_time, defer=defer
        )
        if header.producer_id >= 0:  # plain producers have no state to keep
            self.producers.update(replace(header, base_offset=result.base_offset), now_ms)
        return result

    def append_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        *,
        leader_epoch: int,
        now_ms: int,
    ) -> int:
        """Write a transaction marker; an abort of data written here enters the aborted-transaction index."""
        entry = self.producers.entries.get(producer_id)
        first = entry.txn_first_offset if entry is not None else None
        batch = build_control_batch(producer_id, producer_epoch, commit, coordinator_epoch, now_ms)
        header = read_header(batch)
        result = self.append(batch, leader_epoch=leader_epoch, now_ms=now_ms)
        self.producers.update(replace(header, base_offset=result.base_offset), now_ms)
        if not commit and first is not None:
            self.aborted.append(AbortedTxn(producer_id, first, result.base_offset))
        return result.base_offset

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the earliest open transaction, or the log end when none is open."""
        return min(
            (e.txn_first_offset for e in self.producers.entries.values() if e.txn_first_offset is not None),
            default=self.log_end_offset,
        )

    def aborted_between(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted transactions a read_committed fetch of [start, end) must know about."""
        i = bisect_right(self.aborted, start - 1, key=_LAST_OFFSET)
        out = []
        for txn in self.aborted[i:]:
            if txn.first_offset < end:
                out.append(txn)
        return out

    def _should_roll(self, seg: Segment, size: int, delta: int, now_ms: int) -> bool:
        if seg.size == 0:
            return False
        return (
            seg.size + size > self.config.segment_bytes
            or seg.size + size > _INT32_MAX
            or self._aged(seg, now_ms)
            or len(seg.index) >= self._max_index_entries
            or len(seg.time_index) >= self._max_time_entries
            or self.log_end_offset + delta - seg.base_offset > _INT32_MAX
        )

    def _aged(self, seg: Segment, now_ms: int) -> bool:
        return seg.roll_base_ms is not None and now_ms - seg.roll_base_ms > self.config.segment_ms

    def _roll(self) -> Segment:
        """Start a new segment at the LEO; caller holds _lock."""
        old = self._segments[-1]
        old.seal()
        seg = Segment(self.directory, self.log_end_offset, files_created=False)
        seg.create_files()
        self._segments.append(seg)
        self._dir_dirty = True
        logger.debug("partition %s: rolled new segment at offset %d", self.directory.name, seg.base_offset)
        return seg

    def maybe_roll(self, now_ms: int) -> None:
        """Roll an aged, non-empty active segment (log.roll.ms), for a periodic timer."""
        with self._lock:
            seg = self._segments[-1]
            if not self._closed and seg.size > 0 and self._aged(seg, now_ms):
                self._roll()

    # -- durability --------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is queued, then fsync everything written; safe in a worker thread beside append()."""
        with self._flush_lock:
            if self._fds_closed:
                return self.flushed_offset
            self.write_queued()
            with self._lock:
                if self._fds_closed:
                    return self.flushed_offset
                target = self.written_offset
                flushed = self.flushed_offset
                work: list[tuple[Segment, int | None, bytes, bytes]] = []
                for seg in self._segments:
                    dirty = seg.files_created and seg.next_offset > flushed
                    if dirty or seg.has_pending():
                        fd = None
                        if dirty:  # our own descriptor: a roll or retention may close the segment's
                            fd = os.dup(seg.fd) if seg.fd is not None else os.open(seg.log_path, os.O_RDONLY)
                        work.append((seg, fd, *seg.take_pending()))
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                active_base = self._segments[-1].base_offset
            try:
                for seg, fd, index_bytes, time_bytes in work:
                    if fd is not None:
                        os.fsync(fd)
                    seg.write_pending(index_bytes, time_bytes, sync=seg.base_offset != active_base)
                if dir_dirty:
                    fsync_dir(self.directory)
            except BaseException as e:
                self._dir_dirty = self._dir_dirty or dir_dirty
                if isinstance(e, OSError):
                    # After a failed fsync the page cache may have dropped the dirty pages it could not
                    # write, so nothing written may be acknowledged again (Kafka: the log dir goes offline).
                    with self._lock:
                        self._write_error = e
                    logger.error(
                        "partition %s: fsync failed, the log is offline until a restart: %s",
                        self.directory.name,
                        e,
                    )
                raise
            finally:
                for _, fd, _, _ in work:
                    if fd is not None:
                        os.close(fd)
            with self._lock:
                if target > self.flushed_offset:
                    self.flushed_offset = target
            # Rewrite the recovery point only when the flushed data left the checkpointed segment: that
            # bounds unclean recovery to about one segment without an extra fsync on every flush.
            if active_base > self._checkpoint_offset and target > self._checkpoint_offset:
                self._write_checkpoint(target)
            return self.flushed_offset

    def close(self, *, clean: bool) -> None:
        """Flush, write the recovery point, and when clean, the marker that lets the next open skip work."""
        with self._lock:
            self._closed = True  # a cleaning worker sees this and gives up within one read chunk
        with self._clean_lock, self._flush_lock:
            if self._fds_closed:
                return
            try:
                self.flush()
            except OSError:  # a failed log (said where it failed): closed as a crash leaves it
                with self._lock:
                    self._close_fds()
                return
            if self._checkpoint_offset != self.flushed_offset:
                self._write_checkpoint(self.flushed_offset)
            if clean:
                self._write_producer_snapshot()
                marker = self.directory / CLEAN_SHUTDOWN_FILE
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o644))
                fsync_dir(self.directory)
            with self._lock:
                self._close_fds()

    def _write_producer_snapshot(self) -> None:
        if not self.producers.entries and not self.aborted:
            return
        data = json.dumps(
            {
                "offset": self.log_end_offset,
                "state": self.producers.to_json(),
                "aborted": [list(a) for a in self.aborted],
            }
        ).encode()
        # The directory is fsynced by close(), with the clean-shutdown marker.
        replace_durably(self.directory / PRODUCER_SNAPSHOT_FILE, data, sync_dir=False)

    def _close_fds(self) -> None:
        """Drop every descriptor without writing anything: what a killed process leaves behind."""
        self._closed = self._fds_closed = True
        for seg in self._segments:
            seg.close()

    def delete(self) -> None:
        """Close and remove the partition directory (topic deletion)."""
        with self._lock:
            self._closed = True
        with self._clean_lock, self._flush_lock, self._write_lock, self._lock:
            self._queued.clear()
            self._close_fds()
            shutil.rmtree(self.directory)

    # -- reading -----------------------------------------------------------------------------------

    def _segment_for(self, offset: int) -> int:
        return max(0, bisect_right(self._segments, offset, key=_BASE) - 1)

    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_batch: bool = True
    ) -> list[memoryview | bytes]:
        """Whole stored batches from the one containing ``offset``, one pread per segment touched.

        A failed log refuses reads as well: what an fsync failed on may be gone from the page cache, and
        Kafka serves nothing from an offline log directory either.
        """
        if self._write_error is not None:
            raise self._failed()
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRange(offset, self.log_start_offset, self.log_end_offset)
        out: list[memoryview | bytes] = []
        if offset == self.log_end_offset or (max_offset is not None and offset >= max_offset):
            return out
        if offset >= self.written_offset:  # a reader at the tail: the queued batches go to the file now
            self.write_queued()
        i = self._segment_for(offset)
        position = self._segments[i].locate(offset)
        while position is None and i + 1 < len(self._segments):
            i += 1  # ``offset`` fell in a gap compaction left at a segment's end: the next batch is later
            position = 0
        budget = max_bytes
        while position is not None and i < len(self._segments):
            seg = self._segments[i]
            taken, stopped = seg.read_into(position, budget, max_offset, min_one_batch and not out, out)
            budget -= taken
            if stopped or budget < HEADER_SIZE or position + taken < seg.size:
                break
            i += 1
            position = 0
        return out

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first batch whose max timestamp >= ``timestamp_ms``; None if none.

        Batch granularity: the offset is the batch's base offset. The timestamp is the batch's base
        timestamp when that already qualifies (then it is exactly the first record's, as Kafka answers),
        else the batch's max timestamp.
        """
        if self._queued:
            self.write_queued()
        for seg in self._segments:
            if seg.max_ts < timestamp_ms:
                continue
            rel = seg.time_index.last_below(timestamp_ms)
            start = 0 if rel is None else seg.index.lookup(rel + 1)
            for _, header in seg.headers_from(start):
                if header.max_timestamp >= timestamp_ms:
                    base_ts = header.base_timestamp
                    if not header.log_append_time and base_ts >= timestamp_ms:
                        return header.base_offset, base_ts
                    return header.base_offset, header.max_timestamp
        return None

    def max_timestamp(self) -> tuple[int, int]:
        """(offset, timestamp) of the batch with the largest max timestamp, earliest on ties; (-1, -1) if
        empty. The offset is that batch's last offset; ListOffsets decodes that one batch to name the record
        holding the timestamp, as Kafka answers."""
        best_ts, best_offset = -1, -1
        for seg in self._segments:
            if seg.max_ts > best_ts:
                best_ts, best_offset = seg.max_ts, seg.max_ts_offset
        return best_offset, best_ts

    # -- retention and truncation ------------------------------------------------------------------

    def enforce_retention(self, now_ms: int) -> int:
        """Delete the oldest whole segments past retention.ms or retention.bytes; never the active one."""
        if "delete" not in self.config.cleanup_policy:
            return 0  # compact alone: the cleaner keeps the log small, retention never deletes
        retention_ms, retention_bytes = self.config.retention_ms, self.config.retention_bytes
        removed: list[Segment] = []
        if self._queued:  # no queued write may outlive its segment's file
            try:
                self.write_queued()
            except OSError:
                return 0  # a failed log is logged once, where its write failed
        with self._lock:
            while len(self._segments) > 1:
                seg = self._segments[0]
                by_time = retention_ms >= 0 and now_ms - seg.largest_timestamp_ms() > retention_ms
                by_size = retention_bytes >= 0 and self.size_bytes - seg.size >= retention_bytes
                if not (by_time or by_size):
                    break
                self._segments.pop(0)
                self.size_bytes -= seg.size
                seg.delete_files()
                removed.append(seg)
            if removed:
                self.log_start_offset = max(self.log_start_offset, self._segments[0].base_offset)
                self._dir_dirty = True
        if removed:
            start = self.log_start_offset
            self.aborted = [a for a in self.aborted if a.last_offset >= start]
            logger.info(
                "partition %s: retention deleted %d segments; log start offset is now %d",
                self.directory.name,
                len(removed),
                self.log_start_offset,
            )
        return len(removed)

    def truncate_to(self, offset: int) -> None:
        """Drop every batch whose last offset is >= ``offset``. A batch straddling ``offset`` goes whole,
        so the new LEO is the base offset of the first dropped batch (<= ``offset``). Waits for an
        in-flight flush."""
        with self._flush_lock:
            if self._queued:
                self.write_queued()
            if not self._truncate_to(offset):
                return
        logger.info("partition %s: truncated to offset %d", self.directory.name, self.log_end_offset)

    def _truncate_to(self, offset: int) -> bool:
        with self._lock:
            if offset >= self.log_end_offset:
                return False
            if offset <= self._segments[0].base_offset:
                for seg in self._segments:
                    seg.delete_files()
                fresh = Segment(self.directory, offset, files_created=False)
                fresh.create_files()
                self._segments = [fresh]
            else:
                i = self._segment_for(offset)
                for seg in self._segments[i + 1 :]:
                    seg.delete_files()
                del self._segments[i + 1 :]
                seg = self._segments[i]
                position = seg.locate(offset)
                assert position is not None, f"offset {offset} inside the log has no batch"
                seg.truncate_file(position)
                seg.recover(self.config.index_interval_bytes, sealed=False, compacted=self._compacted)
                seg.rewrite_index_files_if_changed()
                if seg.size == 0:
                    seg.roll_base_ms = None
            fsync_dir(self.directory)
            self.log_start_offset = self._segments[0].base_offset
            self.log_end_offset = self._segments[-1].next_offset
            self.size_bytes = sum(s.size for s in self._segments)
            self.flushed_offset = min(self.flushed_offset, self.log_end_offset)
            if self._checkpoint_offset > self.log_end_offset:
                self._write_checkpoint(self.log_end_offset)
        return True

    # -- administration (DeleteRecords, altered topic configs) ---------------------------------------

    def advance_log_start(self, offset: int) -> int:
        """Move the log start offset up to ``offset`` (DeleteRecords; never backwards, never past the LEO)
        and delete the segments wholly below it; the active segment stays. Returns the new log start.
        The caller makes the new start durable (it is re-applied after the next open)."""
        removed: list[Segment] = []
        if self._queued:
            self.write_queued()
        with self._lock:
            offset = min(offset, self.log_end_offset)
            if offset <= self.log_start_offset:
                return self.log_start_offset
            while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
                seg = self._segments.pop(0)
                self.size_bytes -= seg.size
                seg.delete_files()
                removed.append(seg)
            if removed:
                self._dir_dirty = True
            self.log_start_offset = offset
        self.aborted = [a for a in self.aborted if a.last_offset >= offset]
        logger.info(
            "partition %s: log start offset moved to %d (%d segments deleted)",
            self.directory.name,
            offset,
            len(removed),
        )
        return offset

    def reconfigure(self, config: LogConfig) -> None:
        """Use altered topic configs from the next append and retention run on."""
        with self._lock:
            self.config = config
            self._max_index_entries = max(1, config.index_max_bytes // 8)
            self._max_time_entries = max(1, config.index_max_bytes // 12)

    # -- compaction ------------------------------------------------------------------------------
    #
    # A pass has three steps. plan_clean (event loop) takes a snapshot: the sealed segments, the live
    # producers' last batches, the aborted transactions, the last stable offset. run_clean (a worker
    # thread) reads those segments through its own descriptors, writes each group's cleaned segment to
    # "<base>.log.cleaned", fsyncs it with its indexes, and renames it "<base>.log.<upto>.swap": from then
    # on recovery completes the swap. commit_clean (event loop) checks that the group's segments are
    # still the ones cleaned and swaps them: old files unlinked, the directory fsynced, new indexes and
    # then the new log renamed into place. Appends never touch sealed segments and fetches run on the
    # loop, so neither can see a half-swapped list.

    def _load_cleaner_checkpoint(self) -> None:
        value = self.log_start_offset
        if self._compacted:  # the file was listed by recovery: no extra system call for other logs
            try:
                value = int((self.directory / CLEANER_CHECKPOINT_FILE).read_text().strip())
            except (OSError, ValueError):
                pass
        self.first_dirty_offset = self._written_first_dirty = max(value, self.log_start_offset)

    def write_cleaner_checkpoint(self) -> None:
        """Persist the first dirty offset (call off the event loop); a lost update only costs a re-clean."""
        offset = self.first_dirty_offset
        if offset != self._written_first_dirty and not self._fds_closed:
            replace_durably(self.directory / CLEANER_CHECKPOINT_FILE, f"{offset}\n".encode())
            self._written_first_dirty = offset

    def _finish_swaps(self, names: list[str]) -> list[str]:
        """Recovery of an interrupted clean: ``.cleaned`` files go; a ``.swap`` replaces the segments it
        was made from, unless retention removed its first segment meanwhile (then it goes too)."""
        changed = False
        for name in names:
            if name.endswith(CLEANED_SUFFIX):
                os.unlink(self.directory / name)
                changed = True
        for name in sorted(names):
            m = _SWAP_NAME.match(name)
            if m is None:
                continue
            base, upto = int(m.group(1)), int(m.group(2))
            first_log = self.directory / f"{segment_name(base)}{_LOG_SUFFIX}"
            if first_log.exists():
                for other in names:
                    stem, _, suffix = other.partition(".")
                    if len(stem) == 20 and stem.isdigit() and "." + suffix in (_LOG_SUFFIX, *_INDEX_SUFFIXES):
                        if base <= int(stem) < upto and (int(stem) != base or suffix != "log"):
                            (self.directory / other).unlink(missing_ok=True)
                fsync_dir(self.directory)
                os.replace(self.directory / name, first_log)
                logger.info(
                    "partition %s: completed the swap of cleaned segment %s after a crash",
                    self.directory.name,
                    segment_name(base),
                )
            else:
                os.unlink(self.directory / name)
            changed = True
        if changed:
            fsync_dir(self.directory)
            return os.listdir(self.directory)
        return names

    def plan_clean(self, config: cleaner.CleanerConfig, now_ms: int) -> CleanJob | None:
        """On the event loop: a pass worth running now (Kafka's dirty-ratio and lag rules), or None."""
        if self._queued:  # the cleaner reads sealed segments' files whole
            try:
                self.write_queued()
            except OSError:
                return None
        with self._lock:
            if self._closed:
                return None
            segments = list(self._segments)
        sealed = segments[:-1]
        views = [
            cleaner.SegmentView(
                s.base_offset,
                s.size,
                s.first_batch_ts if s.first_batch_ts is not None else -1,
                s.max_ts,
                len(s.index),
                len(s.time_index),
            )
            for s in sealed
        ]
        active_base = segments[-1].base_offset
        the_plan = cleaner.plan(
            views, active_base, self.last_stable_offset, self.first_dirty_offset, config, now_ms
        )
        if the_plan is None:
            return None
        tails = {
            pid: cleaner.ProducerTail(e.batches[-1].last_offset if e.batches else None, e.epoch)
            for pid, e in self.producers.entries.items()
        }
        aborted = [cleaner.AbortedTxn(*a) for a in self.aborted]
        return CleanJob(the_plan, config, now_ms, segments, views, tails, aborted)

    def run_clean(self, job: CleanJob, abort: threading.Event | None = None) -> CleanJob:
        """In a worker thread: build the key map and write every group's cleaned segment as a swap file.
        Raises cleaner.CleanerError or OSError when the pass cannot go on (nothing visible has changed);
        CleaningAborted when ``abort`` is set or the log closes meanwhile."""
        with self._clean_lock:
            if self._closed:
                raise CleaningAborted()
            return self._run_clean(job, lambda: self._closed or (abort is not None and abort.is_set()))

    def _run_clean(self, job: CleanJob, stop: Callable[[], bool]) -> CleanJob:
        segments, views, the_plan = job.segments, job.views, job.plan
        sealed = segments[:-1]
        capacity = cleaner.map_capacity(job.config.dedupe_buffer_bytes)
        offset_map = cleaner.OffsetMap(capacity)
        dirty = [
            s
            for i, s in enumerate(sealed)
            if s.base_offset < the_plan.end and segments[i + 1].base_offset > the_plan.first_dirty
        ]
        cleaner.build_offset_map(
            self._batches_of(dirty, stop), the_plan.first_dirty, the_plan.end, offset_map, job.aborted
        )
        map_end = offset_map.latest_offset + 1
        job.map_end = map_end
        job.map_keys = len(offset_map)
        chosen = [v for v in views if v.base_offset < map_end]
        groups = cleaner.group_segments(
            chosen, the_plan.end, job.config.segment_bytes, job.config.index_max_bytes
        )
        pass_ = cleaner.Cleaner(
            offset_map, the_plan.end, job.now_ms, job.config.delete_retention_ms, job.tails, job.aborted
        )
        by_base = {s.base_offset: i for i, s in enumerate(segments)}
        try:
            for group in groups:
                first, last = by_base[group[0].base_offset], by_base[group[-1].base_offset]
                olds = segments[first : last + 1]
                upto = segments[last + 1].base_offset
                pass_.group_end = upto
                job.prepared.append(self._write_cleaned(pass_, olds, upto, stop))
        except BaseException:
            for prepared in job.prepared:
                prepared.discard()
            job.prepared.clear()
            raise
        job.stats = pass_.stats
        return job

    def _batches_of(
        self, segments: list[Segment], stop: Callable[[], bool]
    ) -> Iterator[tuple[memoryview, BatchHeader]]:
        for seg in segments:
            yield from _read_segment(seg.log_path, seg.size, stop)

    def _write_cleaned(
        self, pass_: cleaner.Cleaner, olds: list[Segment], upto: int, stop: Callable[[], bool]
    ) -> PreparedSwap:
        base = olds[0].base_offset
        new = Segment(self.directory, base, files_created=True)
        cleaned_path = new.log_path.with_name(new.log_path.name + CLEANED_SUFFIX)
        interval = self.config.index_interval_bytes
        fd = os.open(cleaned_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        prepared = PreparedSwap(new, olds, upto, [s.size for s in olds], cleaned_path)
        try:
            out: list[bytes | memoryview] = []
            pending = 0
            position = 0
            for seg in olds:
                for batch, h in _read_segment(seg.log_path, seg.size, stop):
                    kept = pass_.clean(batch, h)
                    if kept is None:
                        continue
                    size = len(kept)
                    kh = h if kept is batch else read_header(kept)
                    new._account(position, kh.base_offset, kh.last_offset, kh.max_timestamp, size, interval)
                    position += size
                    out.append(bytes(kept))
                    pending += size
                    if pending >= SCAN_CHUNK_BYTES:
                        _write_all(fd, b"".join(out))
                        out.clear()
                        pending = 0
            _write_all(fd, b"".join(out))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            prepared.discard()
            raise
        os.close(fd)
        new.seal()
        idx, tim = new.take_pending()
        prepared.index_paths = [
            new.index_path.with_name(new.index_path.name + CLEANED_SUFFIX),
            new.time_index_path.with_name(new.time_index_path.name + CLEANED_SUFFIX),
        ]
        try:
            for path, data in zip(prepared.index_paths, (idx, tim), strict=True):
                write_synced(path, data)
            mtime = olds[-1].log_path.stat().st_mtime
            os.utime(cleaned_path, (mtime, mtime))  # retention of compact,delete judges cleaned segments so
            if not self._compacted:  # from now on this log may have gaps: say so durably, first
                replace_durably(
                    self.directory / CLEANER_CHECKPOINT_FILE, f"{self.first_dirty_offset}\n".encode()
                )
                self._compacted = True
            _test_kill("cleaned")
            swap = self.directory / f"{segment_name(base)}{_LOG_SUFFIX}.{segment_name(upto)}{SWAP_SUFFIX}"
            os.replace(cleaned_path, swap)
            prepared.swap_path = swap
            fsync_dir(self.directory)
        except BaseException:
            prepared.discard()
            raise
        _test_kill("swap")
        return prepared

    def commit_clean(self, job: CleanJob) -> int:
        """On the event loop: swap in every prepared group whose segments are unchanged. Returns how many
        groups were swapped; -1 when a flush holds the log (call again shortly). One directory fsync for
        the whole pass: every replaced segment's files are gone for good before any new one is renamed in
        (a new segment over old ones that came back would overlap them)."""
        if not self._flush_lock.acquire(blocking=False):
            return -1
        try:
            with self._lock:
                valid = [p for p in job.prepared if self._still_there(p)]
                for p in job.prepared:
                    if p not in valid:
                        p.discard()
                job.prepared.clear()
                if not valid:
                    return 0
                for p in valid:
                    for old in p.olds[1:]:
                        old.delete_files()
                    # The first segment's old indexes go too: after a crash its new log is found with its
                    # new indexes or with none (rebuilt), never with indexes of the log it replaced.
                    p.olds[0].index_path.unlink(missing_ok=True)
                    p.olds[0].time_index_path.unlink(missing_ok=True)
                fsync_dir(self.directory)
                _test_kill("unlinked")
                for p in valid:
                    self._rename_in(p)
                self._dir_dirty = True  # the renames become durable with the next flush; recovery redoes them
                if job.map_end > self.first_dirty_offset:
                    self.first_dirty_offset = job.map_end
        finally:
            self._flush_lock.release()
        _test_kill("replaced")
        logger.info(
            "partition %s: cleaned %d segments into %d (%d -> %d bytes)",
            self.directory.name,
            sum(len(p.olds) for p in valid),
            len(valid),
            sum(sum(p.sizes) for p in valid),
            sum(p.new.size for p in valid),
        )
        return len(valid)

    def _still_there(self, p: PreparedSwap) -> bool:
        """The segments a group was cleaned from are still in the log, unchanged (caller holds _lock)."""
        if self._fds_closed:
            return False
        segs = self._segments
        try:
            i = segs.index(p.olds[0])
        except ValueError:
            return False  # retention or DeleteRecords removed it meanwhile
        j = i + len(p.olds)
        return (
            segs[i:j] == p.olds
            and [s.size for s in p.olds] == p.sizes
            and j < len(segs)
            and segs[j].base_offset == p.upto
        )

    def _rename_in(self, p: PreparedSwap) -> None:
        segs = self._segments
        i = segs.index(p.olds[0])
        base = p.olds[0]
        for src, dst in zip(p.index_paths, (base.index_path, base.time_index_path), strict=True):
            os.replace(src, dst)
        _test_kill("indexed")
        base.close()
        assert p.swap_path is not None
        os.replace(p.swap_path, base.log_path)
        p.swap_path = None
        p.index_paths = []
        self._segments = segs[:i] + [p.new] + segs[i + len(p.olds) :]
        self.size_bytes += p.new.size - sum(p.sizes)


@dataclass(eq=False)
class PreparedSwap:
    new: Segment
    olds: list[Segment]
    upto: int
    sizes: list[int]
    cleaned_path: Path
    swap_path: Path | None = None
    index_paths: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        for path in (self.cleaned_path, self.swap_path, *self.index_paths):
            if path is not None:
                path.unlink(missing_ok=True)
        self.swap_path = None
        self.index_paths = []


@dataclass(eq=False)
class CleanJob:
    plan: cleaner.Plan
    config: cleaner.CleanerConfig
    now_ms: int
    segments: list[Segment]
    views: list[cleaner.SegmentView]
    tails: dict[int, cleaner.ProducerTail]
    aborted: list[cleaner.AbortedTxn]
    map_end: int = -1
    map_keys: int = 0
    prepared: list[PreparedSwap] = field(default_factory=list)
    stats: cleaner.CleanStats | None = None


class CleaningAborted(Exception):
    """The broker is stopping: a pass in progress gives up, leaving only files recovery discards."""


def _read_segment(
    path: Path, size: int, stop: Callable[[], bool]
) -> Iterator[tuple[memoryview, BatchHeader]]:
    """Each batch of a sealed segment, read in chunks through a descriptor of our own (a retention or a
    close on the event loop cannot pull it away)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pos = 0
        while pos < size:
            if stop():
                raise CleaningAborted()
            chunk = os.pread(fd, min(SCAN_CHUNK_BYTES, size - pos), pos)
            if len(chunk) < HEADER_SIZE:
                raise cleaner.CleanerError(f"{path}: short read at position {pos}")
            _, first = struct.unpack_from(">qi", chunk, 0)
            if first + LOG_OVERHEAD > len(chunk):
                chunk = os.pread(fd, first + LOG_OVERHEAD, pos)
            used = 0
            for batch, h in cleaner.iter_batches_prefix(chunk):
                yield batch, h
                used += h.size
            if used == 0:
                raise cleaner.CleanerError(f"{path}: torn batch at position {pos}")
            pos += used
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _test_kill(step: str) -> None:
    if _KILL_AT == step:
        logger.warning("ODRADEK_TEST_CLEANER_KILL_AT=%s: killing the broker here (test only)", step)
        os.kill(os.getpid(), signal.SIGKILL)
