"""The KIP-848 server-side assignors as pure functions: complete, exclusive, deterministic, balanced, and
(uniform) sticky. Expected behaviour follows Apache Kafka's UniformAssignor and RangeAssignor
(group-coordinator module)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.coordinator.assignors import (
    ASSIGNORS,
    DEFAULT_ASSIGNOR,
    Partitions,
    Subscriptions,
    range_assignor,
    uniform_assignor,
)

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)
T3 = uuid.UUID(int=3)


def flat(assignment: dict[str, Partitions]) -> list[tuple[uuid.UUID, int]]:
    return [(t, p) for parts in assignment.values() for t, ps in parts.items() for p in ps]


def sizes(assignment: dict[str, Partitions]) -> dict[str, int]:
    return {m: sum(len(ps) for ps in parts.values()) for m, parts in assignment.items()}


def check_valid(subs: Subscriptions, out: dict[str, Partitions]) -> None:
    """Every subscribed partition goes to exactly one member, and only to a subscriber of its topic."""
    assert set(out) == set(subs)
    taken = flat(out)
    assert len(taken) == len(set(taken)), "a partition assigned twice"
    wanted = {(t, p) for topics in subs.values() for t, n in topics for p in range(n)}
    assert set(taken) == wanted
    for member, parts in out.items():
        mine = dict(subs[member])
        for t, ps in parts.items():
            assert t in mine and all(0 <= p < mine[t] for p in ps)
            assert ps, "no empty partition sets"


def moved(before: dict[str, Partitions], after: dict[str, Partitions]) -> int:
    """How many partitions changed owner (new partitions excluded)."""
    owner = {tp: m for m, parts in before.items() for t, ps in parts.items() for tp in ((t, p) for p in ps)}
    return sum(
        1 for m, parts in after.items() for t, ps in parts.items() for p in ps if owner.get((t, p), m) != m
    )


def test_default_and_registry() -> None:
    assert DEFAULT_ASSIGNOR == "uniform"
    assert ASSIGNORS == {"uniform": uniform_assignor, "range": range_assignor}


# --- range ----------------------------------------------------------------------------------------


def test_range_gives_contiguous_ranges_first_members_one_extra() -> None:
    subs = {"b": [(T1, 7)], "a": [(T1, 7)], "c": [(T1, 7)]}
    out = range_assignor(subs, {})
    assert out == {
        "a": {T1: frozenset({0, 1, 2})},
        "b": {T1: frozenset({3, 4})},
        "c": {T1: frozenset({5, 6})},
    }
    check_valid(subs, out)


def test_range_is_per_topic_and_only_for_subscribers() -> None:
    subs = {"a": [(T1, 4), (T2, 3)], "b": [(T1, 4)], "c": [(T2, 3)]}
    out = range_assignor(subs, {})
    check_valid(subs, out)
    assert out["a"] == {T1: frozenset({0, 1}), T2: frozenset({0, 1})}
    assert out["b"] == {T1: frozenset({2, 3})}
    assert out["c"] == {T2: frozenset({2})}


def test_range_with_more_members_than_partitions() -> None:
    subs = {m: [(T1, 2)] for m in "abcd"}
    out = range_assignor(subs, {})
    check_valid(subs, out)
    assert out == {"a": {T1: frozenset({0})}, "b": {T1: frozenset({1})}, "c": {}, "d": {}}


# --- uniform --------------------------------------------------------------------------------------


def test_uniform_balances_three_members_over_six_partitions() -> None:
    subs = {m: [(T1, 6)] for m in ("m1", "m2", "m3")}
    out = uniform_assignor(subs, {})
    check_valid(subs, out)
    assert sorted(sizes(out).values()) == [2, 2, 2]


def test_uniform_is_deterministic_whatever_the_input_order() -> None:
    subs = {m: [(T1, 5), (T2, 4)] for m in ("z", "a", "m")}
    reordered = {m: list(reversed(subs[m])) for m in sorted(subs)}
    out = uniform_assignor(subs, {})
    assert uniform_assignor(subs, {}) == out
    assert uniform_assignor(reordered, {}) == out
    check_valid(subs, out)


def test_uniform_adding_a_member_moves_the_minimum() -> None:
    subs = {m: [(T1, 6), (T2, 3)] for m in ("a", "b", "c")}
    before = uniform_assignor(subs, {})
    subs["d"] = [(T1, 6), (T2, 3)]
    after = uniform_assignor(subs, before)
    check_valid(subs, after)
    assert max(sizes(after).values()) - min(sizes(after).values()) <= 1
    assert moved(before, after) == sizes(after)["d"] == 2, "only what the new member needs moves"


def test_uniform_removing_a_member_moves_only_its_partitions() -> None:
    subs = {m: [(T1, 8)] for m in ("a", "b", "c", "d")}
    before = uniform_assignor(subs, {})
    del subs["b"]
    after = uniform_assignor(subs, before)
    check_valid(subs, after)
    for m in ("a", "c", "d"):
        for t, ps in before[m].items():
            assert ps <= after[m].get(t, frozenset()), f"{m} lost a partition it could keep"
    assert sorted(sizes(after).values()) == [2, 3, 3]


def test_uniform_keeps_a_balanced_assignment_unchanged() -> None:
    subs = {m: [(T1, 7)] for m in ("a", "b", "c")}
    current = {"a": {T1: frozenset({6, 0})}, "b": {T1: frozenset({1, 5, 3})}, "c": {T1: frozenset({2, 4})}}
    assert uniform_assignor(subs, current) == current


def test_uniform_ignores_previous_partitions_no_longer_eligible() -> None:
    subs = {"a": [(T1, 2)], "b": [(T1, 2), (T2, 2)]}
    current = {"a": {T2: frozenset({0, 1}), T3: frozenset({0})}, "b": {T1: frozenset({5})}}
    out = uniform_assignor(subs, current)
    check_valid(subs, out)
    assert out["b"][T2] == frozenset({0, 1})


def test_uniform_with_uneven_subscriptions_gives_each_topic_to_its_subscribers() -> None:
    subs = {"a": [(T1, 3)], "b": [(T1, 3), (T2, 3)], "c": [(T2, 3)]}
    out = uniform_assignor(subs, {})
    check_valid(subs, out)
    assert sorted(sizes(out).values()) == [2, 2, 2]


def test_no_members_no_assignment() -> None:
    assert uniform_assignor({}, {}) == {}
    assert range_assignor({}, {}) == {}


# --- properties -----------------------------------------------------------------------------------

_members = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=5, unique=True)
_topics = st.lists(
    st.tuples(st.sampled_from([T1, T2, T3]), st.integers(1, 9)), max_size=3, unique_by=lambda x: x[0]
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Subscriptions, dict[str, Partitions], bool]:
    members = draw(_members)
    homogeneous = draw(st.booleans())
    topics = draw(_topics)
    if homogeneous:
        subs = {m: list(topics) for m in members}
    else:
        subs = {m: [t for t in topics if draw(st.booleans())] for m in members}
    current: dict[str, Partitions] = {}
    for m in members:
        if draw(st.booleans()):
            t = draw(st.sampled_from([T1, T2, T3]))
            current[m] = {t: frozenset(draw(st.sets(st.integers(0, 10), max_size=6)))}
    return subs, current, homogeneous


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios())
def test_property_assignments_are_valid_and_deterministic(
    name: str, scenario: tuple[Subscriptions, dict[str, Partitions], bool]
) -> None:
    subs, current, homogeneous = scenario
    assignor = ASSIGNORS[name]
    out = assignor(subs, current)
    check_valid(subs, out)
    assert assignor(subs, current) == out
    if homogeneous and name == "uniform":
        counts = sizes(out).values()
        assert max(counts) - min(counts) <= 1
    if homogeneous and name == "range":
        for t, n in subs[next(iter(subs))]:
            per_member = Counter({m: len(parts.get(t, ())) for m, parts in out.items()})
            assert max(per_member.values()) - min(per_member.values()) <= 1, f"topic {t} of {n}"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_members, st.integers(1, 20), st.sampled_from(["x", "a0", "zz"]))
def test_property_uniform_new_member_takes_only_its_share(members: list[str], n: int, newcomer: str) -> None:
    if newcomer in members:
        return
    subs = {m: [(T1, n)] for m in members}
    before = uniform_assignor(subs, {})
    subs[newcomer] = [(T1, n)]
    after = uniform_assignor(subs, before)
    check_valid(subs, after)
    share = sizes(after)[newcomer]
    assert share in (n // len(subs), -(-n // len(subs)))
    assert moved(before, after) == share, "partitions moved between members that already had their share"
    assert max(sizes(after).values()) - min(sizes(after).values()) <= 1
