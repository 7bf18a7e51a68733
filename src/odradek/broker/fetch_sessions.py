"""Incremental fetch sessions (KIP-227): the broker's session cache, without I/O.

A consumer of many partitions sends its whole partition list once, in a full fetch with epoch 0; the broker
keeps that list as a session and answers its id. Later fetches name the session and its next epoch and
carry only the partitions whose fetch position changed, plus the ones to forget; the broker answers only
the partitions with news: records, a moved high watermark or log start offset, or an error. This module
keeps the sessions and decides, for each request, which partitions to read and which of the results to
send; the Fetch handler does the reading. Time comes from an injected clock and session ids from an
injected random generator, so every decision replays exactly in a unit test.

The rules are Apache Kafka's:

* ``(session id, epoch)`` of a request: epoch 0 (INITIAL) or -1 (FINAL) is a full fetch. A full fetch
  first closes the session it names, if any; with epoch 0 it then asks for a new session (created when
  the answer is ready, if the cache has room or can evict), with -1 it is sessionless. Any other epoch is
  incremental: an unknown session id gets FETCH_SESSION_ID_NOT_FOUND (70), an epoch other than the one
  the session expects gets INVALID_FETCH_SESSION_EPOCH (71). Neither error touches the session, and both
  answers carry session id 0 and no partitions.
* An incremental request first adds or updates the partitions it carries, then removes the forgotten
  ones; a session left empty is closed and the request answered as sessionless. Otherwise the session
  is touched and its epoch moves on (1, 2, ... INT32_MAX, then 1 again). Every partition of the session
  is read, in the session's order; a partition that returned records moves to the end of that order, so
  that a response byte limit does not starve the later ones.
* The cache is split into 8 shards of ``max.incremental.fetch.session.cache.slots // 8`` sessions each
  (so fewer than 8 slots means no sessions at all, as in Kafka). New sessions go to the shards in turn;
  a session id says its shard. When a shard is full, a new session may evict, within that shard: the
  least recently used session if it has been idle more than 120 s; else the smallest evictable session
  when the new one is at least as valuable. Sessions are ordered by (privileged, partitions, id) and a
  new one has id 0, so it must be privileged over, or strictly larger than, the one it evicts. A session
  is evictable by any newcomer once it was older than 120 s when last used, and by a privileged one
  (a follower's: Odradek has none) at once.
* Sessions belong to no connection: a client may go on with its session over a new connection, and a
  closed connection's session stays until it is evicted.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger("odradek.broker.fetch_sessions")

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
NONE = 0
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71

INT32_MAX = 2**31 - 1
SHARDS = 8  # Kafka splits its cache in 8 shards; eviction only looks within one
# Kafka's fixed minimum idle time (and age) before a session may be evicted; it is not a setting there.
EVICTION_MIN_MS = 120_000

Key = tuple[str, int]  # (topic, partition)


def next_epoch(epoch: int) -> int:
    """The epoch that follows ``epoch``: FINAL stays FINAL, INT32_MAX wraps to 1 (0 means INITIAL)."""
    if epoch < 0:
        return epoch
    return 1 if epoch == INT32_MAX else epoch + 1


@dataclass(slots=True)
class PartitionRequest:
    """What a fetch asks of one partition; a session remembers the last one sent for each."""

    fetch_offset: int
    partition_max_bytes: int
    log_start_offset: int = -1  # the fetcher's (followers only)
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1


@dataclass(slots=True)
class CachedPartition:
    request: PartitionRequest
    high_watermark: int = -1  # as last sent to the client (-1: unknown, or last sent with an error)
    log_start_offset: int = -1  # the partition's, as last sent


class Outcome(NamedTuple):
    """What reading one partition gave, as far as sessions care."""

    key: Key
    error_code: int
    high_watermark: int
    log_start_offset: int
    records_bytes: int


@dataclass(frozen=True, slots=True)
class Reply:
    """The top of a Fetch response: its error code, its session id and which outcomes it carries."""

    error_code: int
    session_id: int
    keep: tuple[int, ...]  # indices into the outcomes given, in order


class FetchSession:
    __slots__ = ("id", "privileged", "partitions", "creation_ms", "last_used_ms", "epoch", "cached_size")

    def __init__(
        self, session_id: int, privileged: bool, partitions: dict[Key, CachedPartition], now_ms: int
    ) -> None:
        self.id = session_id
        self.privileged = privileged
        self.partitions = partitions  # in the session's order (insertion order of the dict)
        self.creation_ms = now_ms
        self.last_used_ms = now_ms
        self.epoch = next_epoch(INITIAL_EPOCH)
        self.cached_size = -1  # partition count as of the last touch; -1 while not in a cache

    def update(
        self, fetch: Iterable[tuple[Key, PartitionRequest]], forget: Iterable[Key]
    ) -> tuple[list[Key], list[Key], list[Key]]:
        """Apply an incremental request: returns the partitions added, updated and removed."""
        added: list[Key] = []
        updated: list[Key] = []
        removed: list[Key] = []
        for key, req in fetch:
            cached = self.partitions.get(key)
            if cached is None:
                self.partitions[key] = CachedPartition(req)
                added.append(key)
            else:
                cached.request = req
                updated.append(key)
        for key in forget:
            if self.partitions.pop(key, None) is not None:
                removed.append(key)
        return added, updated, removed

    def evictable_key(self) -> tuple[bool, int, int]:
        return (self.privileged, self.cached_size, self.id)

    def __repr__(self) -> str:
        return (
            f"FetchSession(id={self.id}, privileged={self.privileged}, partitions={len(self.partitions)}, "
            f"epoch={self.epoch}, creation_ms={self.creation_ms}, last_used_ms={self.last_used_ms})"
        )


class _MinIndex:
    """The smallest evictable key among some sessions.

    Kafka keeps these in a sorted tree. The standard library has none and the broker takes no dependency
    for one, and only the smallest key is ever asked for, so a heap does: an entry whose session left or
    changed its key is skipped when it reaches the top, and the heap is rebuilt once such stale entries
    outnumber the live ones (a bound on its size)."""

    def __init__(self) -> None:
        self._heap: list[tuple[bool, int, int]] = []
        self._live: dict[int, tuple[bool, int, int]] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, session_id: int) -> bool:
        return session_id in self._live

    def put(self, key: tuple[bool, int, int]) -> None:
        if self._live.get(key[2]) == key:
            return
        self._live[key[2]] = key
        heapq.heappush(self._heap, key)
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = list(self._live.values())
            heapq.heapify(self._heap)

    def discard(self, session_id: int) -> None:
        self._live.pop(session_id, None)

    def first(self) -> tuple[bool, int, int] | None:
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0]:
            heapq.heappop(heap)
        return heap[0] if heap else None


class FetchSessionCacheShard:
    """One shard: at most ``max_entries`` sessions, ids in ``[max(1, n * id_range), (n + 1) * id_range)``."""

    def __init__(
        self, max_entries: int, eviction_ms: int, id_range: int, shard_num: int, rng: random.Random
    ) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.id_range = id_range
        self.shard_num = shard_num
        self._rng = rng
        self.sessions: dict[int, FetchSession] = {}
        # Least recently used first. Kafka orders by (last used ms, id); with a clock that never goes back,
        # touch order is that order but for sessions touched in the same millisecond.
        self._last_used: dict[int, FetchSession] = {}
        self._by_all = _MinIndex()
        self._by_privileged = _MinIndex()
        self.total_partitions = 0
        self.evictions = 0

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def __len__(self) -> int:
        return len(self.sessions)

    def new_session_id(self) -> int:
        low = max(1, self.shard_num * self.id_range)
        high = (self.shard_num + 1) * self.id_range
        while True:  # ends: a shard holds far fewer sessions than ids
            sid = self._rng.randrange(low, high)
            if sid not in self.sessions and sid != INVALID_SESSION_ID:
                return sid

    def maybe_create(
        self,
        now_ms: int,
        privileged: bool,
        size: int,
        partitions: Callable[[], dict[Key, CachedPartition]],
    ) -> int:
        """A new session's id, or INVALID_SESSION_ID when the shard is full and nothing may be evicted."""
        if len(self.sessions) < self.max_entries or self._try_evict(
            privileged, (privileged, size, 0), now_ms
        ):
            session = FetchSession(self.new_session_id(), privileged, partitions(), now_ms)
            self.sessions[session.id] = session
            self.touch(session, now_ms)
            log.debug("created fetch session %r", session)
            return session.id
        log.debug("no fetch session created (privileged=%s, partitions=%d): cache full", privileged, size)
        return INVALID_SESSION_ID

    def _try_evict(self, privileged: bool, key: tuple[bool, int, int], now_ms: int) -> bool:
        oldest = next(iter(self._last_used.values()), None)
        if oldest is None:
            return False
        if now_ms - oldest.last_used_ms > self.eviction_ms:
            log.debug("evicting stale fetch session %d", oldest.id)
            self.remove(oldest)
            self.evictions += 1
            return True
        first = (self._by_privileged if privileged else self._by_all).first()
        if first is None or key < first:
            return False
        log.debug("evicting fetch session %d (key %s) for a new one with key %s", first[2], first, key)
        self.remove(self.sessions[first[2]])
        self.evictions += 1
        return True

    def remove(self, session: FetchSession) -> FetchSession | None:
        self._last_used.pop(session.id, None)
        self._by_all.discard(session.id)
        self._by_privileged.discard(session.id)
        removed = self.sessions.pop(session.id, None)
        if removed is not None:
            self.total_partitions -= session.cached_size
            session.cached_size = -1
        return removed

    def remove_id(self, session_id: int) -> FetchSession | None:
        session = self.sessions.get(session_id)
        return None if session is None else self.remove(session)

    def touch(self, session: FetchSession, now_ms: int) -> None:
        """Mark ``session`` used now and re-rank it (its size may have changed)."""
        self._last_used.pop(session.id, None)
        session.last_used_ms = now_ms
        self._last_used[session.id] = session
        if session.cached_size != -1:
            self.total_partitions -= session.cached_size
        session.cached_size = len(session.partitions)
        self.total_partitions += session.cached_size
        key = session.evictable_key()
        aged = now_ms - session.creation_ms > self.eviction_ms
        for index, qualifies in (
            (self._by_privileged, not session.privileged or aged),
            (self._by_all, aged),
        ):
            if qualifies:
                index.put(key)
            else:
                index.discard(session.id)


