"""The verifier's delivery metrics: times and counts in, the numbers of the report out. No I/O.

Every function here is pure and takes plain numbers, so each definition can be checked by hand. Times are
in seconds relative to the fault phase's start unless a name ends in ``_ms`` (milliseconds); a latency is
the time from an input's production to its first arrival at the sink, in milliseconds.

The definitions, as the docstrings state them exactly:

* **latency percentiles** (``latency_summary``): nearest-rank, on latencies clamped at 0;
* **latency histogram** (``latency_histogram``): log-spaced bins from ``max(0.1, min)`` to ``max``;
* **throughput timeline** (``timeline``): outputs per second in fixed buckets, empty buckets included;
* **catch-up time** (``catch_up_s``): from a fault's start until the last input produced before its end
  (and at most ``CATCH_UP_LOOKBACK_S`` before its start) first reached the sink;
* **per fault window** (``per_fault``): inputs, lost and duplicated, by the window they were produced in;
* **overhead** (``overhead``): ``1 - throughput / baseline``;
* **abort rate** (``abort_rate``): ``aborted / (committed + aborted)``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Container, Iterable, Mapping, Sequence

HIST_MIN_MS = 0.1  # the histogram's lowest first edge: a log scale cannot start at 0
CATCH_UP_LOOKBACK_S = 30.0  # inputs produced longer than this before a fault do not count for its catch-up


def _clean_latencies(latencies_ms: Iterable[float]) -> list[float]:
    """The latencies summarised: not-a-number and infinite samples dropped, negative ones clamped at 0."""
    return [max(0.0, float(x)) for x in latencies_ms if math.isfinite(x)]


def _nearest_rank(ordered: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile of the sorted, non-empty ``ordered`` by nearest rank: the sample at rank
    ``ceil(pct / 100 * n)`` (1-based; at least 1), computed in integers so no rounding moves the rank."""
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict:
    """``{"p50", "p99", "max", "count"}`` of the latencies (milliseconds).

    Percentiles are nearest-rank: with the ``n`` samples sorted ascending, the p-th percentile is the
    sample at 1-based rank ``ceil(p / 100 * n)`` (rank 1 at least), so it is always one of the samples,
    and at least p % of the samples are less than or equal to it. ``max`` is the largest sample and
    ``count`` is ``n``. Negative latencies are clamped to 0 before anything is computed; not-a-number and
    infinite samples are left out (and not counted). With no samples, p50, p99 and max are ``None`` and
    count is 0.
    """
    ordered = sorted(_clean_latencies(latencies_ms))
    if not ordered:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    return {
        "p50": _nearest_rank(ordered, 50),
        "p99": _nearest_rank(ordered, 99),
        "max": ordered[-1],
        "count": len(ordered),
    }


