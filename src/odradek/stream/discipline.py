"""The commit discipline of each guarantee, as state machines without I/O.

Each guarantee is one answer to the question "when may a position be committed, relative to processing
and to the acknowledgement of outputs, and what happens on failure, revocation and fencing". The answers
are written down here once; :mod:`odradek.stream.app` only executes the actions they return.

Events in (methods): ``assigned``, ``polled``, ``committed`` / ``commit_failed``, ``processed``,
``acknowledged``, ``delivery_failed``, ``failed``, ``revoked``, ``tick``, ``stop``, and for exactly-once
into SQL ``claimed`` and ``fenced``. Actions out (the dataclasses below), to be executed in order.

Positions are "next offset to read" per ``(topic, partition)``, as Kafka commits them.

The rules:

* **at-most-once**: a polled batch's positions are committed synchronously *before* the batch is processed.
  Only partitions whose commit succeeded are processed; the rest are discarded (their new owner starts
  from the old position, so processing them here too could repeat them). A crash loses at most the batch
  in hand and never repeats one.
* **at-least-once**: a position is committed only after every output of every input before it was
  acknowledged (acks=all): every ``commit_interval_ms`` the outputs are flushed, then the positions
  committed. A failed delivery rewinds to the last committed positions (outputs may repeat, none is lost).
  On revocation or stop, outputs are flushed and the processed positions committed before the partitions
  go.
* **exactly-once (Kafka)**: outputs and positions go in one transaction, committed every
  ``commit_interval_ms``; a failed commit or processing error aborts *and* rewinds to the committed
  positions; a fenced producer stops the instance; revocation and stop commit the open transaction first.
* **exactly-once (SQL)**: results and positions go in one database transaction. On assignment the
  positions and a fresh per-partition epoch are claimed from the database; a commit whose epoch is stale
  (another instance claimed the partition since) is fenced: it is rolled back, and those partitions are
  dropped until they are assigned again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TP = tuple[str, int]
Positions = dict[TP, int]

# --------------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True)
class Commit:
    """Commit these consumer positions to Kafka (``sync``: wait for the answer, then report it)."""

    positions: Positions
    sync: bool


@dataclass(frozen=True)
class Process:
    """Process the batch in hand; records of partitions outside ``only`` (when given) are discarded."""

    only: frozenset[TP] | None = None


@dataclass(frozen=True)
class Flush:
    """Send every pending output and wait for its acknowledgement (``wait=False``: send, do not wait).

    Then report ``acknowledged()``, or ``delivery_failed()`` when an output could not be delivered."""

    wait: bool = True


@dataclass(frozen=True)
class BeginTransaction:
    pass


@dataclass(frozen=True)
class CommitTransaction:
    """Send ``positions`` to the transaction (KIP-447 group metadata) and commit it."""

    positions: Positions


@dataclass(frozen=True)
class AbortTransaction:
    pass


@dataclass(frozen=True)
class Rewind:
    """Seek back: to ``positions`` where given, else to the group's committed offsets; outputs not yet
    written are discarded."""

    positions: Positions | None = None
    partitions: frozenset[TP] | None = None


@dataclass(frozen=True)
class Claim:
    """Exactly-once into SQL: claim ``partitions`` (bump their epochs, read their positions) from the
    database, then report ``claimed()``."""

    partitions: frozenset[TP]


@dataclass(frozen=True)
class Seek:
    positions: Positions


@dataclass(frozen=True)
class SqlCommit:
    """One database transaction: the position checks (epoch) first, then the pending rows. Report
    ``committed()``, ``fenced()`` or ``commit_failed()``."""

    positions: Mapping[TP, tuple[int, int]]  # tp -> (next offset, epoch)


@dataclass(frozen=True)
class Stop:
    """Leave the loop. ``error`` is None for a requested stop."""

    error: BaseException | None = None


Action = (
    Commit
    | Process
    | Flush
    | BeginTransaction
    | CommitTransaction
    | AbortTransaction
    | Rewind
    | Claim
    | Seek
    | SqlCommit
    | Stop
)


class DisciplineError(RuntimeError):
    """An event that the state does not allow (a bug in the caller, never a user error)."""


# --------------------------------------------------------------------------------------------------
# Machines


class Discipline:
    """What every guarantee shares: the positions processed and committed, per partition."""

    def __init__(self, commit_interval_ms: int = 1000) -> None:
        if commit_interval_ms < 0:
            raise ValueError("commit_interval_ms must be >= 0")
        self.commit_interval_ms = commit_interval_ms
        self.processed_positions: Positions = {}
        self.committed_positions: Positions = {}
        self.stopping = False
        self.stop_error: BaseException | None = None
        self._last_commit_ms: int | None = None

    # Events every machine accepts; the defaults do nothing.
    def assigned(self, partitions: Iterable[TP], now_ms: int) -> list[Action]:
        return []

    def polled(self, positions: Positions, now_ms: int) -> list[Action]:
        return [Process()]

    def processed(self, positions: Positions) -> list[Action]:
        for tp, offset in positions.items():
            if offset < self.processed_positions.get(tp, -1):
                raise DisciplineError(
                    f"position of {tp} went back from {self.processed_positions[tp]} to {offset}"
                )
            self.processed_positions[tp] = offset
        return []

    def committed(self, positions: Positions) -> list[Action]:
        self.committed_positions.update(positions)
        return []

    def commit_failed(
        self, error: BaseException, *, retriable: bool = True, fatal: bool = False
    ) -> list[Action]:
        return []

    def acknowledged(self) -> list[Action]:
        return []

    def delivery_failed(self, error: BaseException) -> list[Action]:
        return []

    def failed(self, error: BaseException) -> list[Action]:
        """Processing failed for good (the error policy said stop)."""
        return [Stop(error)]

    def revoked(self, partitions: Iterable[TP]) -> list[Action]:
        self._forget(partitions)
        return []

    def lost(self, partitions: Iterable[TP]) -> list[Action]:
        """Partitions taken away without a revocation (this member's session expired): nothing may be
        committed for them any more."""
        self._forget(partitions)
        return []

    def tick(self, now_ms: int) -> list[Action]:
        return []

    def stop(self) -> list[Action]:
        self.stopping = True
        return [Stop()]

    # Helpers.
    def _due(self, now_ms: int) -> bool:
        if self._last_commit_ms is None:
            self._last_commit_ms = now_ms
        return now_ms - self._last_commit_ms >= self.commit_interval_ms

    def _dirty(self, partitions: Iterable[TP] | None = None) -> Positions:
        tps = self.processed_positions if partitions is None else partitions
        return {
            tp: self.processed_positions[tp]
            for tp in tps
            if tp in self.processed_positions
            and self.processed_positions[tp] != self.committed_positions.get(tp)
        }

    def _forget(self, partitions: Iterable[TP]) -> None:
        for tp in partitions:
            self.processed_positions.pop(tp, None)
            self.committed_positions.pop(tp, None)

    def _reset_to_committed(self, partitions: Iterable[TP] | None = None) -> None:
        tps = list(self.processed_positions) if partitions is None else list(partitions)
        for tp in tps:
            if tp in self.committed_positions:
                self.processed_positions[tp] = self.committed_positions[tp]
            else:
                self.processed_positions.pop(tp, None)


class AtMostOnce(Discipline):
    """Commit before processing; a batch whose commit failed is not processed here."""

    def __init__(self, commit_interval_ms: int = 0) -> None:
        super().__init__(commit_interval_ms)
        self._batch: Positions | None = None

    def polled(self, positions: Positions, now_ms: int) -> list[Action]:
        if self._batch is not None:
            raise DisciplineError("polled while the previous batch's commit is unanswered")
        if not positions:
            return []
        self._batch = dict(positions)
        return [Commit(dict(positions), sync=True)]

    def committed(self, positions: Positions) -> list[Action]:
        super().committed(positions)
        batch, self._batch = self._batch, None
        if batch is None:
            return []
        ok = frozenset(tp for tp in batch if positions.get(tp) == batch[tp])
        return [Process(ok), Flush(wait=False)]

    def commit_failed(
        self, error: BaseException, *, retriable: bool = True, fatal: bool = False
    ) -> list[Action]:
        self._batch = None
        # Not processed here: the next owner (or this member after a rebalance) starts from the old
        # position. Rewinding makes this member read them again only if it keeps the partitions.
        return [Process(frozenset()), Rewind()]

    def processed(self, positions: Positions) -> list[Action]:
        # The committed position is already past the batch; processing does not move it.
        self.processed_positions.update(positions)
        return []

    def failed(self, error: BaseException) -> list[Action]:
        # The position is already past the batch: send what the records before the failing one gave.
        self.stopping = True
        return [Flush(wait=True), Stop(error)]

    def stop(self) -> list[Action]:
        self.stopping = True
        return [Flush(wait=True), Stop()]


class _Pending(enum.Enum):
    NONE = 0
    INTERVAL = 1
    REVOKE = 2
    STOP = 3


class AtLeastOnce(Discipline):
    """Outputs acknowledged, then positions committed: at every interval, on revocation, on stop."""

    def __init__(self, commit_interval_ms: int = 1000) -> None:
        super().__init__(commit_interval_ms)
        self._pending = _Pending.NONE
        self._revoking: set[TP] = set()

    def tick(self, now_ms: int) -> list[Action]:
        if self._pending is not _Pending.NONE or not self._due(now_ms):
            return []
        self._last_commit_ms = now_ms
        if not self._dirty():
            return []
        self._pending = _Pending.INTERVAL
        return [Flush()]

    def acknowledged(self) -> list[Action]:
        pending, self._pending = self._pending, _Pending.NONE
        dirty = self._dirty()
        actions: list[Action] = []
        if pending is _Pending.INTERVAL:
            if dirty:
                actions.append(Commit(dirty, sync=False))
        elif pending is _Pending.REVOKE:
            if dirty:
                actions.append(Commit(dirty, sync=True))
            self._forget(self._revoking)
            self._revoking.clear()
        elif pending is _Pending.STOP:
            if dirty:
                actions.append(Commit(dirty, sync=True))
            actions.append(Stop(self.stop_error))
        return actions

    def delivery_failed(self, error: BaseException) -> list[Action]:
        """Some output since the last commit is not acknowledged: process everything since again."""
        pending, self._pending = self._pending, _Pending.NONE
        rewind = {tp: o for tp, o in self.committed_positions.items() if tp in self.processed_positions}
        unknown = frozenset(tp for tp in self.processed_positions if tp not in self.committed_positions)
        self._reset_to_committed()
        actions: list[Action] = [Rewind(rewind or None, partitions=unknown or None)]
        if pending is _Pending.REVOKE:
            self._forget(self._revoking)
            self._revoking.clear()
        elif pending is _Pending.STOP:
            actions.append(Stop(self.stop_error or error))
        return actions

    def revoked(self, partitions: Iterable[TP]) -> list[Action]:
        tps = set(partitions)
        if not self._dirty(tps):
            self._forget(tps)
            return []
        self._revoking |= tps
        self._pending = _Pending.REVOKE
        return [Flush()]

    def failed(self, error: BaseException) -> list[Action]:
        # Commit what was processed before the failing record, then stop.
        return self._stop_after_flush(error)

    def stop(self) -> list[Action]:
        return self._stop_after_flush(None)

    def _stop_after_flush(self, error: BaseException | None) -> list[Action]:
        self.stopping = True
        self.stop_error = error
        self._pending = _Pending.STOP
        return [Flush()]


class ExactlyOnceKafka(Discipline):
    """Outputs and positions in one Kafka transaction per interval."""

    def __init__(self, commit_interval_ms: int = 100) -> None:
        super().__init__(commit_interval_ms)
        self.in_transaction = False
        self._txn_started_ms = 0
        self._after_commit: list[Action] = []
        self._revoking: set[TP] = set()

    def polled(self, positions: Positions, now_ms: int) -> list[Action]:
        if not positions:
            return []
        if self.in_transaction:
            return [Process()]
        self.in_transaction = True
        self._txn_started_ms = now_ms
        return [BeginTransaction(), Process()]

    def tick(self, now_ms: int) -> list[Action]:
        if not self.in_transaction or now_ms - self._txn_started_ms < self.commit_interval_ms:
            return []
        return [CommitTransaction(self._txn_positions())]

    def committed(self, positions: Positions) -> list[Action]:
        super().committed(positions)
        self.in_transaction = False
        actions, self._after_commit = self._after_commit, []
        self._forget(self._revoking)
        self._revoking.clear()
        return actions

    def commit_failed(
        self, error: BaseException, *, retriable: bool = True, fatal: bool = False
    ) -> list[Action]:
        self.in_transaction = False
        if fatal:
            self.stopping = True
            return [Stop(error)]
        after, self._after_commit = self._after_commit, []
        revoking, self._revoking = self._revoking, set()
        self._forget(revoking)
        self._reset_to_committed()
        return [AbortTransaction(), Rewind(), *(a for a in after if isinstance(a, Stop))]

    def failed(self, error: BaseException) -> list[Action]:
        self.stopping = True
        self._reset_to_committed()
        if self.in_transaction:
            self.in_transaction = False
            return [AbortTransaction(), Stop(error)]
        return [Stop(error)]

    def revoked(self, partitions: Iterable[TP]) -> list[Action]:
        tps = set(partitions)
        if self.in_transaction:
            self._revoking |= tps
            return [CommitTransaction(self._txn_positions())]
        self._forget(tps)
        return []

    def stop(self) -> list[Action]:
        self.stopping = True
        if self.in_transaction:
            self._after_commit.append(Stop())
            return [CommitTransaction(self._txn_positions())]
        return [Stop()]

    def lost(self, partitions: Iterable[TP]) -> list[Action]:
        # The open transaction holds records of partitions this member no longer owns: its offset
        # commit would be refused (KIP-447 generation check), so abort it and start again from the
        # committed positions of what is left.
        self._forget(partitions)
        if not self.in_transaction:
            return []
        self.in_transaction = False
        self._reset_to_committed()
        return [AbortTransaction(), Rewind()]

    def _txn_positions(self) -> Positions:
        return self._dirty()


@dataclass
class _Claimed:
    epoch: int
    positions: Positions = field(default_factory=dict)


class ExactlyOnceSql(Discipline):
    """Results and positions in one database transaction, fenced by per-partition epochs."""

    def __init__(self, commit_interval_ms: int = 100) -> None:
        super().__init__(commit_interval_ms)
        self.epochs: dict[TP, int] = {}
        self._claiming: set[TP] = set()
        self._in_flight = False
        self._after_commit: list[Action] = []
        self._revoking: set[TP] = set()

    def assigned(self, partitions: Iterable[TP], now_ms: int) -> list[Action]:
        tps = frozenset(partitions) - frozenset(self.epochs)
        if not tps:
            return []
        self._claiming |= tps
        return [Claim(tps)]

    def claimed(self, claims: Mapping[TP, tuple[int, int]]) -> list[Action]:
        seek: Positions = {}
        for tp, (offset, epoch) in claims.items():
            self._claiming.discard(tp)
            self.epochs[tp] = epoch
            if offset >= 0:
                self.committed_positions[tp] = offset
                self.processed_positions[tp] = offset
            seek[tp] = offset
        return [Seek(seek)]

    def polled(self, positions: Positions, now_ms: int) -> list[Action]:
        if not positions:
            return []
        return [Process(frozenset(self.epochs))]

    def tick(self, now_ms: int) -> list[Action]:
        if self._in_flight or not self._due(now_ms):
            return []
        self._last_commit_ms = now_ms
        return self._commit_dirty()

    def _commit_dirty(self) -> list[Action]:
        dirty = self._dirty(self.epochs)
        if not dirty:
            return []
        self._in_flight = True
        return [Flush()]  # dead letters first; acknowledged() then asks for the database commit

    def acknowledged(self) -> list[Action]:
        if not self._in_flight:
            return []
        dirty = self._dirty(self.epochs)
        if not dirty:
            self._in_flight = False
            return self.committed({})
        return [SqlCommit({tp: (o, self.epochs[tp]) for tp, o in dirty.items()})]

    def delivery_failed(self, error: BaseException) -> list[Action]:
        # A dead letter was not acknowledged: do not commit past it; process again from the database.
        self._in_flight = False
        return self._rewind_claimed(error=None)

    def committed(self, positions: Positions) -> list[Action]:
        super().committed(positions)
        self._in_flight = False
        # Also to Kafka, for lag tools; never read back by this library.
        actions: list[Action] = [Commit(dict(positions), sync=False)] if positions else []
        self._forget(self._revoking)
        for tp in self._revoking:
            self.epochs.pop(tp, None)
        self._revoking.clear()
        after, self._after_commit = self._after_commit, []
        return actions + after

    def fenced(self, partitions: Iterable[TP]) -> list[Action]:
        """Another instance claimed these partitions: this one is a zombie for them."""
        self._in_flight = False
        for tp in partitions:
            self.epochs.pop(tp, None)
            self._forget([tp])
        return self._rewind_claimed(error=None)

    def commit_failed(
        self, error: BaseException, *, retriable: bool = True, fatal: bool = False
    ) -> list[Action]:
        self._in_flight = False
        return self._rewind_claimed(error=error if fatal else None)

    def _rewind_claimed(self, error: BaseException | None) -> list[Action]:
        self._forget(self._revoking)
        for tp in self._revoking:
            self.epochs.pop(tp, None)
        self._revoking.clear()
        self._reset_to_committed(self.epochs)
        # A partition with no position in the database yet starts again where a new one would
        # (-1: auto.offset.reset), never from Kafka's committed offsets, which this mode does not own.
        back = {tp: self.committed_positions.get(tp, -1) for tp in self.epochs}
        actions: list[Action] = [Rewind(back)]
        after, self._after_commit = self._after_commit, []
        if error is not None:
            return [*actions, Stop(error)]
        return actions + [a for a in after if isinstance(a, Stop)]

    def failed(self, error: BaseException) -> list[Action]:
        self.stopping = True
        return [Rewind(), Stop(error)]

    def lost(self, partitions: Iterable[TP]) -> list[Action]:
        return self.fenced(partitions)

    def revoked(self, partitions: Iterable[TP]) -> list[Action]:
        tps = set(partitions)
        if not self._in_flight and self._dirty(tps & set(self.epochs)):
            self._revoking |= tps
            return self._commit_dirty()
        self._forget(tps)
        for tp in tps:
            self.epochs.pop(tp, None)
        return []

    def stop(self) -> list[Action]:
        self.stopping = True
        actions = [] if self._in_flight else self._commit_dirty()
        if actions:
            self._after_commit.append(Stop())
            return actions
        return [Stop()]


def machine_for(guarantee: str, *, sql: bool, commit_interval_ms: int | None) -> Discipline:
    """The machine of a guarantee (``guarantee`` as :class:`~odradek.stream.config.Guarantee` value)."""
    if guarantee == "at-most-once":
        return AtMostOnce()
    if guarantee == "at-least-once":
        return AtLeastOnce(1000 if commit_interval_ms is None else commit_interval_ms)
    if guarantee == "exactly-once":
        interval = 100 if commit_interval_ms is None else commit_interval_ms
        return ExactlyOnceSql(interval) if sql else ExactlyOnceKafka(interval)
    raise ValueError(f"unknown guarantee {guarantee!r}")