class SessionError:
    """An incremental fetch the cache refuses: nothing is read, the answer is the error alone."""

    kind = "error"

    def __init__(self, error_code: int) -> None:
        self.error_code = error_code
        self.partitions: list[tuple[Key, PartitionRequest]] = []

    def reply(self, outcomes: Sequence[Outcome]) -> Reply:
        return Reply(self.error_code, INVALID_SESSION_ID, ())


class Sessionless:
    """A fetch without a session (epoch -1, an old Fetch version, or a session just emptied)."""

    kind = "sessionless"

    def __init__(self, fetch: list[tuple[Key, PartitionRequest]]) -> None:
        self.partitions = fetch

    def reply(self, outcomes: Sequence[Outcome]) -> Reply:
        return Reply(NONE, INVALID_SESSION_ID, tuple(range(len(outcomes))))


class FullFetch:
    """A full fetch asking for a session: every partition is answered, and a session holds them after."""

    kind = "full"

    def __init__(self, cache: FetchSessionCache, fetch: list[tuple[Key, PartitionRequest]], privileged: bool):
        self._cache = cache
        self._privileged = privileged
        self.partitions = fetch

    def reply(self, outcomes: Sequence[Outcome]) -> Reply:
        requests = dict(self.partitions)

        def cached() -> dict[Key, CachedPartition]:
            return {
                o.key: CachedPartition(requests[o.key], o.high_watermark, o.log_start_offset)
                for o in outcomes
            }

        size = len({o.key for o in outcomes})
        session_id = self._cache.next_shard().maybe_create(
            self._cache.now_ms(), self._privileged, size, cached
        )
        return Reply(NONE, session_id, tuple(range(len(outcomes))))


