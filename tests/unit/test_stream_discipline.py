"""The commit discipline of each guarantee, driven by scripted events without a broker.

Besides the scripted sequences, a property test replays random event sequences against a model of
what was processed, acknowledged and committed, and checks each guarantee's invariant at every step:
at-most-once never commits less than it processes; at-least-once never commits past an unacknowledged
output; exactly-once never commits positions outside a committed transaction.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.stream import discipline as d

A = ("in", 0)
B = ("in", 1)


def kinds(actions):
    return [type(a).__name__ for a in actions]


# -- at-most-once ---------------------------------------------------------------------------------


def test_at_most_once_commits_before_processing():
    m = d.AtMostOnce()
    acts = m.polled({A: 10, B: 5}, 0)
    assert acts == [d.Commit({A: 10, B: 5}, sync=True)]
    acts = m.committed({A: 10, B: 5})
    assert acts == [d.Process(frozenset({A, B})), d.Flush(wait=False)]
    assert m.committed_positions == {A: 10, B: 5}


def test_at_most_once_does_not_process_what_it_could_not_commit():
    m = d.AtMostOnce()
    m.polled({A: 10, B: 5}, 0)
    # Only A's commit came back: B's records are not processed here (B's next owner starts at its old
    # position, so processing them here could repeat them).
    acts = m.committed({A: 10})
    assert acts[0] == d.Process(frozenset({A}))
    m.polled({A: 12}, 1)
    acts = m.commit_failed(RuntimeError("rebalance"))
    assert kinds(acts) == ["Process", "Rewind"]
    assert acts[0].only == frozenset()


def test_at_most_once_refuses_a_second_poll_before_the_commit_answer():
    m = d.AtMostOnce()
    m.polled({A: 1}, 0)
    with pytest.raises(d.DisciplineError):
        m.polled({A: 2}, 0)


def test_at_most_once_processing_failure_stops_without_touching_the_committed_position():
    m = d.AtMostOnce()
    m.polled({A: 3}, 0)
    m.committed({A: 3})
    err = RuntimeError("boom")
    # What the records before the failing one gave is still sent (their position is committed).
    assert m.failed(err) == [d.Flush(wait=True), d.Stop(err)]
    assert m.committed_positions == {A: 3}


# -- at-least-once --------------------------------------------------------------------------------


def test_at_least_once_commits_only_after_the_outputs_are_acknowledged():
    m = d.AtLeastOnce(commit_interval_ms=1000)
    assert m.polled({A: 10}, 0) == [d.Process()]
    assert m.processed({A: 10}) == []
    assert m.tick(0) == []  # the interval starts
    assert m.tick(999) == []
    assert m.tick(1000) == [d.Flush()]
    assert m.tick(2500) == []  # a flush is already pending: nothing more until it is answered
    assert m.acknowledged() == [d.Commit({A: 10}, sync=False)]
    m.committed({A: 10})
    assert m.tick(3000) == []  # nothing new processed: nothing to flush or commit


def test_at_least_once_delivery_failure_rewinds_to_the_last_commit():
    m = d.AtLeastOnce(commit_interval_ms=0)
    m.polled({A: 10, B: 4}, 0)
    m.processed({A: 10, B: 4})
    assert m.tick(0) == [d.Flush()]
    m.acknowledged()
    m.committed({A: 10, B: 4})
    m.polled({A: 20, B: 9}, 1)
    m.processed({A: 20, B: 9})
    assert m.tick(1) == [d.Flush()]
    acts = m.delivery_failed(RuntimeError("timed out"))
    assert acts == [d.Rewind({A: 10, B: 4}, partitions=None)]
    assert m.processed_positions == {A: 10, B: 4}
    # A partition never committed rewinds to the group's committed offset (the loop asks the broker).
    m2 = d.AtLeastOnce(commit_interval_ms=0)
    m2.polled({A: 3}, 0)
    m2.processed({A: 3})
    m2.tick(0)
    assert m2.delivery_failed(RuntimeError("x")) == [d.Rewind(None, partitions=frozenset({A}))]


def test_at_least_once_revocation_flushes_then_commits_synchronously_then_forgets():
    m = d.AtLeastOnce(commit_interval_ms=60_000)
    m.polled({A: 7, B: 3}, 0)
    m.processed({A: 7, B: 3})
    assert m.revoked([A]) == [d.Flush()]
    assert m.acknowledged() == [d.Commit({A: 7, B: 3}, sync=True)]
    assert A not in m.processed_positions and B in m.processed_positions


def test_at_least_once_revocation_with_nothing_new_commits_nothing():
    m = d.AtLeastOnce()
    assert m.revoked([A]) == []


def test_at_least_once_stop_commits_what_came_before_the_failing_record():
    m = d.AtLeastOnce(commit_interval_ms=60_000)
    m.polled({A: 10}, 0)
    m.processed({A: 6})  # records 0..5 done; record 6 failed for good
    err = RuntimeError("poison")
    assert m.failed(err) == [d.Flush()]
    assert m.acknowledged() == [d.Commit({A: 6}, sync=True), d.Stop(err)]


def test_at_least_once_positions_never_go_back_without_a_rewind():
    m = d.AtLeastOnce()
    m.processed({A: 10})
    with pytest.raises(d.DisciplineError):
        m.processed({A: 9})


def test_at_least_once_lost_partitions_are_never_committed():
    m = d.AtLeastOnce(commit_interval_ms=0)
    m.polled({A: 5, B: 5}, 0)
    m.processed({A: 5, B: 5})
    m.lost([A])
    assert m.tick(0) == [d.Flush()]
    assert m.acknowledged() == [d.Commit({B: 5}, sync=False)]


# -- exactly-once (Kafka transactions) -----------------------------------------------------------


def test_exactly_once_outputs_and_positions_in_one_transaction_per_interval():
    m = d.ExactlyOnceKafka(commit_interval_ms=100)
    assert m.polled({A: 5}, 0) == [d.BeginTransaction(), d.Process()]
    m.processed({A: 5})
    assert m.polled({A: 9}, 50) == [d.Process()]  # same transaction
    m.processed({A: 9})
    assert m.tick(99) == []
    assert m.tick(100) == [d.CommitTransaction({A: 9})]
    assert m.committed({A: 9}) == []
    assert not m.in_transaction
    assert m.polled({A: 12}, 101) == [d.BeginTransaction(), d.Process()]


def test_exactly_once_failed_commit_aborts_and_rewinds():
    m = d.ExactlyOnceKafka(commit_interval_ms=0)
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    m.tick(0)
    m.committed({A: 5})
    m.polled({A: 9}, 1)
    m.processed({A: 9})
    assert m.tick(1) == [d.CommitTransaction({A: 9})]
    acts = m.commit_failed(RuntimeError("coordinator moved"), retriable=True)
    assert acts == [d.AbortTransaction(), d.Rewind()]
    assert m.processed_positions == {A: 5}  # back to the committed position, not past the aborted batch
    assert not m.in_transaction


def test_exactly_once_fenced_producer_stops_the_instance():
    m = d.ExactlyOnceKafka(commit_interval_ms=0)
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    m.tick(0)
    fenced = RuntimeError("fenced")
    assert m.commit_failed(fenced, fatal=True) == [d.Stop(fenced)]
    assert m.stopping


def test_exactly_once_processing_failure_aborts_then_stops():
    m = d.ExactlyOnceKafka()
    m.polled({A: 5}, 0)
    err = RuntimeError("poison")
    assert m.failed(err) == [d.AbortTransaction(), d.Stop(err)]


def test_exactly_once_revocation_commits_the_open_transaction_first():
    m = d.ExactlyOnceKafka(commit_interval_ms=60_000)
    m.polled({A: 5, B: 2}, 0)
    m.processed({A: 5, B: 2})
    assert m.revoked([A]) == [d.CommitTransaction({A: 5, B: 2})]
    m.committed({A: 5, B: 2})
    assert A not in m.processed_positions and B in m.committed_positions


def test_exactly_once_stop_commits_then_stops():
    m = d.ExactlyOnceKafka(commit_interval_ms=60_000)
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    assert m.stop() == [d.CommitTransaction({A: 5})]
    assert m.committed({A: 5}) == [d.Stop()]


def test_exactly_once_lost_partitions_abort_the_open_transaction():
    m = d.ExactlyOnceKafka(commit_interval_ms=60_000)
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    assert m.lost([A]) == [d.AbortTransaction(), d.Rewind()]
    assert not m.in_transaction


# -- exactly-once into SQL ------------------------------------------------------------------------


def test_exactly_once_sql_claims_on_assignment_and_seeks_to_the_stored_positions():
    m = d.ExactlyOnceSql(commit_interval_ms=0)
    assert m.assigned([A, B], 0) == [d.Claim(frozenset({A, B}))]
    assert m.claimed({A: (40, 3), B: (-1, 1)}) == [d.Seek({A: 40, B: -1})]
    assert m.epochs == {A: 3, B: 1}
    # Records of a partition not claimed are not processed.
    assert m.polled({A: 45, ("in", 2): 3}, 0) == [d.Process(frozenset({A, B}))]


def test_exactly_once_sql_commits_positions_with_their_epochs_after_dead_letters_are_flushed():
    m = d.ExactlyOnceSql(commit_interval_ms=0)
    m.assigned([A], 0)
    m.claimed({A: (40, 3)})
    m.polled({A: 45}, 0)
    m.processed({A: 45})
    assert m.tick(0) == [d.Flush()]
    assert m.acknowledged() == [d.SqlCommit({A: (45, 3)})]
    assert m.committed({A: 45}) == [d.Commit({A: 45}, sync=False)]


def test_exactly_once_sql_fenced_drops_the_partition_and_rewinds_the_rest():
    m = d.ExactlyOnceSql(commit_interval_ms=0)
    m.assigned([A, B], 0)
    m.claimed({A: (40, 3), B: (10, 1)})
    m.polled({A: 45, B: 12}, 0)
    m.processed({A: 45, B: 12})
    m.tick(0)
    m.acknowledged()
    acts = m.fenced([A])
    assert acts == [d.Rewind({B: 10}, partitions=None)]
    assert m.epochs == {B: 1}
    assert m.processed_positions == {B: 10}
    # A comes back only through a new assignment (a new claim, a new epoch).
    assert m.assigned([A], 1) == [d.Claim(frozenset({A}))]


def test_exactly_once_sql_database_failure_rewinds_and_goes_on():
    m = d.ExactlyOnceSql(commit_interval_ms=0)
    m.assigned([A], 0)
    m.claimed({A: (40, 3)})
    m.polled({A: 45}, 0)
    m.processed({A: 45})
    m.tick(0)
    m.acknowledged()
    assert m.commit_failed(RuntimeError("connection lost")) == [d.Rewind({A: 40})]
    assert m.processed_positions == {A: 40}


def test_exactly_once_sql_never_rewinds_to_kafkas_offsets():
    # A partition with no position in the database restarts where a new one would (auto.offset.reset),
    # not from the group's offsets in Kafka, which this mode does not own.
    m = d.ExactlyOnceSql(commit_interval_ms=0)
    m.assigned([A], 0)
    m.claimed({A: (-1, 1)})
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    m.tick(0)
    m.acknowledged()
    assert m.commit_failed(RuntimeError("deadlock")) == [d.Rewind({A: -1})]


def test_exactly_once_sql_revocation_commits_first():
    m = d.ExactlyOnceSql(commit_interval_ms=60_000)
    m.assigned([A], 0)
    m.claimed({A: (0, 1)})
    m.polled({A: 5}, 0)
    m.processed({A: 5})
    assert m.revoked([A]) == [d.Flush()]
    assert m.acknowledged() == [d.SqlCommit({A: (5, 1)})]
    m.committed({A: 5})
    assert A not in m.epochs


# -- invariants under random event sequences ------------------------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["poll", "tick", "ack", "deliver_fail", "commit_fail", "revoke", "lost"]),
        st.sampled_from([A, B]),
        st.integers(1, 5),
    ),
    max_size=60,
)


class Model:
    """The loop's side for the property test: a log per partition, processed offsets, acks."""

    def __init__(self, m: d.Discipline) -> None:
        self.m = m
        self.read: dict = {A: 0, B: 0}  # next offset the consumer returns
        self.broker_committed: dict = {}
        self.processed: dict = {}  # what processing actually reached (next offset)
        self.acked: dict = {}  # outputs acknowledged up to (next offset)
        self.in_flight: dict = {}
        self.txn_open = False
        self.txn: dict = {}
        self.flushing = False

    def run(self, actions, batch=None):
        for a in actions:
            if isinstance(a, d.Process):
                for tp, o in (batch or {}).items():
                    if a.only is None or tp in a.only:
                        self.processed[tp] = o
                        self.in_flight[tp] = o
                        if self.txn_open:
                            self.txn[tp] = o
                self.run(
                    self.m.processed(
                        {tp: o for tp, o in (batch or {}).items() if a.only is None or tp in a.only}
                    )
                )
            elif isinstance(a, d.Flush):
                self.flushing = a.wait  # answered later by an "ack" or a "deliver_fail" event
            elif isinstance(a, d.Commit):
                self.check_commit(a.positions)
                self.broker_committed.update(a.positions)
                self.run(self.m.committed(a.positions))
            elif isinstance(a, d.BeginTransaction):
                assert not self.txn_open
                self.txn_open = True
                self.txn = {}
            elif isinstance(a, d.CommitTransaction):
                assert self.txn_open
                for tp, o in a.positions.items():
                    assert o <= self.processed.get(tp, 0)
                self.txn_open = False
                self.broker_committed.update(a.positions)
                self.run(self.m.committed(a.positions))
            elif isinstance(a, d.AbortTransaction):
                assert self.txn_open
                self.txn_open = False
            elif isinstance(a, d.Rewind):
                for tp in (A, B):
                    self.read[tp] = self.broker_committed.get(tp, 0)
                    self.in_flight.pop(tp, None)
            elif isinstance(a, d.Stop):
                pass

    def check_commit(self, positions):
        for tp, o in positions.items():
            if isinstance(self.m, d.AtLeastOnce):
                assert o <= self.acked.get(tp, 0), f"committed {tp}@{o} past acknowledged {self.acked}"


