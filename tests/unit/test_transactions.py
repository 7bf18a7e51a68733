"""The transaction coordinator's state machine driven by hand: a fake clock (plain ints), a counting
producer-id allocator, and a spy on every state transition.

Expected behaviour is Apache Kafka's TransactionCoordinator / TransactionMetadata (KIP-98, KIP-360): the
checklist's section 2.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.coordinator import transactions as txn_module
from odradek.coordinator.transactions import (
    CONCURRENT_TRANSACTIONS,
    EPOCH_EXHAUSTED,
    INVALID_PRODUCER_EPOCH,
    INVALID_PRODUCER_ID_MAPPING,
    INVALID_REQUEST,
    INVALID_TRANSACTION_TIMEOUT,
    INVALID_TXN_STATE,
    NONE,
    PRODUCER_FENCED,
    Completion,
    TransactionCoordinator,
    TxnConfig,
    TxnMetadata,
    TxnState,
)

S = TxnState
COMPLETE = {S.COMPLETE_COMMIT, S.COMPLETE_ABORT}
PREPARE = {S.PREPARE_COMMIT, S.PREPARE_ABORT}
# The checklist's table (Kafka's TransactionState.validPreviousStates), written out independently.
ALLOWED_FROM: dict[TxnState, set[TxnState]] = {
    S.EMPTY: {S.EMPTY} | COMPLETE,
    S.ONGOING: {S.ONGOING, S.EMPTY} | COMPLETE,
    S.PREPARE_COMMIT: {S.ONGOING},
    S.PREPARE_ABORT: {S.ONGOING, S.PREPARE_EPOCH_FENCE},
    S.COMPLETE_COMMIT: {S.PREPARE_COMMIT},
    S.COMPLETE_ABORT: {S.PREPARE_ABORT},
    S.PREPARE_EPOCH_FENCE: {S.ONGOING},
    S.DEAD: {S.EMPTY} | COMPLETE,
}

TIMEOUT = 60_000
TID = "tx-1"
TP0, TP1 = ("t", 0), ("t", 1)
FIRST_PID = 1000


@dataclass
class Spy:
    taken: list[tuple[str, TxnState, TxnState]] = field(default_factory=list)
    illegal: list[tuple[str, TxnState, TxnState]] = field(default_factory=list)

    def take(self) -> list[tuple[str, TxnState, TxnState]]:
        out, self.taken = self.taken, []
        return out


@pytest.fixture(autouse=True)
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    """Every transition the coordinator takes must be an edge of the table; checked after each test."""
    record = Spy()
    real = TxnMetadata.transition

    def transition(self: TxnMetadata, to: TxnState) -> None:
        edge = (self.transactional_id, self.state, to)
        record.taken.append(edge)
        if self.state not in ALLOWED_FROM[to]:
            record.illegal.append(edge)
        real(self, to)

    monkeypatch.setattr(txn_module.TxnMetadata, "transition", transition)
    yield record
    assert record.illegal == [], f"illegal transitions: {record.illegal}"


def coordinator(**config: int) -> TransactionCoordinator:
    return TransactionCoordinator(itertools.count(FIRST_PID).__next__, TxnConfig(**config))


def started(c: TransactionCoordinator, tid: str = TID, now: int = 0) -> tuple[int, int]:
    """A producer with an open transaction on TP0: returns (producer id, epoch)."""
    r = c.init_producer_id(now, tid, TIMEOUT)
    assert r.error_code == NONE
    assert c.add_partitions(now, tid, r.producer_id, r.producer_epoch, [TP0]) == NONE
    return r.producer_id, r.producer_epoch


def finished(c: TransactionCoordinator, completion: Completion | None, now: int = 0) -> None:
    assert completion is not None
    c.complete(now, completion)


# --- InitProducerId -------------------------------------------------------------------------------


def test_new_transactional_id_gets_a_new_producer_id_and_epoch_zero(spy: Spy) -> None:
    c = coordinator()
    r = c.init_producer_id(5, TID, TIMEOUT)
    assert (r.error_code, r.producer_id, r.producer_epoch, r.completion) == (NONE, FIRST_PID, 0, None)
    assert c.txns[TID].state == S.EMPTY
    other = c.init_producer_id(5, "tx-2", TIMEOUT)
    assert other.producer_id == FIRST_PID + 1


def test_init_again_from_empty_or_complete_bumps_the_epoch() -> None:
    c = coordinator()
    assert c.init_producer_id(0, TID, TIMEOUT).producer_epoch == 0
    r = c.init_producer_id(1, TID, TIMEOUT)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (NONE, FIRST_PID, 1)
    for commit in (True, False):
        pid, epoch = r.producer_id, r.producer_epoch
        assert c.add_partitions(2, TID, pid, epoch, [TP0]) == NONE
        code, completion = c.end_txn(3, TID, pid, epoch, commit)
        assert code == NONE
        finished(c, completion)
        assert c.txns[TID].state == (S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT)
        r = c.init_producer_id(4, TID, TIMEOUT)
        assert (r.error_code, r.producer_id, r.producer_epoch) == (NONE, pid, epoch + 1)
        assert c.txns[TID].state == S.EMPTY
        assert c.txns[TID].partitions == set()


def test_init_updates_the_transaction_timeout() -> None:
    c = coordinator()
    c.init_producer_id(0, TID, TIMEOUT)
    c.init_producer_id(0, TID, 5_000)
    assert c.txns[TID].timeout_ms == 5_000


def test_epoch_exhausted_gets_a_new_producer_id() -> None:
    c = coordinator()
    c.init_producer_id(0, TID, TIMEOUT)
    c.txns[TID].producer_epoch = EPOCH_EXHAUSTED - 1
    r = c.init_producer_id(1, TID, TIMEOUT)
    assert (r.producer_id, r.producer_epoch) == (FIRST_PID, 32766)
    r = c.init_producer_id(2, TID, TIMEOUT)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (NONE, FIRST_PID + 1, 0)
    r = c.init_producer_id(3, TID, TIMEOUT)
    assert (r.producer_id, r.producer_epoch) == (FIRST_PID + 1, 1)


def test_init_while_ongoing_fences_aborts_and_asks_to_retry(spy: Spy) -> None:
    c = coordinator()
    pid, epoch = started(c)
    c.add_offsets(0, TID, pid, epoch, "g1")
    spy.take()
    r = c.init_producer_id(10, TID, TIMEOUT)
    assert r.error_code == CONCURRENT_TRANSACTIONS
    assert r.completion == Completion(TID, pid, epoch + 1, False, frozenset({TP0}), frozenset({"g1"}))
    assert [(a, b) for _, a, b in spy.take()] == [
        (S.ONGOING, S.PREPARE_EPOCH_FENCE),
        (S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT),
    ]
    assert c.init_producer_id(11, TID, TIMEOUT).error_code == CONCURRENT_TRANSACTIONS  # Prepare*: retry later
    assert c.add_partitions(11, TID, pid, epoch, [TP1], api_version=3) == PRODUCER_FENCED, (
        "the old epoch is fenced"
    )
    finished(c, r.completion, 12)
    again = c.init_producer_id(13, TID, TIMEOUT)
    assert (again.error_code, again.producer_id, again.producer_epoch) == (NONE, pid, epoch + 2)


@pytest.mark.parametrize("commit", [True, False])
def test_init_while_prepare_is_concurrent_transactions(commit: bool) -> None:
    c = coordinator()
    pid, epoch = started(c)
    code, completion = c.end_txn(1, TID, pid, epoch, commit)
    assert code == NONE
    r = c.init_producer_id(2, TID, TIMEOUT)
    assert (r.error_code, r.completion) == (CONCURRENT_TRANSACTIONS, None)
    assert c.txns[TID].state == (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT)
    assert c.txns[TID].producer_epoch == epoch


@pytest.mark.parametrize(("api_version", "code"), [(3, INVALID_PRODUCER_EPOCH), (4, PRODUCER_FENCED)])
def test_init_with_wrong_producer_id_or_epoch_is_fenced(api_version: int, code: int) -> None:
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    c.init_producer_id(0, TID, TIMEOUT)  # epoch 1, last epoch 0
    for pid, epoch in [(r.producer_id + 7, 1), (r.producer_id, 5)]:
        bad = c.init_producer_id(1, TID, TIMEOUT, pid, epoch, api_version=api_version)
        assert bad.error_code == code
    assert c.txns[TID].producer_epoch == 1
    ok = c.init_producer_id(2, TID, TIMEOUT, r.producer_id, 1, api_version=api_version)
    assert (ok.error_code, ok.producer_epoch) == (NONE, 2)


def test_init_retry_with_the_previous_epoch_returns_the_current_epoch() -> None:
    """KIP-360: InitProducerId(pid, epoch) whose answer was lost is retried with the same epoch; that epoch
    is now the last epoch, and Kafka answers with the current epoch without bumping again
    (TransactionMetadata.prepareIncrementProducerEpoch: expectedEpoch == lastProducerEpoch)."""
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    first = c.init_producer_id(1, TID, TIMEOUT, r.producer_id, 0, api_version=4)
    assert (first.error_code, first.producer_epoch) == (NONE, 1)
    retry = c.init_producer_id(2, TID, TIMEOUT, r.producer_id, 0, api_version=4)
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (NONE, r.producer_id, 1)


def test_init_with_the_epoch_a_timeout_fenced_is_fenced() -> None:
    """A fence (timeout or a new instance) sets Kafka's lastProducerEpoch to -1, so the fenced producer's
    InitProducerId(pid, old epoch) no longer matches anything: PRODUCER_FENCED
    (TransactionCoordinator.endTransaction, isEpochFence)."""
    c = coordinator()
    pid, epoch = started(c)
    completions = c.expire(TIMEOUT + 1)
    assert [x.producer_epoch for x in completions] == [epoch + 1]
    finished(c, completions[0], TIMEOUT + 2)
    r = c.init_producer_id(TIMEOUT + 3, TID, TIMEOUT, pid, epoch, api_version=4)
    assert r.error_code == PRODUCER_FENCED


@pytest.mark.parametrize("timeout_ms", [900_001, 0, -1])
def test_transaction_timeout_out_of_range(timeout_ms: int) -> None:
    c = coordinator()
    assert c.init_producer_id(0, TID, timeout_ms).error_code == INVALID_TRANSACTION_TIMEOUT
    assert c.init_producer_id(0, TID, 900_000).error_code == NONE
    small = coordinator(max_timeout_ms=1_000)
    assert small.init_producer_id(0, TID, 1_001).error_code == INVALID_TRANSACTION_TIMEOUT
    assert TID not in small.txns


def test_empty_transactional_id_is_invalid_request() -> None:
    c = coordinator()
    assert c.init_producer_id(0, "", TIMEOUT).error_code == INVALID_REQUEST
    assert c.txns == {}


# --- AddPartitions / AddOffsets -------------------------------------------------------------------


def test_add_partitions_unknown_id_or_producer_is_invalid_mapping() -> None:
    c = coordinator()
    assert c.add_partitions(0, TID, FIRST_PID, 0, [TP0]) == INVALID_PRODUCER_ID_MAPPING
    r = c.init_producer_id(0, TID, TIMEOUT)
    assert c.add_partitions(0, TID, r.producer_id + 1, 0, [TP0]) == INVALID_PRODUCER_ID_MAPPING
    assert c.add_offsets(0, TID, r.producer_id + 1, 0, "g") == INVALID_PRODUCER_ID_MAPPING
    assert c.add_offsets(0, "nope", r.producer_id, 0, "g") == INVALID_PRODUCER_ID_MAPPING
    assert c.txns[TID].state == S.EMPTY


@pytest.mark.parametrize(("api_version", "code"), [(0, 47), (1, 47), (2, 90), (3, 90)])
def test_add_partitions_wrong_epoch(api_version: int, code: int) -> None:
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    c.init_producer_id(0, TID, TIMEOUT)
    stale = r.producer_epoch
    assert c.add_partitions(0, TID, r.producer_id, stale, [TP0], api_version=api_version) == code
    assert c.add_offsets(0, TID, r.producer_id, stale, "g", api_version=api_version) == code
    assert c.txns[TID].state == S.EMPTY


def test_first_add_starts_the_transaction_and_its_timeout() -> None:
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    assert c.next_deadline() is None
    assert c.add_partitions(100, TID, r.producer_id, r.producer_epoch, [TP0]) == NONE
    txn = c.txns[TID]
    assert (txn.state, txn.start_ms, txn.partitions) == (S.ONGOING, 100, {TP0})
    assert c.next_deadline() == 100 + TIMEOUT
    assert c.add_partitions(500, TID, r.producer_id, r.producer_epoch, [TP1]) == NONE
    assert c.add_offsets(600, TID, r.producer_id, r.producer_epoch, "g") == NONE
    assert (txn.start_ms, txn.partitions, txn.groups) == (100, {TP0, TP1}, {"g"})
    assert c.next_deadline() == 100 + TIMEOUT, "later adds do not restart the timeout"


def test_add_offsets_alone_starts_a_transaction() -> None:
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    assert c.add_offsets(7, TID, r.producer_id, r.producer_epoch, "g") == NONE
    code, completion = c.end_txn(8, TID, r.producer_id, r.producer_epoch, True)
    assert code == NONE and completion is not None
    assert (completion.partitions, completion.groups, completion.commit) == (
        frozenset(),
        frozenset({"g"}),
        True,
    )


@pytest.mark.parametrize("commit", [True, False])
def test_add_during_prepare_is_concurrent_transactions(commit: bool) -> None:
    c = coordinator()
    pid, epoch = started(c)
    c.end_txn(1, TID, pid, epoch, commit)
    assert c.add_partitions(2, TID, pid, epoch, [TP1]) == CONCURRENT_TRANSACTIONS
    assert c.add_offsets(2, TID, pid, epoch, "g") == CONCURRENT_TRANSACTIONS


def test_verify_partition_only_for_added_partitions_of_the_current_producer() -> None:
    c = coordinator()
    pid, epoch = started(c)
    assert c.verify_partition(TID, pid, epoch, TP0)
    assert not c.verify_partition(TID, pid, epoch, TP1)
    assert not c.verify_partition(TID, pid, epoch + 1, TP0)
    assert not c.verify_partition(None, pid, epoch, TP0)
    c.end_txn(1, TID, pid, epoch, True)
    assert not c.verify_partition(TID, pid, epoch, TP0), "not while committing"


# --- EndTxn ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [True, False])
def test_end_txn_normal_path_and_retry(commit: bool, spy: Spy) -> None:
    c = coordinator()
    pid, epoch = started(c)
    c.add_partitions(1, TID, pid, epoch, [TP1])
    spy.take()
    code, completion = c.end_txn(2, TID, pid, epoch, commit)
    assert code == NONE
    assert completion == Completion(TID, pid, epoch, commit, frozenset({TP0, TP1}), frozenset())
    prepare, done = (S.PREPARE_COMMIT, S.COMPLETE_COMMIT) if commit else (S.PREPARE_ABORT, S.COMPLETE_ABORT)
    assert c.txns[TID].state == prepare
    assert c.end_txn(3, TID, pid, epoch, commit) == (CONCURRENT_TRANSACTIONS, None)
    assert c.end_txn(3, TID, pid, epoch, not commit) == (INVALID_TXN_STATE, None)
    finished(c, completion, 4)
    assert c.txns[TID].state == done
    assert c.txns[TID].partitions == set()
    assert c.next_deadline() is None
    assert c.end_txn(5, TID, pid, epoch, commit) == (NONE, None)
    assert c.end_txn(5, TID, pid, epoch, not commit) == (INVALID_TXN_STATE, None)
    assert [(a, b) for _, a, b in spy.take()] == [(S.ONGOING, prepare), (prepare, done)]


@pytest.mark.parametrize("commit", [True, False])
def test_end_txn_on_empty_is_invalid_txn_state(commit: bool) -> None:
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    assert c.end_txn(1, TID, r.producer_id, r.producer_epoch, commit) == (INVALID_TXN_STATE, None)
    assert c.txns[TID].state == S.EMPTY


@pytest.mark.parametrize(("api_version", "code"), [(0, 47), (1, 47), (2, 90), (4, 90)])
def test_end_txn_wrong_producer(api_version: int, code: int) -> None:
    c = coordinator()
    pid, epoch = started(c)
    assert c.end_txn(1, TID, pid, epoch - 1, True, api_version) == (code, None)
    assert c.end_txn(1, TID, pid, epoch + 1, True, api_version) == (code, None)
    assert c.end_txn(1, TID, pid + 1, epoch, True, api_version) == (INVALID_PRODUCER_ID_MAPPING, None)
    assert c.end_txn(1, "other", pid, epoch, True, api_version) == (INVALID_PRODUCER_ID_MAPPING, None)
    assert c.txns[TID].state == S.ONGOING


# --- time -----------------------------------------------------------------------------------------


def test_expire_fences_and_aborts_timed_out_transactions(spy: Spy) -> None:
    c = coordinator()
    pid, epoch = started(c, now=1_000)
    started(c, "tx-2", now=30_000)
    assert c.expire(1_000 + TIMEOUT - 1) == []
    spy.take()
    out = c.expire(1_000 + TIMEOUT)
    assert out == [Completion(TID, pid, epoch + 1, False, frozenset({TP0}), frozenset())]
    assert [(t, a, b) for t, a, b in spy.take()] == [
        (TID, S.ONGOING, S.PREPARE_EPOCH_FENCE),
        (TID, S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT),
    ]
    assert c.txns["tx-2"].state == S.ONGOING
    assert c.add_partitions(1, TID, pid, epoch, [TP1], api_version=3) == PRODUCER_FENCED
    assert c.end_txn(1, TID, pid, epoch, True, api_version=3) == (PRODUCER_FENCED, None)
    later = c.expire(10**9)
    assert [x.transactional_id for x in later] == ["tx-2"], (
        "a transaction in PrepareAbort is not aborted twice"
    )
    finished(c, out[0])
    assert c.txns[TID].state == S.COMPLETE_ABORT


def test_expire_at_the_last_epoch_still_fences_the_producer() -> None:
    """Kafka's prepareFenceProducerEpoch bumps any epoch below Short.MaxValue, 32766 included, so a zombie
    at 32766 is fenced; only a producer at 32767 cannot be (and no client is ever given 32767)."""
    c = coordinator()
    r = c.init_producer_id(0, TID, TIMEOUT)
    c.txns[TID].producer_epoch = EPOCH_EXHAUSTED  # 32766: the last epoch a client is given
    assert c.add_partitions(0, TID, r.producer_id, EPOCH_EXHAUSTED, [TP0]) == NONE
    (completion,) = c.expire(TIMEOUT)
    assert completion.producer_epoch == EPOCH_EXHAUSTED + 1
    finished(c, completion)
    assert c.add_partitions(1, TID, r.producer_id, EPOCH_EXHAUSTED, [TP0], api_version=3) == PRODUCER_FENCED


def test_expire_forgets_idle_transactional_ids() -> None:
    day = 86_400_000
    c = coordinator(id_expiration_ms=7 * day)
    c.init_producer_id(0, "idle", TIMEOUT)
    pid, epoch = started(c, "open")
    code, completion = c.end_txn(0, "open", pid, epoch, True)
    c.take_records()
    assert c.expire(7 * day) == []
    assert "idle" in c.txns
    out = c.expire(7 * day + 1)
    assert "idle" not in c.txns
    assert c.txns["open"].state == S.PREPARE_COMMIT, "a transaction being completed is never forgotten"
    assert out == []
    records = c.take_records()
    assert len(records) == 1
    finished(c, completion, 7 * day + 2)
    c.expire(14 * day + 3)
    assert c.txns == {}
    fresh = c.init_producer_id(14 * day + 4, "idle", TIMEOUT)
    assert (fresh.producer_epoch, fresh.producer_id) == (0, FIRST_PID + 2), "an expired id starts over"


def test_ongoing_transaction_is_aborted_by_timeout_not_forgotten() -> None:
    c = coordinator(id_expiration_ms=1_000)
    started(c)
    out = c.expire(TIMEOUT * 10)
    assert len(out) == 1
    assert c.txns[TID].state == S.PREPARE_ABORT


# --- journal and replay ---------------------------------------------------------------------------


def test_records_replay_to_identical_state_and_interrupted_completions() -> None:
    c = coordinator(id_expiration_ms=1_000_000)
    records: list[bytes] = []
    a_pid, a_epoch = started(c, "a")
    c.add_offsets(1, "a", a_pid, a_epoch, "g")
    _, commit_a = c.end_txn(2, "a", a_pid, a_epoch, True)  # interrupted in PrepareCommit
    b_pid, b_epoch = started(c, "b")
    _, abort_b = c.end_txn(3, "b", b_pid, b_epoch, False)
    finished(c, abort_b, 4)  # done
    started(c, "c")
    fence_c = c.init_producer_id(5, "c", TIMEOUT).completion  # interrupted in PrepareAbort
    c.init_producer_id(6, "gone", TIMEOUT)
    records += c.take_records()
    c.expire(2_000_000)  # forgets "gone" and "b"
    records += c.take_records()
    assert set(c.txns) == {"a", "c"}
    assert c.take_records() == []

    again = coordinator()
    interrupted = again.replay(records)
    assert again.txns == c.txns
    assert sorted(interrupted, key=lambda x: x.transactional_id) == [commit_a, fence_c]
    for completion in interrupted:
        again.complete(7, completion)
    assert again.txns["a"].state == S.COMPLETE_COMMIT
    assert again.txns["c"].state == S.COMPLETE_ABORT

    snap = coordinator()
    assert sorted(snap.replay(c.snapshot()), key=lambda x: x.transactional_id) == [commit_a, fence_c]
    assert snap.txns == c.txns


def test_every_change_is_recorded() -> None:
    c = coordinator()
    pid, epoch = started(c)
    assert len(c.take_records()) == 2
    c.add_partitions(1, TID, pid, epoch, [TP0])
    c.add_offsets(1, TID, pid, epoch, "g")
    assert len(c.take_records()) == 2
    c.add_partitions(1, TID, pid, epoch + 1, [TP0])
    c.end_txn(1, TID, pid, epoch + 1, True)
    assert c.take_records() == [], "refused requests change nothing"


# --- random events --------------------------------------------------------------------------------

IDS = ["a", "b", "c"]
_event = st.one_of(
    st.tuples(st.just("init"), st.sampled_from(IDS), st.booleans(), st.sampled_from([0, 3, 4])),
    st.tuples(st.just("add"), st.sampled_from(IDS), st.booleans(), st.sampled_from([TP0, TP1])),
    st.tuples(st.just("offsets"), st.sampled_from(IDS), st.booleans(), st.just("g")),
    st.tuples(st.just("end"), st.sampled_from(IDS), st.booleans(), st.booleans()),
    st.tuples(st.just("complete"), st.integers(0, 5), st.booleans(), st.none()),
    st.tuples(st.just("tick"), st.integers(1, 80_000), st.booleans(), st.none()),
    st.tuples(st.just("bump"), st.sampled_from(IDS), st.booleans(), st.none()),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(_event, max_size=80))
def test_random_events_keep_the_invariants(spy: Spy, events: list[tuple]) -> None:
    spy.take()
    c = coordinator(id_expiration_ms=200_000)
    now = 0
    client: dict[str, tuple[int, int]] = {}  # what each id's producer last got
    outstanding: list[Completion] = []
    journal: list[bytes] = []
    seen: dict[str, tuple[int, int]] = {}
    for kind, a, b, x in events:
        before = {k: v.state for k, v in c.txns.items()}
        completions: list[Completion] = []
        if kind == "init":
            pid, epoch = client.get(a, (-1, -1)) if b else (-1, -1)
            r = c.init_producer_id(now, a, TIMEOUT, pid, epoch, api_version=x)
            if r.error_code == NONE:
                client[a] = (r.producer_id, r.producer_epoch)
            if r.completion is not None:
                assert r.error_code == CONCURRENT_TRANSACTIONS
                completions.append(r.completion)
        elif kind in ("add", "offsets", "end") and a in client:
            pid, epoch = client[a]
            epoch = epoch - 1 if b else epoch
            if kind == "add":
                c.add_partitions(now, a, pid, epoch, [x])
            elif kind == "offsets":
                c.add_offsets(now, a, pid, epoch, x)
            else:
                _, completion = c.end_txn(now, a, pid, epoch, x)
                if completion is not None:
                    completions.append(completion)
        elif kind == "complete" and outstanding:
            done = outstanding.pop(a % len(outstanding))
            c.complete(now, done)
            assert c.txns[done.transactional_id].state in COMPLETE
        elif kind == "tick":
            now += a
            completions += c.expire(now)
        elif kind == "bump" and a in c.txns and b:
            # Jump close to the last epoch (32766 inits would be slow), journaled like any change.
            txn = c.txns[a]
            if txn.state in {S.EMPTY} | COMPLETE:
                txn.producer_epoch = max(txn.producer_epoch, EPOCH_EXHAUSTED - 1)
                c._changed(txn)
        taken = spy.take()
        # A completion for every Prepare entered, carrying the epoch the transaction now has.
        entered = [(t, to) for t, _, to in taken if to in PREPARE]
        assert sorted((x.transactional_id, x.commit) for x in completions) == sorted(
            (t, to == S.PREPARE_COMMIT) for t, to in entered
        )
        for completion in completions:
            txn = c.txns[completion.transactional_id]
            assert (txn.producer_id, txn.producer_epoch) == (
                completion.producer_id,
                completion.producer_epoch,
            )
        outstanding += completions
        # States change only through transition(): the last edge taken is the state now.
        for tid, txn in c.txns.items():
            last = [to for t, _, to in taken if t == tid]
            assert txn.state == (last[-1] if last else before.get(tid, S.EMPTY))
        # Epochs only grow for a producer id; a new id only after the epochs ran out.
        for tid, txn in c.txns.items():
            if tid in seen:
                old_pid, old_epoch = seen[tid]
                if txn.producer_id == old_pid:
                    assert txn.producer_epoch >= old_epoch
                else:
                    assert old_epoch >= EPOCH_EXHAUSTED, f"{tid}: new producer id before the epochs ran out"
            seen[tid] = (txn.producer_id, txn.producer_epoch)
            assert 0 <= txn.producer_epoch <= 32767
        for tid in list(seen):
            if tid not in c.txns:
                del seen[tid]
        journal += c.take_records()
        replayed = coordinator()
        interrupted = replayed.replay(journal)
        assert replayed.txns == c.txns
        assert sorted(interrupted, key=lambda x: x.transactional_id) == sorted(
            outstanding, key=lambda x: x.transactional_id
        )
    assert spy.illegal == []
