"""Committed offsets: every change returns journal records, and replaying them rebuilds the same map."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.coordinator.offsets import Committed, OffsetStore, TopicPartition


def c(offset: int, commit_ms: int = 0, metadata: str = "", leader_epoch: int = -1) -> Committed:
    return Committed(offset, leader_epoch, metadata, commit_ms)


def rebuilt(records: list[bytes]) -> OffsetStore:
    store = OffsetStore()
    store.replay(records)
    return store


def test_commit_and_fetch() -> None:
    store = OffsetStore()
    records = store.commit("g", {("t", 0): c(5, metadata="m", leader_epoch=3), ("t", 1): c(7)})
    assert len(records) == 1
    assert store.fetch("g", ("t", 0)) == Committed(5, 3, "m", 0)
    assert store.fetch("g", ("t", 2)) is None
    assert store.fetch("other", ("t", 0)) is None
    assert store.partitions("g") == [("t", 0), ("t", 1)]
    store.commit("g", {("t", 0): c(9, commit_ms=10)})
    assert store.fetch("g", ("t", 0)) == c(9, commit_ms=10), "a later commit replaces the earlier one"
    assert store.fetch("g", ("t", 1)) == c(7), "partitions not in the commit are kept"


def test_empty_commit_writes_nothing() -> None:
    store = OffsetStore()
    assert store.commit("g", {}) == []
    assert store.groups == {}


def test_delete_partitions() -> None:
    store = OffsetStore()
    store.commit("g", {("a", 0): c(1), ("b", 0): c(2)})
    records = store.delete("g", [("a", 0), ("missing", 9)])
    assert len(records) == 1
    assert store.partitions("g") == [("b", 0)]
    assert store.delete("g", [("missing", 9)]) == [], "nothing to delete, nothing to write"
    assert store.delete("nowhere", [("a", 0)]) == []
    store.delete("g", [("b", 0)])
    assert "g" not in store.groups, "a group without offsets is gone"


def test_delete_group() -> None:
    store = OffsetStore()
    store.commit("g", {("a", 0): c(1), ("a", 1): c(2)})
    store.commit("h", {("a", 0): c(3)})
    records = store.delete_group("g")
    assert store.partitions("g") == [] and "g" not in store.groups
    assert store.fetch("h", ("a", 0)) == c(3)
    assert store.delete_group("g") == []
    assert rebuilt(store.snapshot()).groups == store.groups
    assert records


def test_delete_with_a_partition_listed_twice() -> None:
    """An OffsetDelete request may name a partition twice; that must not crash the broker."""
    store = OffsetStore()
    store.commit("g", {("a", 0): c(1), ("a", 1): c(2)})
    records = store.delete("g", [("a", 0), ("a", 0)])
    assert store.partitions("g") == [("a", 1)]
    assert rebuilt(store.snapshot()).groups == store.groups
    assert records


def test_expire_drops_only_old_commits() -> None:
    store = OffsetStore()
    store.commit(
        "g", {("a", 0): c(1, commit_ms=100), ("a", 1): c(2, commit_ms=200), ("a", 2): c(3, commit_ms=300)}
    )
    assert len(store.expire("g", older_than_ms=200)) == 1
    assert store.partitions("g") == [("a", 1), ("a", 2)], "a commit exactly at the cutoff stays"
    assert store.expire("g", older_than_ms=200) == []
    assert store.expire("nowhere", older_than_ms=10**12) == []
    store.expire("g", older_than_ms=10**12)
    assert "g" not in store.groups


def test_replay_rebuilds_the_same_state() -> None:
    store = OffsetStore()
    journal: list[bytes] = []
    journal += store.commit("g", {("t", 0): c(1, 10, "meta é ☃"), ("t", 1): c(2, 10)})
    journal += store.commit("h", {("u", 3): c(30, 20)})
    journal += store.commit("g", {("t", 0): c(4, 30)})
    journal += store.delete("g", [("t", 1)])
    journal += store.expire("h", 25)
    journal += store.commit("h", {("u", 4): c(40, 40)})
    assert rebuilt(journal).groups == store.groups
    assert rebuilt(store.snapshot()).groups == store.groups
    assert len(store.snapshot()) == len(store.groups), "one record per group with offsets"


def test_replay_is_incremental() -> None:
    """Replaying a suffix on top of the state of the prefix gives the state of the whole journal."""
    store = OffsetStore()
    journal = (
        store.commit("g", {("t", 0): c(1)})
        + store.commit("g", {("t", 0): c(2)})
        + store.delete("g", [("t", 0)])
    )
    partial = rebuilt(journal[:1])
    partial.replay(journal[1:])
    assert partial.groups == store.groups == {}


def test_replay_of_a_snapshot_after_more_changes() -> None:
    """Compaction writes a snapshot, then appends continue: snapshot + later records = live state."""
    store = OffsetStore()
    store.commit("g", {("t", 0): c(1), ("t", 1): c(1)})
    snapshot = store.snapshot()
    later = store.delete("g", [("t", 0)]) + store.commit("g", {("t", 2): c(5)})
    assert rebuilt(snapshot + later).groups == store.groups


topics = st.sampled_from(["a", "b", "ü-topic"])
partitions = st.tuples(topics, st.integers(0, 3))
groups = st.sampled_from(["g1", "g2", "g3"])
committed = st.builds(
    Committed,
    st.integers(-1, 2**63 - 1),
    st.integers(-1, 2**31 - 1),
    st.text(max_size=8),
    st.integers(0, 1_000),
)
changes = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), groups, st.dictionaries(partitions, committed, max_size=4)),
        st.tuples(st.just("delete"), groups, st.lists(partitions, max_size=3, unique=True)),
        st.tuples(st.just("delete_group"), groups, st.none()),
        st.tuples(st.just("expire"), groups, st.integers(0, 1_000)),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(changes)
def test_replay_and_snapshot_match_live_state(ops: list[tuple[str, str, object]]) -> None:
    store = OffsetStore()
    journal: list[bytes] = []
    for kind, group, arg in ops:
        if kind == "commit":
            assert isinstance(arg, dict)
            journal += store.commit(group, arg)
        elif kind == "delete":
            assert isinstance(arg, list)
            journal += store.delete(group, arg)
        elif kind == "delete_group":
            journal += store.delete_group(group)
        else:
            assert isinstance(arg, int)
            journal += store.expire(group, arg)
        assert all(offsets for offsets in store.groups.values()), "no group is left without offsets"
    assert rebuilt(journal).groups == store.groups
    assert rebuilt(store.snapshot()).groups == store.groups


@pytest.mark.parametrize("seed", range(5))
def test_random_journal_prefixes_replay_to_the_state_at_that_point(seed: int) -> None:
    rng = random.Random(seed)
    store = OffsetStore()
    journal: list[bytes] = []
    states: list[dict[str, dict[TopicPartition, Committed]]] = []
    for step in range(100):
        tp = (rng.choice("xyz"), rng.randrange(3))
        group = rng.choice(["g", "h"])
        if rng.random() < 0.7:
            records = store.commit(group, {tp: c(step, step)})
        else:
            records = store.delete(group, [tp])
        for r in records:
            journal.append(r)
            states.append({g: dict(o) for g, o in store.groups.items()})
    for n in range(len(journal)):
        assert rebuilt(journal[: n + 1]).groups == states[n]