@pytest.mark.parametrize("kind", ["amo", "alo", "eos"])
@settings(max_examples=150, deadline=None, derandomize=True)
@given(events=EVENTS)
def test_random_events_keep_each_guarantees_invariant(kind, events):
    m = {"amo": d.AtMostOnce, "alo": lambda: d.AtLeastOnce(0), "eos": lambda: d.ExactlyOnceKafka(0)}[kind]()
    model = Model(m)
    now = 0
    for ev, tp, n in events:
        now += 1
        if m.stopping:
            break
        if ev == "poll":
            batch = {tp: model.read[tp] + n}
            model.read[tp] += n
            if kind == "amo":
                # at-most-once: nothing polled is processed before its position is committed
                acts = m.polled(batch, now)
                assert all(not isinstance(a, d.Process) for a in acts)
                for a in acts:
                    assert isinstance(a, d.Commit)
                    model.broker_committed.update(a.positions)
                    model.run(m.committed(a.positions), batch)
                    assert all(model.broker_committed[t] >= o for t, o in model.processed.items())
            else:
                model.run(m.polled(batch, now), batch)
        elif ev == "tick":
            model.run(m.tick(now))
        elif ev == "deliver_fail" and model.flushing:
            model.flushing = False
            model.run(m.delivery_failed(RuntimeError("x")))
        elif ev == "ack" and model.flushing:
            model.flushing = False
            model.acked.update(model.in_flight)
            model.run(m.acknowledged())
        elif ev == "commit_fail" and kind == "eos" and m.in_transaction:
            model.run(m.commit_failed(RuntimeError("x")))
            assert m.processed_positions == {
                t: o for t, o in m.committed_positions.items() if t in m.processed_positions
            }
        elif ev == "revoke" and kind != "amo":
            model.run(m.revoked([tp]))
        elif ev == "lost":
            model.run(m.lost([tp]))
        if kind == "eos":
            # Nothing is committed to the broker but through a transaction's commit.
            for t, o in model.broker_committed.items():
                assert o <= model.processed.get(t, 0)