class IncrementalFetch:
    """A fetch in an existing session: every partition of the session is read, the news is answered."""

    kind = "incremental"

    def __init__(self, session: FetchSession) -> None:
        self.session = session
        self._expected_epoch = session.epoch  # already moved on for this request
        self.partitions = [(key, cached.request) for key, cached in session.partitions.items()]

    def unchanged(self, key: Key, high_watermark: int, log_start_offset: int) -> bool:
        """Whether a partition read at its end (no records, no error) with these offsets would be left
        out of the answer: the reader may skip it."""
        cached = self.session.partitions.get(key)
        return (
            cached is not None
            and cached.high_watermark == high_watermark
            and cached.log_start_offset == log_start_offset
        )

    def reply(self, outcomes: Sequence[Outcome]) -> Reply:
        session = self.session
        if session.epoch != self._expected_epoch:
            # Another request of the same session came in while this one waited: as in Kafka, this one
            # is answered with the error (and the session's id).
            log.info(
                "fetch session %d moved to epoch %d meanwhile: duplicate request?", session.id, session.epoch
            )
            return Reply(INVALID_FETCH_SESSION_EPOCH, session.id, ())
        keep: list[int] = []
        for i, o in enumerate(outcomes):
            cached = session.partitions.get(o.key)
            if cached is None or not _must_send(cached, o):
                continue
            keep.append(i)
            if o.records_bytes > 0:
                session.partitions[o.key] = session.partitions.pop(o.key)  # to the back of the order
        return Reply(NONE, session.id, tuple(keep))


