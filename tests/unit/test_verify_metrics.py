"""The verifier's delivery metrics on small hand-computed cases, on their edges, and as properties over
made-up histories."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.verify.metrics import (
    CATCH_UP_LOOKBACK_S,
    abort_rate,
    catch_up_s,
    latency_histogram,
    latency_summary,
    overhead,
    per_fault,
    timeline,
)

INF = float("inf")
latencies = st.lists(st.floats(min_value=-50, max_value=1e6, allow_nan=False), max_size=300)


# -- latency_summary ---------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    # 1..100 ms: rank ceil(0.5 * 100) = 50 and ceil(0.99 * 100) = 99.
    s = latency_summary([float(x) for x in range(100, 0, -1)])
    assert s == {"p50": 50.0, "p99": 99.0, "max": 100.0, "count": 100}
    # 10 samples: ranks ceil(5) = 5 and ceil(9.9) = 10; the input's order does not matter.
    assert latency_summary([7, 1, 9, 3, 5, 2, 8, 4, 10, 6]) == {"p50": 5, "p99": 10, "max": 10, "count": 10}
    # 3 samples: ranks ceil(1.5) = 2 and ceil(2.97) = 3.
    assert latency_summary([30.0, 10.0, 20.0]) == {"p50": 20.0, "p99": 30.0, "max": 30.0, "count": 3}
    # 1000 samples: p99 is the 990th, not the 991st (no rounding moves the rank).
    s = latency_summary([float(x) for x in range(1, 1001)])
    assert (s["p50"], s["p99"], s["max"]) == (500.0, 990.0, 1000.0)


def test_summary_of_nothing_single_and_equal_samples():
    assert latency_summary([]) == {"p50": None, "p99": None, "max": None, "count": 0}
    assert latency_summary([42.5]) == {"p50": 42.5, "p99": 42.5, "max": 42.5, "count": 1}
    assert latency_summary([3.0] * 7) == {"p50": 3.0, "p99": 3.0, "max": 3.0, "count": 7}


def test_negative_latencies_are_clamped_and_non_finite_ones_left_out():
    assert latency_summary([-5.0, -1.0, 4.0]) == {"p50": 0.0, "p99": 4.0, "max": 4.0, "count": 3}
    assert latency_summary([-2.0]) == {"p50": 0.0, "p99": 0.0, "max": 0.0, "count": 1}
    assert latency_summary([float("nan"), INF, 1.0]) == {"p50": 1.0, "p99": 1.0, "max": 1.0, "count": 1}


@settings(max_examples=200, deadline=None)
@given(latencies)
def test_percentiles_are_samples_within_the_range_and_ordered(xs):
    s = latency_summary(xs)
    assert s["count"] == len(xs)
    if not xs:
        return
    clamped = [max(0.0, x) for x in xs]
    assert s["p50"] in clamped and s["p99"] in clamped
    assert min(clamped) <= s["p50"] <= s["p99"] <= s["max"] == max(clamped)
    # at least p % of the samples are at or below the p-th percentile, and fewer are strictly below it
    for pct, v in ((50, s["p50"]), (99, s["p99"])):
        assert sum(x <= v for x in clamped) * 100 >= pct * len(xs)
        assert sum(x < v for x in clamped) * 100 < pct * len(xs)


# -- latency_histogram -------------------------------------------------------------------------------------


def test_histogram_edges_are_log_spaced_from_the_smallest_to_the_largest():
    h = latency_histogram([1.0, 10.0, 100.0, 1000.0], bins=3)
    assert h["edges_ms"] == pytest.approx([1.0, 10.0, 100.0, 1000.0])
    assert h["edges_ms"][0] == 1.0 and h["edges_ms"][-1] == 1000.0  # exactly, not approximately
    # each sample on an edge is in the bin that starts there; the largest is in the last bin
    assert h["counts"] == [1, 1, 2]


def test_histogram_default_bins_and_every_sample_counted():
    xs = [0.5, 2.0, 2.0, 7.0, 150.0, 3000.0]
    h = latency_histogram(xs)
    assert len(h["edges_ms"]) == 41 and len(h["counts"]) == 40
    assert sum(h["counts"]) == len(xs)
    assert h["edges_ms"][0] == 0.5 and h["edges_ms"][-1] == 3000.0
    assert all(a < b for a, b in zip(h["edges_ms"], h["edges_ms"][1:], strict=False))


def test_histogram_starts_at_a_tenth_of_a_millisecond_and_counts_smaller_samples_in_its_first_bin():
    h = latency_histogram([0.0, -3.0, 0.05, 0.1, 1.0, 10.0], bins=2)
    assert h["edges_ms"] == pytest.approx([0.1, 1.0, 10.0])
    assert h["edges_ms"][0] == 0.1
    assert h["counts"] == [4, 2]


def test_histogram_of_nothing_and_of_equal_samples():
    assert latency_histogram([]) == {"edges_ms": [], "counts": []}
    assert latency_histogram([float("nan")]) == {"edges_ms": [], "counts": []}
    assert latency_histogram([4.0, 4.0, 4.0]) == {"edges_ms": [2.0, 8.0], "counts": [3]}
    assert latency_histogram([5.0]) == {"edges_ms": [2.5, 10.0], "counts": [1]}
    # all at most 0.1 ms: one bin around 0.1 ms holding them all
    assert latency_histogram([0.0, 0.02, 0.1], bins=10) == {"edges_ms": [0.05, 0.2], "counts": [3]}


def test_histogram_needs_a_bin():
    with pytest.raises(ValueError):
        latency_histogram([1.0, 2.0], bins=0)


@settings(max_examples=200, deadline=None)
@given(latencies, st.integers(min_value=1, max_value=60))
def test_histogram_counts_every_sample_once_in_the_bin_that_holds_it(xs, bins):
    h = latency_histogram(xs, bins=bins)
    if not xs:
        assert h == {"edges_ms": [], "counts": []}
        return
    edges, counts = h["edges_ms"], h["counts"]
    assert len(edges) == len(counts) + 1 and sum(counts) == len(xs)
    assert all(e > 0 for e in edges) and all(a <= b for a, b in zip(edges, edges[1:], strict=False))
    expected = [0] * len(counts)
    for x in (max(0.0, x) for x in xs):
        i = next((i for i in range(len(counts)) if edges[i] <= x < edges[i + 1]), None)
        expected[len(counts) - 1 if x >= edges[-1] else 0 if i is None else i] += 1
    assert counts == expected


# -- timeline ----------------------------------------------------------------------------------------------


def test_timeline_counts_per_bucket_including_empty_ones():
    tl = timeline([0.1, 0.2, 0.9, 3.5, 3.7, 1.0])
    assert tl == {"bucket_s": 1.0, "t_s": [0.0, 1.0, 2.0, 3.0], "outputs_per_s": [3.0, 1.0, 0.0, 2.0]}


def test_timeline_divides_by_the_bucket_width():
    tl = timeline([0.0, 0.5, 1.0, 1.5, 2.0, 4.9], bucket_s=2.0)
    assert tl == {"bucket_s": 2.0, "t_s": [0.0, 2.0, 4.0], "outputs_per_s": [2.0, 0.5, 0.5]}
    tl = timeline([0.0, 0.1, 0.2, 0.25], bucket_s=0.5)
    assert tl["t_s"] == [0.0] and tl["outputs_per_s"] == [8.0]


def test_timeline_times_on_a_bucket_start_belong_to_that_bucket():
    tl = timeline([0.0, 1.0, 2.0, 3.0])
    assert tl["t_s"] == [0.0, 1.0, 2.0, 3.0] and tl["outputs_per_s"] == [1.0, 1.0, 1.0, 1.0]
    # also where the bucket starts are not exact in binary (0.1 * 3 > 0.3)
    tl = timeline([0.0, 0.1, 0.2, 0.30000000000000004, 0.3], bucket_s=0.1)
    assert len(tl["t_s"]) == 4
    assert [round(c * 0.1) for c in tl["outputs_per_s"]] == [1, 1, 2, 1]


def test_timeline_drops_times_outside_start_and_end():
    tl = timeline([-1.0, 0.5, 4.99, 5.0, 6.0, 10.0], start_s=0.0, end_s=5.0)
    assert tl["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert tl["outputs_per_s"] == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    tl = timeline([9.0, 12.5, 13.0], start_s=10.0)
    assert tl["t_s"] == [10.0, 11.0, 12.0, 13.0] and tl["outputs_per_s"] == [0.0, 0.0, 1.0, 1.0]


def test_timeline_edges():
    assert timeline([]) == {"bucket_s": 1.0, "t_s": [], "outputs_per_s": []}
    assert timeline([], end_s=2.5) == {"bucket_s": 1.0, "t_s": [0.0, 1.0, 2.0], "outputs_per_s": [0.0] * 3}
    assert timeline([0.0]) == {"bucket_s": 1.0, "t_s": [0.0], "outputs_per_s": [1.0]}
    assert timeline([-3.0, -1.0]) == {"bucket_s": 1.0, "t_s": [], "outputs_per_s": []}
    assert timeline([1.0], start_s=2.0, end_s=1.0)["t_s"] == []
    assert timeline(iter([2.0, 0.5, 1.5]))["outputs_per_s"] == [1.0, 1.0, 1.0]  # any iterable, any order
    assert timeline([float("nan"), 1.2])["outputs_per_s"] == [0.0, 1.0]
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            timeline([1.0], bucket_s=bad)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-20, max_value=200, allow_nan=False), max_size=200),
    st.sampled_from([0.1, 0.25, 1.0, 3.0]),
    st.floats(min_value=-10, max_value=50, allow_nan=False),
    st.one_of(st.none(), st.floats(min_value=-10, max_value=250, allow_nan=False)),
)
def test_timeline_counts_every_in_range_time_once(times, bucket, start, end):
    tl = timeline(times, bucket_s=bucket, start_s=start, end_s=end)
    last = end if end is not None else max(times, default=-INF)
    in_range = [t for t in times if start <= t <= last]
    counts = [round(r * bucket) for r in tl["outputs_per_s"]]
    assert sum(counts) == len(in_range)
    if tl["t_s"]:
        assert tl["t_s"][0] == start and tl["t_s"][-1] <= last < start + len(tl["t_s"]) * bucket
        for t in in_range:
            i = max(i for i, s in enumerate(tl["t_s"]) if s <= t)
            assert i == len(tl["t_s"]) - 1 or t < tl["t_s"][i + 1]
    else:
        assert not in_range


# -- catch_up_s --------------------------------------------------------------------------------------------


def test_catch_up_is_until_the_last_input_produced_up_to_the_fault_end_arrived():
    produced = {1: 8.0, 2: 9.5, 3: 10.5, 4: 11.0, 5: 11.5, 6: 13.0}
    first = {1: 8.1, 2: 12.0, 3: 14.2, 4: 13.9, 5: 12.5, 6: 13.1}
    # fault 10..11.5: inputs 1..5 count; the last of them arrived at 14.2
    assert catch_up_s(10.0, 11.5, produced, first) == pytest.approx(4.2)
    # input 6 (produced after the end) does not count even though it arrived later than some
    assert catch_up_s(10.0, 11.0, produced, {**first, 6: 99.0}) == pytest.approx(4.2)


def test_catch_up_ignores_inputs_that_never_arrived():
    produced = {1: 10.5, 2: 10.6}
    assert catch_up_s(10.0, 11.0, produced, {1: 12.0}) == pytest.approx(2.0)
    assert catch_up_s(10.0, 11.0, produced, {}) is None


def test_catch_up_looks_back_only_30_seconds():
    assert CATCH_UP_LOOKBACK_S == 30.0
    produced = {1: 50.0, 2: 69.9, 3: 70.0}
    first = {1: 200.0, 2: 70.5, 3: 101.0}
    # input 1 was produced 50 s before the fault: its late arrival does not count
    assert catch_up_s(100.0, 101.0, produced, first) == pytest.approx(1.0)
    # the look-back's start is inclusive: input 3, produced exactly 30 s before, counts
    assert catch_up_s(100.0, 100.5, {3: 70.0}, first) == pytest.approx(1.0)
    assert catch_up_s(100.0, 101.0, {1: 50.0}, first) is None


def test_catch_up_is_never_negative():
    # everything relevant arrived before the fault even started
    assert catch_up_s(10.0, 12.0, {1: 5.0, 2: 6.0}, {1: 5.1, 2: 6.2}) == 0.0
    # an input produced exactly at the fault's end counts
    assert catch_up_s(10.0, 12.0, {1: 12.0}, {1: 12.3}) == pytest.approx(2.3)


# -- per_fault ---------------------------------------------------------------------------------------------


WINDOWS = [("before faults", -INF), ("consumer-crash @10.0s", 10.0), ("broker-crash @20.0s", 20.0)]


def test_per_fault_attributes_each_input_to_the_window_it_was_produced_in():
    produced = {1: 1.0, 2: 9.9, 3: 10.0, 4: 15.0, 5: 19.99, 6: 20.0, 7: 25.0}
    arrivals = {1: 1, 2: 2, 3: 0, 4: 3, 6: 1, 7: 2}  # 5 absent: 0 arrivals
    assert per_fault(WINDOWS, produced, arrivals) == [
        {"window": "before faults", "inputs": 2, "lost": 0, "duplicated": 1},
        {"window": "consumer-crash @10.0s", "inputs": 3, "lost": 2, "duplicated": 1},
        {"window": "broker-crash @20.0s", "inputs": 2, "lost": 0, "duplicated": 1},
    ]


def test_per_fault_counts_only_acknowledged_inputs_as_lost():
    produced = {1: 1.0, 2: 11.0, 3: 12.0}
    got = per_fault(WINDOWS, produced, Counter(), acked={2})
    assert [(w["inputs"], w["lost"]) for w in got] == [(1, 0), (2, 1), (0, 0)]


def test_per_fault_edges():
    assert per_fault([], {1: 1.0}, {1: 1}) == []
    # a window with no inputs, and inputs before the first window's start going to the first window
    got = per_fault([("before faults", 0.0), ("slow @5.0s", 5.0), ("partition @6.0s", 6.0)], {1: -2.0}, {})
    assert got == [
        {"window": "before faults", "inputs": 1, "lost": 1, "duplicated": 0},
        {"window": "slow @5.0s", "inputs": 0, "lost": 0, "duplicated": 0},
        {"window": "partition @6.0s", "inputs": 0, "lost": 0, "duplicated": 0},
    ]
    # arrivals of ids that were never produced are not counted
    got = per_fault(WINDOWS[:1], {1: 0.0}, {1: 1, 99: 5})
    assert got == [{"window": "before faults", "inputs": 1, "lost": 0, "duplicated": 0}]
    # two windows starting together: the later one takes the inputs
    got = per_fault([("a", 0.0), ("b", 3.0), ("c", 3.0)], {1: 3.0, 2: 4.0}, {1: 1, 2: 1})
    assert [w["inputs"] for w in got] == [0, 0, 2]
    with pytest.raises(ValueError):
        per_fault([("a", 5.0), ("b", 1.0)], {}, {})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=6),
    st.dictionaries(
        st.integers(0, 500),
        st.tuples(st.floats(min_value=-10, max_value=110, allow_nan=False), st.integers(0, 3), st.booleans()),
        max_size=150,
    ),
    st.booleans(),
)
def test_per_fault_counts_sum_to_the_totals(starts, inputs, use_acked):
    windows = [("before faults", -INF)] + [(f"fault @{s:.1f}s", s) for s in sorted(starts)]
    produced = {seq: t for seq, (t, _, _) in inputs.items()}
    arrivals = {seq: n for seq, (_, n, _) in inputs.items() if n}
    acked = {seq for seq, (_, _, a) in inputs.items() if a} if use_acked else None
    got = per_fault(windows, produced, arrivals, acked)
    assert [w["window"] for w in got] == [label for label, _ in windows]
    assert sum(w["inputs"] for w in got) == len(inputs)
    lost = sum(1 for seq, (_, n, a) in inputs.items() if n == 0 and (a or not use_acked))
    assert sum(w["lost"] for w in got) == lost
    assert sum(w["duplicated"] for w in got) == sum(1 for _, n, _ in inputs.values() if n > 1)
    # and window by window: each input in the last window starting at or before it
    for i, (_, start) in enumerate(windows):
        end = windows[i + 1][1] if i + 1 < len(windows) else INF
        mine = [t for t in produced.values() if start <= t and not any(s <= t for _, s in windows[i + 1 :])]
        assert got[i]["inputs"] == len(mine)
        assert all(t < end for t in mine)


# -- overhead and abort_rate -------------------------------------------------------------------------------


def test_overhead():
    assert overhead(880.0, 1000.0) == pytest.approx(0.12)
    assert overhead(1000.0, 1000.0) == 0.0
    assert overhead(1100.0, 1000.0) == pytest.approx(-0.1)  # faster than the baseline
    assert overhead(0.0, 1000.0) == 1.0
    assert overhead(None, 1000.0) is None and overhead(500.0, None) is None and overhead(None, None) is None
    assert overhead(500.0, 0.0) is None and overhead(500.0, -1.0) is None


def test_abort_rate():
    assert abort_rate(500, 3) == pytest.approx(3 / 503)
    assert abort_rate(10, 0) == 0.0
    assert abort_rate(0, 4) == 1.0
    assert abort_rate(0, 0) is None
    with pytest.raises(ValueError):
        abort_rate(-1, 2)


def test_results_are_plain_json_numbers():
    # the report writes these dicts to result.json as they are
    s = latency_summary([1, 2, 3])
    assert all(isinstance(v, float) for k, v in s.items() if k != "count") and isinstance(s["count"], int)
    h = latency_histogram([1, 2, 3], bins=4)
    assert all(isinstance(e, float) for e in h["edges_ms"]) and all(isinstance(c, int) for c in h["counts"])
    assert all(isinstance(x, float) and math.isfinite(x) for x in timeline([0, 1.5])["outputs_per_s"])
