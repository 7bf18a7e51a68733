"""The fault schedule: drawn from the seed, inside the workload's window, one slot per fault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.verify.faults import KINDS, WINDOW_END, WINDOW_START, parse_kinds, schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    a = schedule(KINDS, 7, 60.0)
    assert a == schedule(KINDS, 7, 60.0)
    assert any(schedule(KINDS, s, 60.0) != a for s in range(8, 12))


@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8),
    seed=st.integers(0, 2**32),
    window=st.floats(5.0, 600.0),
    workers=st.integers(1, 5),
)
def test_every_fault_falls_in_the_window_in_a_slot_of_its_own(kinds, seed, window, workers):
    plan = schedule(kinds, seed, window, workers=workers, stall_s=8.0)
    assert sorted(f.kind for f in plan) == sorted(kinds)
    assert [f.at_s for f in plan] == sorted(f.at_s for f in plan)
    slot = (WINDOW_END - WINDOW_START) * window / len(kinds)
    for i, f in enumerate(plan):
        lo = WINDOW_START * window + i * slot
        assert lo <= f.at_s <= lo + 0.3 * slot + 1e-9
        assert 0 <= f.target < workers
        assert f.duration_s > 0
    for kind in set(kinds):  # each kind's faults are numbered 0, 1, ... (the broker commands see it)
        assert sorted(f.index for f in plan if f.kind == kind) == list(range(kinds.count(kind)))
    assert all(f.mode in ("blackhole", "cut") for f in plan if f.kind == "partition")
    assert all(f.duration_s == 8.0 for f in plan if f.kind == "slow")


def test_fault_lists_are_parsed_and_unknown_faults_refused():
    assert parse_kinds("consumer-crash, slow,slow") == ["consumer-crash", "slow", "slow"]
    assert parse_kinds("none") == [] == parse_kinds("")
    with pytest.raises(ValueError, match="unknown fault 'brokercrash'"):
        parse_kinds("brokercrash")
    assert schedule([], 1, 60.0) == []
