"""Log compaction as pure functions: which part of a log may be cleaned, and batch bytes in, cleaned
batch bytes out.

Kafka's log cleaner, rule for rule (``cleanup.policy=compact``):

- The log splits into a clean head (already compacted), a dirty part, and an uncleanable tail: the active
  segment, everything from the first unstable offset (an open transaction) on, and every segment younger
  than ``min.compaction.lag.ms``. A pass runs when dirty bytes / (clean + dirty bytes) reaches
  ``min.cleanable.dirty.ratio``, or when the dirty part is older than ``max.compaction.lag.ms``.
- A pass maps each key of the dirty part to its last offset (bounded: ``log.cleaner.dedupe.buffer.size``
  at Kafka's 24 bytes an entry and load factor 0.9; a full map ends the pass early and the next pass goes
  on from there), then rewrites every segment from the log start to where the map ends, keeping a record
  only if no later record has its key.
- Tombstones (null values) and transaction markers whose transaction left no data get a delete horizon
  (KIP-534: ``now + delete.retention.ms`` written into the batch's base timestamp, attribute bit 6) the
  first time a pass keeps them; a later pass past the horizon removes them.
- Records of aborted transactions are removed; an abort marker goes once no batch of its transaction is
  left (and after its horizon); a commit marker likewise once no data of its transaction was seen.
- The last batch of every live producer is kept, if need be with no records, so the producer's sequence
  and epoch survive; so is the last batch before the uncleanable tail (Kafka's rules), and the last batch
  of every cleaned segment, so that segments still meet end to end and recovery can tell a lost segment
  from a compacted one.

Offsets never move: a kept batch keeps its base offset and its lastOffsetDelta (so a producer's last
sequence, base sequence + lastOffsetDelta, is still right after records are removed), and each record keeps
its offset delta. A rewritten batch is compressed again with its original codec, as Kafka does, so a
compressed topic does not grow when it is compacted; its CRC32C, record count and max timestamp are
recomputed.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from crc32c import crc32c

from odradek.protocol.recompress import compress  # Kafka's framings: Xerial snappy, independent lz4 blocks
from odradek.protocol.record_decode import RecordDecodeError, decompress, read_varint
from odradek.protocol.records import (
    ATTR_CODEC_MASK,
    CONTROL_ABORT,
    CONTROL_COMMIT,
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    read_header,
    zigzag_varint,
)

ATTR_DELETE_HORIZON = 0x40  # KIP-534: the base timestamp holds the delete horizon
MAP_ENTRY_BYTES = 24  # Kafka's accounting: a 16-byte key digest and an 8-byte offset
MAP_LOAD_FACTOR = 0.9  # log.cleaner.io.buffer.load.factor
_HEADER = struct.Struct(">qiibIhiqqqhii")
_I16 = struct.Struct(">h")


class CleanerError(Exception):
    """A batch the cleaner cannot read (undecodable records); the pass is given up, the log untouched."""


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Settings read afresh for every pass (topic configs may change while the broker runs)."""

    delete_retention_ms: int = 86400000  # delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    max_compaction_lag_ms: int = 9223372036854775807  # max.compaction.lag.ms
    min_cleanable_dirty_ratio: float = 0.5  # min.cleanable.dirty.ratio
    segment_bytes: int = 1073741824  # segment.bytes: a group of cleaned segments stays below it
    index_max_bytes: int = 10485760  # segment.index.bytes
    dedupe_buffer_bytes: int = 134217728  # log.cleaner.dedupe.buffer.size