def latency_histogram(latencies_ms: Sequence[float], bins: int = 40) -> dict:
    """``{"edges_ms": [...], "counts": [...]}``: a histogram of the latencies (milliseconds) on log-spaced
    bins, for a log-scale plot.

    Latencies are clamped at 0 and not-a-number and infinite samples left out, as in ``latency_summary``.
    With ``lo = max(0.1, smallest)`` and ``hi`` the largest sample, the ``bins + 1`` edges are
    ``lo * (hi / lo) ** (i / bins)`` for ``i = 0 .. bins`` (the first exactly ``lo``, the last exactly
    ``hi``). Bin ``i`` holds the samples ``x`` with ``edges[i] <= x < edges[i + 1]``; the last bin also holds
    ``hi`` itself, and the first also holds the samples below ``lo`` (those under 0.1 ms, 0 included), so
    every sample is counted once and ``sum(counts)`` equals ``latency_summary``'s count.

    When ``hi <= lo`` (all samples equal, or all at most 0.1 ms) there is one bin, from ``lo / 2`` to
    ``lo * 2``, holding every sample. With no samples both lists are empty. ``bins`` must be at least 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    samples = _clean_latencies(latencies_ms)
    if not samples:
        return {"edges_ms": [], "counts": []}
    lo = max(HIST_MIN_MS, min(samples))
    hi = max(samples)
    if hi <= lo:
        return {"edges_ms": [lo / 2, lo * 2], "counts": [len(samples)]}
    ratio = hi / lo
    edges = [lo] + [lo * ratio ** (i / bins) for i in range(1, bins)] + [hi]
    counts = [0] * bins
    for x in samples:
        # Placed against the very edges reported, so a sample on an edge lands in the bin that starts there.
        counts[min(bins - 1, max(0, bisect_right(edges, x) - 1))] += 1
    return {"edges_ms": edges, "counts": counts}


def timeline(
    times_s: Iterable[float], *, bucket_s: float = 1.0, start_s: float = 0.0, end_s: float | None = None
) -> dict:
    """``{"bucket_s", "t_s", "outputs_per_s"}``: how many outputs reached the sink per second, over time.

    Bucket ``i`` starts at ``t_s[i] = start_s + i * bucket_s`` and holds the times ``t`` with
    ``t_s[i] <= t < t_s[i] + bucket_s``; ``outputs_per_s[i]`` is its count divided by ``bucket_s``. The
    buckets run from the one starting at ``start_s`` to the one holding ``end_s`` (``end_s`` defaults to the
    latest time given), every bucket between included, empty ones as 0. Times before ``start_s`` or after
    ``end_s`` are dropped, as are not-a-number and infinite times. With no time to count and no ``end_s``,
    or ``end_s`` before ``start_s``, both lists are empty. ``bucket_s`` must be positive and ``start_s``
    finite.
    """
    if not bucket_s > 0 or not math.isfinite(bucket_s):
        raise ValueError(f"bucket_s must be positive, not {bucket_s}")
    if not math.isfinite(start_s):
        raise ValueError(f"start_s must be finite, not {start_s}")
    times = [float(t) for t in times_s if math.isfinite(t)]
    if end_s is None:
        if not times:
            return {"bucket_s": bucket_s, "t_s": [], "outputs_per_s": []}
        end_s = max(times)
    if end_s < start_s or not math.isfinite(end_s):
        return {"bucket_s": bucket_s, "t_s": [], "outputs_per_s": []}
    n = int((end_s - start_s) // bucket_s) + 1
    # The bucket starts are computed one way (start + i * bucket), and both the count of buckets and each
    # time's bucket are settled against those very values, so a time on a reported start is in that bucket.
    while start_s + n * bucket_s <= end_s:
        n += 1
    while n > 1 and start_s + (n - 1) * bucket_s > end_s:
        n -= 1
    starts = [start_s + i * bucket_s for i in range(n)]
    counts = [0] * n
    for t in times:
        if not start_s <= t <= end_s:
            continue
        i = min(n - 1, int((t - start_s) // bucket_s))
        while i + 1 < n and t >= starts[i + 1]:
            i += 1
        while i > 0 and t < starts[i]:
            i -= 1
        counts[i] += 1
    return {"bucket_s": bucket_s, "t_s": starts, "outputs_per_s": [c / bucket_s for c in counts]}


def catch_up_s(
    fault_start_s: float,
    fault_end_s: float,
    produced_s: Mapping[int, float],
    first_arrival_s: Mapping[int, float],
) -> float | None:
    """The recovery time of one fault, in seconds: from the fault's start until every input produced up to
    the fault's end that reached the sink at all has reached it (its first arrival).

    The inputs that count are those produced from ``CATCH_UP_LOOKBACK_S`` (30 s) before the fault's start
    up to its end, both ends included (``fault_start_s - 30 <= produced_s[seq] <= fault_end_s``), that have
    a first arrival; the result is ``max(first_arrival_s[seq] for those seqs) - fault_start_s``, clamped at
    0. Inputs that never reached the sink are left out (loss is counted elsewhere), and so is older
    history. ``None`` when no input counts. ``produced_s`` and ``first_arrival_s`` map an input's sequence
    id to its production time and to its first arrival at the sink.
    """
    since = fault_start_s - CATCH_UP_LOOKBACK_S
    last = None
    for seq, produced in produced_s.items():
        if not since <= produced <= fault_end_s:
            continue
        arrived = first_arrival_s.get(seq)
        if arrived is not None and (last is None or arrived > last):
            last = arrived
    if last is None:
        return None
    return max(0.0, last - fault_start_s)


def per_fault(
    windows: Sequence[tuple[str, float]],
    produced_s: Mapping[int, float],
    arrivals: Mapping[int, int],
    acked: Container[int] | None = None,
) -> list[dict]:
    """Inputs, losses and duplicates by the fault window the input was produced in.

    ``windows`` are ``(label, start_s)`` in order of start (conventionally the first is
    ``("before faults", -inf)``); ``produced_s`` maps each input's sequence id to its production time, and
    ``arrivals`` maps a sequence id to how many times it reached the sink (absent means 0). Each input of
    ``produced_s`` is attributed to the last window whose start is at most its production time; inputs
    produced before the first window's start go to the first window. For each window, in the order given:
    ``{"window": label, "inputs": n, "lost": n, "duplicated": n}``, where ``inputs`` counts the inputs
    attributed to it, ``lost`` those of them that were acknowledged (in ``acked``; when ``acked`` is
    ``None`` every input counts as acknowledged) and arrived 0 times, and ``duplicated`` those that arrived
    more than once. A window with no inputs has all counts 0. Arrivals of ids not in ``produced_s`` are not
    counted. With no windows the result is empty.
    """
    starts = [start for _, start in windows]
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        raise ValueError("windows must be in order of start")
    out = [{"window": label, "inputs": 0, "lost": 0, "duplicated": 0} for label, _ in windows]
    if not out:
        return out
    for seq, produced in produced_s.items():
        row = out[max(0, bisect_right(starts, produced) - 1)]
        n = arrivals.get(seq, 0)
        row["inputs"] += 1
        if n == 0 and (acked is None or seq in acked):
            row["lost"] += 1
        elif n > 1:
            row["duplicated"] += 1
    return out


def overhead(throughput: float | None, baseline: float | None) -> float | None:
    """The cost of a guarantee in throughput, as a fraction of the baseline's: ``1 - throughput /
    baseline`` (0.12 means 12 % slower; negative when faster). ``None`` if either is ``None`` or the
    baseline is not positive."""
    if throughput is None or baseline is None or baseline <= 0:
        return None
    return 1.0 - throughput / baseline


def abort_rate(committed: int, aborted: int) -> float | None:
    """The share of transactions that aborted: ``aborted / (committed + aborted)``; ``None`` when both are
    0. Counts must not be negative."""
    if committed < 0 or aborted < 0:
        raise ValueError(f"transaction counts must not be negative: committed {committed}, aborted {aborted}")
    total = committed + aborted
    if total == 0:
        return None
    return aborted / total