FetchContext = SessionError | Sessionless | FullFetch | IncrementalFetch


def _must_send(cached: CachedPartition, o: Outcome) -> bool:
    """Whether an incremental response carries this partition; remembers what it will have told."""
    send = o.records_bytes > 0
    if cached.high_watermark != o.high_watermark:
        cached.high_watermark = o.high_watermark
        send = True
    if cached.log_start_offset != o.log_start_offset:
        cached.log_start_offset = o.log_start_offset
        send = True
    if o.error_code != NONE:
        # Sent every time, and forgotten as sent, so that the partition is sent again once it recovers.
        cached.high_watermark = -1
        send = True
    return send


class FetchSessionCache:
    """All sessions of the broker: ``max.incremental.fetch.session.cache.slots`` split in shards."""

    def __init__(
        self,
        slots: int,
        clock_ms: Callable[[], int],
        *,
        shards: int = SHARDS,
        eviction_ms: int = EVICTION_MIN_MS,
        rng: random.Random | None = None,
    ) -> None:
        if slots < 0 or shards < 1:
            raise ValueError(f"slots must be at least 0 and shards at least 1, got {slots} and {shards}")
        self._clock_ms = clock_ms
        rng = rng or random.Random()
        self._id_range = INT32_MAX // shards
        self.shards = [
            FetchSessionCacheShard(slots // shards, eviction_ms, self._id_range, n, rng)
            for n in range(shards)
        ]
        self._turn = 0

    def now_ms(self) -> int:
        return self._clock_ms()

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    @property
    def total_partitions(self) -> int:
        return sum(s.total_partitions for s in self.shards)

    @property
    def evictions(self) -> int:
        return sum(s.evictions for s in self.shards)

    def get(self, session_id: int) -> FetchSession | None:
        shard = self.shard_of(session_id)
        return None if shard is None else shard.get(session_id)

    def shard_of(self, session_id: int) -> FetchSessionCacheShard | None:
        n = session_id // self._id_range
        return self.shards[n] if 0 <= n < len(self.shards) else None

    def next_shard(self) -> FetchSessionCacheShard:
        shard = self.shards[self._turn]
        self._turn = (self._turn + 1) % len(self.shards)
        return shard

    def new_context(
        self,
        session_id: int,
        epoch: int,
        fetch: list[tuple[Key, PartitionRequest]],
        forget: Sequence[Key],
        *,
        privileged: bool = False,
    ) -> FetchContext:
        """Decide what one Fetch request means for the sessions (the request's partitions in order)."""
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                shard = self.shard_of(session_id)
                if shard is not None and shard.remove_id(session_id) is not None:
                    log.debug("full fetch closed fetch session %d", session_id)
            if epoch == FINAL_EPOCH:
                return Sessionless(fetch)
            return FullFetch(self, fetch, privileged)
        shard = self.shard_of(session_id)
        session = None if shard is None else shard.get(session_id)
        if shard is None or session is None:
            log.debug("fetch session %d not found", session_id)
            return SessionError(FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            log.debug("fetch session %d expected epoch %d, got %d", session_id, session.epoch, epoch)
            return SessionError(INVALID_FETCH_SESSION_EPOCH)
        session.update(fetch, forget)
        if not session.partitions:
            log.debug("fetch session %d closed: no partitions left", session_id)
            shard.remove(session)
            return Sessionless(fetch)
        shard.touch(session, self.now_ms())
        session.epoch = next_epoch(session.epoch)
        return IncrementalFetch(session)