def map_capacity(dedupe_buffer_bytes: int) -> int:
    """Keys the offset map may hold: Kafka's slots times its load factor (at least one)."""
    return max(1, int(dedupe_buffer_bytes // MAP_ENTRY_BYTES * MAP_LOAD_FACTOR))


# --- what to clean ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentView:
    """What planning needs of one sealed segment."""

    base_offset: int
    size: int
    first_batch_ts: int  # -1 when unknown
    max_ts: int  # largest batch timestamp, -1 when empty
    index_entries: int = 0
    time_index_entries: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    first_dirty: int
    end: int  # first uncleanable offset
    dirty_ratio: float
    forced: bool  # max.compaction.lag.ms passed


def first_uncleanable_offset(
    sealed: Sequence[SegmentView],
    active_base: int,
    first_unstable: int,
    first_dirty: int,
    now_ms: int,
    min_lag_ms: int,
) -> int:
    """The active segment, an open transaction, and segments younger than the minimum lag stay dirty."""
    end = min(active_base, first_unstable)
    if min_lag_ms > 0:
        for seg in sealed:
            if seg.base_offset >= end:
                break
            nxt = _next_base(sealed, seg, active_base)
            if nxt > first_dirty and seg.max_ts > now_ms - min_lag_ms:
                end = min(end, seg.base_offset)
                break
    return end


def _next_base(sealed: Sequence[SegmentView], seg: SegmentView, active_base: int) -> int:
    i = sealed.index(seg)
    return sealed[i + 1].base_offset if i + 1 < len(sealed) else active_base


def plan(
    sealed: Sequence[SegmentView],
    active_base: int,
    first_unstable: int,
    first_dirty: int,
    config: CleanerConfig,
    now_ms: int,
) -> Plan | None:
    """A pass to run now, or None: Kafka's dirty-ratio and compaction-lag rules."""
    if not sealed:
        return None
    first_dirty = max(first_dirty, sealed[0].base_offset)
    end = first_uncleanable_offset(
        sealed, active_base, first_unstable, first_dirty, now_ms, config.min_compaction_lag_ms
    )
    if end <= first_dirty:
        return None
    clean_bytes = dirty_bytes = 0
    first_dirty_ts = -1
    for seg in sealed:
        nxt = _next_base(sealed, seg, active_base)
        if nxt <= first_dirty:
            clean_bytes += seg.size
        elif seg.base_offset < end:
            dirty_bytes += seg.size
            if first_dirty_ts < 0:
                first_dirty_ts = seg.first_batch_ts if seg.first_batch_ts >= 0 else seg.max_ts
    if dirty_bytes == 0:
        return None
    ratio = dirty_bytes / (clean_bytes + dirty_bytes)
    lag = config.max_compaction_lag_ms
    forced = first_dirty_ts >= 0 and lag < now_ms and first_dirty_ts < now_ms - lag
    if ratio < config.min_cleanable_dirty_ratio and not forced:
        return None
    return Plan(first_dirty, end, ratio, forced)


def group_segments(
    segments: Sequence[SegmentView], end: int, max_bytes: int, max_index_bytes: int
) -> list[list[SegmentView]]:
    """Consecutive segments merged into one cleaned segment while their sizes add up below the topic's
    segment and index limits and their offsets fit a segment's 32-bit relative offsets (Kafka's rule)."""
    groups: list[list[SegmentView]] = []
    i = 0
    while i < len(segments):
        group = [segments[i]]
        size, idx, tim = segments[i].size, segments[i].index_entries * 8, segments[i].time_index_entries * 12
        i += 1
        while i < len(segments):
            nxt = segments[i]
            last = (segments[i + 1].base_offset if i + 1 < len(segments) else end) - 1
            if (
                size + nxt.size > max_bytes
                or idx + nxt.index_entries * 8 > max_index_bytes
                or tim + nxt.time_index_entries * 12 > max_index_bytes
                or last - group[0].base_offset > 2**31 - 1
            ):
                break
            group.append(nxt)
            size, idx, tim = size + nxt.size, idx + nxt.index_entries * 8, tim + nxt.time_index_entries * 12
            i += 1
        groups.append(group)
    return groups


# --- records --------------------------------------------------------------------------------------


class RawRecord(NamedTuple):
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    has_value: bool
    attributes: int
    rest: memoryview  # key, value and headers as encoded: copied unchanged into a rewritten record
    whole: memoryview  # the record with its length prefix


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    try:
        return read_varint(buf, pos)
    except RecordDecodeError as e:
        raise CleanerError(str(e)) from None


def raw_records(body: memoryview, count: int) -> Iterator[RawRecord]:
    """The records of an uncompressed batch body, without copying their fields. One-byte varints (most
    lengths and deltas) are decoded inline: this loop is the cleaner's hot path."""
    raw = bytes(body)  # indexing bytes is faster than a memoryview
    size = len(raw)
    pos = 0
    for _ in range(count):
        start = pos
        if pos >= size:
            raise CleanerError("record runs past the batch")
        b = raw[pos]
        if b < 0x80:
            length, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            length, pos = _varint(body, pos)
        end = pos + length
        if length < 0 or end > size:
            raise CleanerError("record runs past the batch")
        attributes = raw[pos]
        p = pos + 1
        fields = []
        for _field in range(3):  # timestamp delta, offset delta, key length
            if p >= end:
                raise CleanerError("record runs past the batch")
            b = raw[p]
            if b < 0x80:
                fields.append((b >> 1) ^ -(b & 1))
                p += 1
            else:
                v, p = _varint(body, p)
                fields.append(v)
            if _field == 1:
                rest_start = p
        ts_delta, offset_delta, key_len = fields
        key = None
        if key_len >= 0:
            if p + key_len > end:
                raise CleanerError("record key runs past the record")
            key = raw[p : p + key_len]
            p += key_len
        if p >= end:
            raise CleanerError("record value runs past the record")
        b = raw[p]
        has_value = not (b & 1) if b < 0x80 else _varint(body, p)[0] >= 0
        yield RawRecord(
            offset_delta, ts_delta, key, has_value, attributes, body[rest_start:end], body[start:end]
        )
        pos = end


def key_digest(key: bytes) -> bytes:
    """At most 16 bytes per key, as Kafka's map keeps an MD5: memory is bounded whatever the key sizes.
    Keys shorter than a digest stand for themselves (no two can collide, nor with a 16-byte digest)."""
    if len(key) < 16:
        return key
    return hashlib.blake2b(key, digest_size=16).digest()


# --- the offset map -------------------------------------------------------------------------------


class OffsetMap:
    """Key digest -> last offset for the dirty part of a log, holding at most ``capacity`` keys."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._map: dict[bytes, int] = {}
        self.latest_offset = -1  # every record up to here has been mapped

    def __len__(self) -> int:
        return len(self._map)

    def put(self, digest: bytes, offset: int) -> bool:
        if digest not in self._map and len(self._map) >= self.capacity:
            return False
        self._map[digest] = offset
        return True

    def get(self, digest: bytes) -> int:
        return self._map.get(digest, -1)


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int


class ProducerTail(NamedTuple):
    """What must survive cleaning of a live producer: its last data batch, else its last marker."""

    last_data_offset: int | None
    epoch: int


class TxnTracker:
    """Which transactional batches belong to aborted transactions, and which markers may go: the cleaner's
    walk through the log in offset order, fed with the partition's aborted-transaction index."""

    def __init__(self, aborted: Iterable[AbortedTxn]) -> None:
        self._pending = sorted(aborted, key=lambda a: a.first_offset)
        heapq.heapify(self._pending)
        self._aborted: dict[int, list] = {}  # producer id -> [txn, last batch offset seen or None]
        self._committed: set[int] = set()

    def _reach(self, offset: int) -> None:
        while self._pending and self._pending[0].first_offset <= offset:
            txn = heapq.heappop(self._pending)
            self._aborted.setdefault(txn.producer_id, [txn, None])

    def on_batch(self, h: BatchHeader) -> bool:
        """True when the data batch belongs to an aborted transaction (it may be removed)."""
        self._reach(h.last_offset)
        if not h.is_transactional:
            return False
        entry = self._aborted.get(h.producer_id)
        if entry is not None:
            entry[1] = h.last_offset
            return True
        self._committed.add(h.producer_id)
        return False

    def on_marker(self, h: BatchHeader, kind: int | None) -> bool:
        """True when the marker ends a transaction no batch of which is left (it may be removed)."""
        self._reach(h.last_offset)
        if kind is None:
            return True  # an empty control batch: already cleaned
        if kind == CONTROL_ABORT:
            entry = self._aborted.pop(h.producer_id, None)
            return not (entry is not None and entry[1] is not None)
        if kind == CONTROL_COMMIT:
            if h.producer_id in self._committed:
                self._committed.discard(h.producer_id)
                return False
            return True
        return False


def _batch_body(batch: memoryview, h: BatchHeader) -> memoryview:
    try:
        return memoryview(decompress(h.codec, batch[HEADER_SIZE : h.size]))
    except RecordDecodeError as e:
        raise CleanerError(f"batch at offset {h.base_offset}: {e}") from None


def _control_kind(batch: memoryview, h: BatchHeader) -> int | None:
    if h.record_count == 0:
        return None
    for rec in raw_records(_batch_body(batch, h), h.record_count):
        if rec.key is not None and len(rec.key) >= 4:
            return _I16.unpack_from(rec.key, 2)[0]
    return None


def has_delete_horizon(h: BatchHeader) -> bool:
    return bool(h.attributes & ATTR_DELETE_HORIZON)


def build_offset_map(
    batches: Iterable[tuple[memoryview, BatchHeader]],
    start: int,
    end: int,
    offset_map: OffsetMap,
    aborted: Iterable[AbortedTxn],
) -> None:
    """Map every key of the batches in [start, end) to its last offset, skipping aborted data. Stops
    early (``offset_map.latest_offset`` tells where) when the map is full."""
    txns = TxnTracker(aborted)
    for batch, h in batches:
        if h.base_offset >= end:
            break
        if h.is_control:
            txns.on_marker(h, _control_kind(batch, h))
        elif not txns.on_batch(h) and h.last_offset >= start:
            for rec in raw_records(_batch_body(batch, h), h.record_count):
                offset = h.base_offset + rec.offset_delta
                if rec.key is not None and offset >= start:
                    if not offset_map.put(key_digest(rec.key), offset):
                        return
        if h.last_offset >= start:
            offset_map.latest_offset = max(offset_map.latest_offset, h.last_offset)
    offset_map.latest_offset = max(offset_map.latest_offset, end - 1)


# --- cleaning -------------------------------------------------------------------------------------


@dataclass
class CleanStats:
    batches_read: int = 0
    batches_kept: int = 0
    records_read: int = 0
    records_kept: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    tombstones_removed: int = 0
    aborted_removed: int = 0
    markers_removed: int = 0


@dataclass
class Cleaner:
    """One pass: feed every batch from the log start to ``end`` in offset order through ``clean``."""

    offset_map: OffsetMap
    end: int  # first uncleanable offset: batches from here on are not touched
    now_ms: int
    delete_retention_ms: int
    producers: dict[int, ProducerTail]
    aborted: Iterable[AbortedTxn]
    stats: CleanStats = field(default_factory=CleanStats)
    group_end: int = -1  # base offset of the segment after the group being cleaned

    def __post_init__(self) -> None:
        self._txns = TxnTracker(self.aborted)

    def clean(self, batch: memoryview, h: BatchHeader) -> bytes | memoryview | None:
        """The batch as it stays in the log (the same bytes when nothing changes), or None: removed."""
        st = self.stats
        st.batches_read += 1
        st.bytes_read += h.size
        if h.base_offset >= self.end or h.base_offset > self.offset_map.latest_offset:
            st.batches_kept += 1
            st.bytes_written += h.size
            return batch
        horizon_passed = has_delete_horizon(h) and h.base_timestamp <= self.now_ms
        if h.is_control:
            kind = _control_kind(batch, h)
            can_discard = self._txns.on_marker(h, kind)
            discard_records = can_discard and horizon_passed
        else:
            can_discard = self._txns.on_batch(h)
            discard_records = can_discard
        tail = self.producers.get(h.producer_id) if h.producer_id >= 0 else None
        last_of_producer = tail is not None and (
            h.last_offset == tail.last_data_offset
            if tail.last_data_offset is not None
            else h.is_control and h.producer_epoch == tail.epoch
        )
        retain_empty = last_of_producer or h.last_offset + 1 in (self.end, self.group_end)
        marker_for_empty_txn = can_discard and h.is_control

        kept: list[RawRecord] = []
        changed = False
        tombstones = False
        if discard_records:
            changed = True
            if h.is_control:
                st.markers_removed += 1
            else:
                st.aborted_removed += h.record_count
        else:
            body = _batch_body(batch, h)
            for rec in raw_records(body, h.record_count):
                st.records_read += 1
                if h.is_control or self._retain(h, rec, horizon_passed):
                    kept.append(rec)
                    tombstones = tombstones or (not h.is_control and not rec.has_value)
                else:
                    changed = True
                    if not rec.has_value:
                        st.tombstones_removed += 1
        set_horizon = (tombstones or marker_for_empty_txn) and not has_delete_horizon(h)
        if not changed and not set_horizon:
            st.batches_kept += 1
            st.records_kept += len(kept)
            st.bytes_written += h.size
            return batch
        if not kept and not retain_empty:
            return None
        out = rebuild_batch(h, kept, self.now_ms + self.delete_retention_ms if set_horizon else None)
        st.batches_kept += 1
        st.records_kept += len(kept)
        st.bytes_written += len(out)
        return out

    def _retain(self, h: BatchHeader, rec: RawRecord, horizon_passed: bool) -> bool:
        offset = h.base_offset + rec.offset_delta
        if offset > self.offset_map.latest_offset:
            return True
        if rec.key is None:
            return False  # a compacted topic refuses records without keys; Kafka drops any found
        if offset < self.offset_map.get(key_digest(rec.key)):
            return False
        return rec.has_value or not horizon_passed


def rebuild_batch(h: BatchHeader, kept: Sequence[RawRecord], horizon_ms: int | None) -> bytes:
    """A batch with the same base offset, lastOffsetDelta and producer fields holding ``kept``."""
    attributes = h.attributes
    if horizon_ms is not None:
        attributes |= ATTR_DELETE_HORIZON
        base_ts = horizon_ms
    else:
        base_ts = h.base_timestamp
    old_base_ts = h.base_timestamp
    if h.log_append_time:
        max_ts = h.max_timestamp
    else:
        max_ts = max((old_base_ts + r.timestamp_delta for r in kept), default=h.max_timestamp)
    if not kept:
        attributes &= ~ATTR_CODEC_MASK
        body = b""
    else:
        parts: list[bytes | memoryview] = []
        for r in kept:
            if base_ts == old_base_ts:
                parts.append(r.whole)
            else:
                inner = (
                    bytes((r.attributes,))
                    + zigzag_varint(old_base_ts + r.timestamp_delta - base_ts)
                    + zigzag_varint(r.offset_delta)
                    + bytes(r.rest)
                )
                parts.append(zigzag_varint(len(inner)) + inner)
        body = compress(h.codec, b"".join(parts))
    length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    out = bytearray(
        _HEADER.pack(
            h.base_offset,
            length,
            h.partition_leader_epoch,
            2,
            0,
            attributes,
            h.last_offset_delta,
            base_ts,
            max_ts,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            len(kept),
        )
    )
    out += body
    struct.pack_into(">I", out, 17, crc32c(memoryview(out)[CRC_START:]))
    return bytes(out)


def iter_batches(data: bytes | memoryview) -> Iterator[tuple[memoryview, BatchHeader]]:
    """(batch, header) of each whole batch in a segment's bytes."""
    view = memoryview(data)
    pos = 0
    while pos + HEADER_SIZE <= len(view):
        h = read_header(view, pos)
        if h.size < HEADER_SIZE or pos + h.size > len(view):
            raise CleanerError(f"torn batch at position {pos}")
        yield view[pos : pos + h.size], h
        pos += h.size


def iter_batches_prefix(data: bytes | memoryview) -> Iterator[tuple[memoryview, BatchHeader]]:
    """Like iter_batches, but stops quietly at a batch the buffer holds only the start of."""
    view = memoryview(data)
    pos = 0
    while pos + HEADER_SIZE <= len(view):
        h = read_header(view, pos)
        if h.size < HEADER_SIZE:
            raise CleanerError(f"impossible batch length at position {pos}")
        if pos + h.size > len(view):
            return
        yield view[pos : pos + h.size], h
        pos += h.size
