"""The log of one partition: a list of segments, appends, reads, group-commit flush, retention, recovery.

Threading: the event-loop thread calls everything; only ``flush()`` may run concurrently in a worker
thread. ``_lock`` guards the few fields both touch (segment list, pending index bytes, offsets) and is held
only for in-memory work, never across an fsync. ``_flush_lock`` serialises flushes and is also taken by
the rare operations that rewrite files flush could be writing (truncate_to, close, delete).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import threading
from bisect import bisect_right
from dataclasses import dataclass, replace
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from crc32c import crc32c

from odradek.log.files import fsync_dir, replace_durably
from odradek.log.producer_state import Duplicate, ProducerStateManager
from odradek.log.segment import Segment, segment_name
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
        self._dir_dirty = False
        self._checkpoint_offset = -1
        self._closed = False  # no more appends
        self._fds_closed = False  # nothing left to flush
        self._max_index_entries = max(1, config.index_max_bytes // 8)
        self._max_time_entries = max(1, config.index_max_bytes // 12)
        self.log_start_offset = self.log_end_offset = self.flushed_offset = self.size_bytes = 0
        self.producers = ProducerStateManager()
        self.aborted: list[AbortedTxn] = []  # ordered by last_offset (the marker's offset)

    # -- opening and recovery ----------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, now_ms: int) -> PartitionLog:
        """Open or create the log; validate what a crash could have damaged and cut it off."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        log = cls(directory, config)
        log._recover(now_ms)
        log._load_producer_state(now_ms)
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
        names = os.listdir(self.directory)
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
                    "at %d; removed %d segments from there",
                    self.directory.name,
                    seg.log_path.name,
                    seg.base_offset,
                    segments[i - 1].next_offset,
                    len(segments) - i,
                )
                break
            good, problem = seg.recover(interval, sealed=not last)
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
        self, batch: bytearray | memoryview, *, leader_epoch: int, now_ms: int, log_append_time: bool = False
    ) -> AppendResult:
        """Assign offsets and write one validated batch to the OS (no fsync; see flush()).

        The caller's buffer is not modified: the base offset and leader epoch (outside the CRC) go into a
        copy of the first bytes, written together with the rest of the batch as it came."""
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
            seg.append(parts, base, base + delta, max_ts, self.config.index_interval_bytes)
            if seg.roll_base_ms is None:
                seg.roll_base_ms = now_ms
            self.size_bytes += size
            self.log_end_offset = base + delta + 1
        return AppendResult(base, base + delta, now_ms if log_append_time else -1)

    # -- idempotent and transactional appends ------------------------------------------------------

    def append_producer_batch(
        self,
        batch: bytearray | memoryview,
        header: BatchHeader,
        *,
        leader_epoch: int,
        now_ms: int,
        log_append_time: bool = False,
    ) -> AppendResult | Duplicate:
        """Append a producer's batch after the idempotence checks (ProducerStateError if refused).
        A retry of a batch already in the log is not written again: its original place is returned."""
        duplicate = self.producers.check(header)
        if duplicate is not None:
            return duplicate
        result = self.append(batch, leader_epoch=leader_epoch, now_ms=now_ms, log_append_time=log_append_time)
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
        """fsync everything up to the LEO seen on entry; safe in a worker thread beside append()."""
        with self._flush_lock:
            with self._lock:
                if self._fds_closed:
                    return self.flushed_offset
                target = self.log_end_offset
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
            except BaseException:
                self._dir_dirty = self._dir_dirty or dir_dirty
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
        with self._flush_lock:
            if self._fds_closed:
                return
            with self._lock:
                self._closed = True
            self.flush()
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
        with self._flush_lock, self._lock:
            self._close_fds()
            shutil.rmtree(self.directory)

    # -- reading -----------------------------------------------------------------------------------

    def _segment_for(self, offset: int) -> int:
        return max(0, bisect_right(self._segments, offset, key=_BASE) - 1)

    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_batch: bool = True
    ) -> list[memoryview | bytes]:
        """Whole stored batches from the one containing ``offset``, one pread per segment touched."""
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRange(offset, self.log_start_offset, self.log_end_offset)
        out: list[memoryview | bytes] = []
        if offset == self.log_end_offset or (max_offset is not None and offset >= max_offset):
            return out
        i = self._segment_for(offset)
        position = self._segments[i].locate(offset)
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
        empty. The offset is that batch's last offset (Kafka names the record; we do not decode records)."""
        best_ts, best_offset = -1, -1
        for seg in self._segments:
            if seg.max_ts > best_ts:
                best_ts, best_offset = seg.max_ts, seg.max_ts_offset
        return best_offset, best_ts

    # -- retention and truncation ------------------------------------------------------------------

    def enforce_retention(self, now_ms: int) -> int:
        """Delete the oldest whole segments past retention.ms or retention.bytes; never the active one."""
        retention_ms, retention_bytes = self.config.retention_ms, self.config.retention_bytes
        removed: list[Segment] = []
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
                self.log_start_offset = self._segments[0].base_offset
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
        with self._flush_lock, self._lock:
            if offset >= self.log_end_offset:
                return
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
                seg.recover(self.config.index_interval_bytes, sealed=False)
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
        logger.info("partition %s: truncated to offset %d", self.directory.name, self.log_end_offset)

    # -- administration (DeleteRecords, altered topic configs) ---------------------------------------

    def advance_log_start(self, offset: int) -> int:
        """Move the log start offset up to ``offset`` (DeleteRecords; never backwards, never past the LEO)
        and delete the segments wholly below it; the active segment stays. Returns the new log start.
        The caller makes the new start durable (it is re-applied after the next open)."""
        removed: list[Segment] = []
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
