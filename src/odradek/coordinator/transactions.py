"""The transaction coordinator as a deterministic state machine (KIP-98, KIP-360; no I/O, no clock).

Each transactional id has a producer id and epoch, a timeout, and a state that only moves along Kafka's
edges. Requests come in with the time; ending a transaction yields a :class:`Completion` telling the
shell which partitions get a marker and which groups' staged offsets are applied or dropped. The shell
carries it out and calls :meth:`complete`. Every change is also queued as a record (``take_records``)
that the shell appends to a journal; replaying those records rebuilds the same state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

NONE = 0
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
TRANSACTIONAL_ID_NOT_FOUND = 105
PRODUCER_FENCED = 90

MAX_EPOCH = 32767
EPOCH_EXHAUSTED = MAX_EPOCH - 1  # from here a producer gets a new id instead of a higher epoch

TopicPartition = tuple[str, int]


class TxnState(Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"


_COMPLETE = {TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}
_PREPARE = {TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT}
# next state -> the states it may be entered from
_ALLOWED_FROM: dict[TxnState, set[TxnState]] = {
    TxnState.EMPTY: {TxnState.EMPTY} | _COMPLETE,
    TxnState.ONGOING: {TxnState.ONGOING, TxnState.EMPTY} | _COMPLETE,
    TxnState.PREPARE_COMMIT: {TxnState.ONGOING},
    TxnState.PREPARE_ABORT: {TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE},
    TxnState.COMPLETE_COMMIT: {TxnState.PREPARE_COMMIT},
    TxnState.COMPLETE_ABORT: {TxnState.PREPARE_ABORT},
    TxnState.PREPARE_EPOCH_FENCE: {TxnState.ONGOING},
    TxnState.DEAD: {TxnState.EMPTY} | _COMPLETE,
}


class IllegalTxnTransition(AssertionError):
    pass


@dataclass
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: set[TopicPartition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = 0

    def transition(self, to: TxnState) -> None:
        if self.state not in _ALLOWED_FROM[to]:
            raise IllegalTxnTransition(
                f"transaction {self.transactional_id}: {self.state.value} -> {to.value}"
            )
        self.state = to

    def to_record(self) -> bytes:
        return json.dumps(
            {
                "id": self.transactional_id,
                "pid": self.producer_id,
                "epoch": self.producer_epoch,
                "last_epoch": self.last_producer_epoch,
                "timeout": self.timeout_ms,
                "state": self.state.value,
                "partitions": sorted(self.partitions),
                "groups": sorted(self.groups),
                "start": self.start_ms,
                "updated": self.last_update_ms,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_record(cls, r: dict) -> TxnMetadata:  # type: ignore[type-arg]
        return cls(
            r["id"],
            r["pid"],
            r["epoch"],
            r["last_epoch"],
            r["timeout"],
            TxnState(r["state"]),
            {(t, p) for t, p in r["partitions"]},
            set(r["groups"]),
            r["start"],
            r["updated"],
        )


@dataclass(frozen=True)
class Completion:
    """What ending a transaction takes: markers on ``partitions``, staged offsets of ``groups``."""

    transactional_id: str
    producer_id: int
    producer_epoch: int  # the epoch the markers carry
    commit: bool
    partitions: frozenset[TopicPartition]
    groups: frozenset[str]


@dataclass(frozen=True)
class InitResult:
    error_code: int
    producer_id: int = -1
    producer_epoch: int = -1
    completion: Completion | None = None


@dataclass(frozen=True)
class TxnConfig:
    max_timeout_ms: int = 900000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604800000  # transactional.id.expiration.ms


class TransactionCoordinator:
    def __init__(self, allocate_producer_id: Callable[[], int], config: TxnConfig | None = None) -> None:
        self.config = config or TxnConfig()
        self.allocate_producer_id = allocate_producer_id
        self.txns: dict[str, TxnMetadata] = {}
        self._records: list[bytes] = []

    # --- durability -------------------------------------------------------------------------------

    def _changed(self, txn: TxnMetadata) -> None:
        self._records.append(txn.to_record())

    def take_records(self) -> list[bytes]:
        out, self._records = self._records, []
        return out

    def replay(self, records: Iterable[bytes]) -> list[Completion]:
        """Rebuild from journal records; returns the completions a crash interrupted (to finish now)."""
        for raw in records:
            r = json.loads(raw)
            if r.get("deleted"):
                self.txns.pop(r["id"], None)
            else:
                self.txns[r["id"]] = TxnMetadata.from_record(r)
        return [
            self._completion(t, t.state == TxnState.PREPARE_COMMIT)
            for t in self.txns.values()
            if t.state in _PREPARE
        ]

    def snapshot(self) -> list[bytes]:
        return [t.to_record() for t in self.txns.values()]

    # --- InitProducerId ---------------------------------------------------------------------------

    def init_producer_id(
        self,
        now_ms: int,
        transactional_id: str,
        timeout_ms: int,
        producer_id: int = -1,
        producer_epoch: int = -1,
        api_version: int = 0,
    ) -> InitResult:
        if not transactional_id:
            return InitResult(INVALID_REQUEST)
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            return InitResult(INVALID_TRANSACTION_TIMEOUT)
        txn = self.txns.get(transactional_id)
        if txn is None:
            txn = TxnMetadata(
                transactional_id,
                self.allocate_producer_id(),
                0,
                -1,
                timeout_ms,
                TxnState.EMPTY,
                last_update_ms=now_ms,
            )
            self.txns[transactional_id] = txn
            self._changed(txn)
            return InitResult(NONE, txn.producer_id, txn.producer_epoch)
        if producer_id >= 0 and not (
            producer_id == txn.producer_id and producer_epoch in (txn.producer_epoch, txn.last_producer_epoch)
        ):
            return InitResult(PRODUCER_FENCED if api_version >= 4 else INVALID_PRODUCER_EPOCH)
        if txn.state in _PREPARE or txn.state == TxnState.PREPARE_EPOCH_FENCE:
            return InitResult(CONCURRENT_TRANSACTIONS)
        if (
            producer_id >= 0
            and producer_epoch == txn.last_producer_epoch != txn.producer_epoch
            and txn.state in (TxnState.EMPTY, *_COMPLETE)
        ):
            # KIP-360: a retry of the InitProducerId that already bumped the epoch gets the same answer.
            return InitResult(NONE, txn.producer_id, txn.producer_epoch)
        if txn.state == TxnState.ONGOING:
            # A new instance of the producer: fence the old one and abort what it left open. The caller
            # retries (CONCURRENT_TRANSACTIONS) and then gets the next epoch.
            completion = self._fence_and_abort(now_ms, txn)
            return InitResult(CONCURRENT_TRANSACTIONS, completion=completion)
        if txn.producer_epoch >= EPOCH_EXHAUSTED:
            txn.producer_id = self.allocate_producer_id()
            txn.last_producer_epoch = -1
            txn.producer_epoch = 0
        else:
            txn.last_producer_epoch = txn.producer_epoch
            txn.producer_epoch += 1
        txn.timeout_ms = timeout_ms
        txn.transition(TxnState.EMPTY)
        txn.partitions.clear()
        txn.groups.clear()
        txn.start_ms = -1
        txn.last_update_ms = now_ms
        self._changed(txn)
        return InitResult(NONE, txn.producer_id, txn.producer_epoch)

    # --- adding partitions and groups -------------------------------------------------------------

    def _check_producer(
        self, txn: TxnMetadata | None, producer_id: int, producer_epoch: int, fenced_code: int
    ) -> int:
        if txn is None or txn.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING
        if producer_epoch != txn.producer_epoch:
            return fenced_code
        if txn.state in _PREPARE or txn.state == TxnState.PREPARE_EPOCH_FENCE:
            return CONCURRENT_TRANSACTIONS
        return NONE

    def add_partitions(
        self,
        now_ms: int,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        api_version: int = 0,
    ) -> int:
        return self._add(now_ms, transactional_id, producer_id, producer_epoch, api_version, partitions, None)

    def add_offsets(
        self,
        now_ms: int,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        group_id: str,
        api_version: int = 0,
    ) -> int:
        return self._add(now_ms, transactional_id, producer_id, producer_epoch, api_version, (), group_id)

    def _add(
        self,
        now_ms: int,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        api_version: int,
        partitions: Iterable[TopicPartition],
        group_id: str | None,
    ) -> int:
        txn = self.txns.get(transactional_id)
        fenced = PRODUCER_FENCED if api_version >= 2 else INVALID_PRODUCER_EPOCH
        error = self._check_producer(txn, producer_id, producer_epoch, fenced)
        if error:
            return error
        assert txn is not None
        self._begin(now_ms, txn)
        txn.partitions.update(partitions)
        if group_id is not None:
            txn.groups.add(group_id)
        self._changed(txn)
        return NONE

    def _begin(self, now_ms: int, txn: TxnMetadata) -> None:
        if txn.state != TxnState.ONGOING:
            txn.transition(TxnState.ONGOING)
            txn.partitions.clear()
            txn.groups.clear()
            txn.start_ms = now_ms
        txn.last_update_ms = now_ms

    def verify_partition(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int, tp: TopicPartition
    ) -> bool:
        """May this producer write transactional data to ``tp`` now (it was added to its open txn)?"""
        txn = self.txns.get(transactional_id or "")
        return (
            txn is not None
            and txn.producer_id == producer_id
            and txn.producer_epoch == producer_epoch
            and txn.state == TxnState.ONGOING
            and tp in txn.partitions
        )

    def verify_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int) -> int:
        """TxnOffsetCommit: the producer must be the current one of this transactional id."""
        txn = self.txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING
        if producer_epoch < txn.producer_epoch:
            return INVALID_PRODUCER_EPOCH
        if producer_epoch != txn.producer_epoch:
            return PRODUCER_FENCED
        return NONE

    # --- EndTxn -----------------------------------------------------------------------------------

    def end_txn(
        self,
        now_ms: int,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        api_version: int = 0,
    ) -> tuple[int, Completion | None]:
        txn = self.txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING, None
        if producer_epoch != txn.producer_epoch:
            return (PRODUCER_FENCED if api_version >= 2 else INVALID_PRODUCER_EPOCH), None
        wanted_complete = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        wanted_prepare = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        if txn.state == wanted_complete:
            return NONE, None  # a retry of an EndTxn that already finished
        if txn.state == wanted_prepare or txn.state == TxnState.PREPARE_EPOCH_FENCE:
            return CONCURRENT_TRANSACTIONS, None
        if txn.state != TxnState.ONGOING:
            return INVALID_TXN_STATE, None
        txn.transition(wanted_prepare)
        txn.last_update_ms = now_ms
        self._changed(txn)
        return NONE, self._completion(txn, commit)

    def _completion(self, txn: TxnMetadata, commit: bool) -> Completion:
        return Completion(
            txn.transactional_id,
            txn.producer_id,
            txn.producer_epoch,
            commit,
            frozenset(txn.partitions),
            frozenset(txn.groups),
        )

    def complete(self, now_ms: int, completion: Completion) -> None:
        """The markers are written and the offsets settled: the transaction is over."""
        txn = self.txns[completion.transactional_id]
        txn.transition(TxnState.COMPLETE_COMMIT if completion.commit else TxnState.COMPLETE_ABORT)
        txn.partitions.clear()
        txn.groups.clear()
        txn.last_update_ms = now_ms  # start_ms stays: Kafka reports the ended transaction's start time
        self._changed(txn)

    # --- time -------------------------------------------------------------------------------------

    def _fence_and_abort(self, now_ms: int, txn: TxnMetadata) -> Completion:
        """Bump the epoch (the old producer is fenced everywhere the markers go), then abort."""
        txn.transition(TxnState.PREPARE_EPOCH_FENCE)
        if txn.producer_epoch < MAX_EPOCH:
            txn.producer_epoch += 1
        txn.last_producer_epoch = -1  # the fenced epoch may not come back as "a retry"
        txn.transition(TxnState.PREPARE_ABORT)
        txn.last_update_ms = now_ms
        self._changed(txn)
        return self._completion(txn, False)

    def expire(self, now_ms: int) -> list[Completion]:
        """Abort transactions past their timeout; forget ids idle past transactional.id.expiration.ms."""
        out = []
        for txn in list(self.txns.values()):
            if txn.state == TxnState.ONGOING and txn.start_ms + txn.timeout_ms <= now_ms:
                out.append(self._fence_and_abort(now_ms, txn))
            elif (
                txn.state in (TxnState.EMPTY, *_COMPLETE)
                and now_ms - txn.last_update_ms > self.config.id_expiration_ms
            ):
                txn.transition(TxnState.DEAD)
                del self.txns[txn.transactional_id]
                self._records.append(json.dumps({"id": txn.transactional_id, "deleted": True}).encode())
        return out

    def next_deadline(self) -> int | None:
        deadlines = [t.start_ms + t.timeout_ms for t in self.txns.values() if t.state == TxnState.ONGOING]
        return min(deadlines) if deadlines else None
