"""A realistic result dict of ``odradek verify`` (the shape of docs/verify.md), for the report's tests.

Built, not recorded: 4 rows (the SQL row without Kafka transactions), 4 faults (the last one not run),
the producer check for acks 0, 1 and all. ``kept=False`` breaks exactly-once (lost and duplicated inputs)
and the acks=all producer check (acknowledged, then missing).
"""

from __future__ import annotations

import math
from typing import Any

MESSAGES = 30000
DURATION_S = 60
ROWS = (
    # name, guarantee, sink, phase-1 throughput (msg/s), p50, p99, max (ms)
    ("at-most-once", "at-most-once", "topic", 15234.0, 12.0, 310.0, 1480.0),
    ("at-least-once", "at-least-once", "topic", 13890.0, 18.0, 920.0, 2650.0),
    ("exactly-once", "exactly-once", "topic", 9120.0, 95.0, 1830.0, 4120.0),
    ("exactly-once → SQL", "exactly-once", "sql", 7410.0, 40.0, 1210.0, 3300.0),
)
FAULTS = (
    ("consumer-crash", 12.3, 1.5, True, "SIGKILL worker at-least-once/w1, restarted after 1.5 s"),
    ("broker-crash", 25.0, 4.0, True, "SIGKILL the broker, restarted after 4.0 s"),
    ("partition", 38.4, 3.0, True, "cut the workers off the broker for 3.0 s"),
    ("slow", 50.0, 2.0, False, "not run: the proxy could not be started"),
)


def _edges(n: int = 24, lo: float = 1.0, hi: float = 10000.0) -> list[float]:
    step = (math.log10(hi) - math.log10(lo)) / n
    return [round(10 ** (math.log10(lo) + i * step), 3) for i in range(n + 1)]


def _hist(p50: float, count: int) -> dict[str, Any]:
    edges = _edges()
    mids = [math.sqrt(a * b) for a, b in zip(edges, edges[1:], strict=False)]
    weights = [math.exp(-((math.log10(m) - math.log10(p50)) ** 2) / 0.18) for m in mids]
    total = sum(weights)
    counts = [int(count * w / total) for w in weights]
    counts[mids.index(min(mids, key=lambda m: abs(m - p50)))] += count - sum(counts)
    return {"edges_ms": edges, "counts": counts}


def _timeline(rate: float, faults: list[dict[str, Any]], shift: float) -> dict[str, Any]:
    t_s = [float(t) for t in range(DURATION_S)]
    out = []
    for t in t_s:
        v = rate
        for f in faults:
            if not f["ran"]:
                continue
            if f["at_s"] <= t < f["at_s"] + f["duration_s"]:
                v = rate * 0.1
            elif f["at_s"] + f["duration_s"] <= t < f["at_s"] + f["duration_s"] + 3 + shift:
                v = rate * 1.8  # catching up
        out.append(round(v, 1))
    return {"bucket_s": 1.0, "t_s": t_s, "outputs_per_s": out}


def sample_result(kept: bool = True) -> dict[str, Any]:
    faults = []
    for i, (kind, at, dur, ran, note) in enumerate(FAULTS):
        recovery = {
            name: (round(2.0 + 0.3 * j + 0.1 * i, 1) if ran else None) for j, (name, *_) in enumerate(ROWS)
        }
        if kind == "partition":
            recovery["exactly-once → SQL"] = None  # not computable: no input produced in the window
        faults.append(
            {"kind": kind, "at_s": at, "duration_s": dur, "ran": ran, "note": note, "recovery_s": recovery}
        )
    base = ROWS[0][3]
    rows = []
    for j, (name, guarantee, sink, thr, p50, p99, mx) in enumerate(ROWS):
        lost = duplicated = extra = aborted = 0
        if guarantee == "at-most-once":
            lost = 41
        elif guarantee == "at-least-once":
            duplicated, extra = 212, 230
        if not kept and name == "exactly-once":
            lost, duplicated, extra = 3, 2, 2
        broken = []
        if guarantee in ("at-least-once", "exactly-once") and lost:
            broken.append(f"lost {lost}")
        if guarantee in ("at-most-once", "exactly-once") and duplicated:
            broken.append(f"duplicated {duplicated}")
        verdict = {
            "inputs": MESSAGES,
            "lost": lost,
            "duplicated": duplicated,
            "extra_copies": extra,
            "reordered": [0, 57, 3, 1][j],
            "aborted_reads": aborted,
            "unknown": 0,
            "examples": {
                "lost": [1000 + k for k in range(min(lost, 10))],
                "duplicated": [2000 + k for k in range(min(duplicated, 10))],
                "reordered": [],
                "aborted": [],
                "unknown": [],
            },
            "broken": broken,
            "kept": not broken,
        }
        windows = [{"window": "before faults", "inputs": 6150, "lost": 0, "duplicated": 0}]
        for f in faults:
            if f["ran"]:
                share = 1 if f["kind"] == "broker-crash" else 0
                windows.append(
                    {
                        "window": f"{f['kind']} @{f['at_s']:.1f}s",
                        "inputs": 6000,
                        "lost": lost // 3 + (lost % 3 if share else 0),
                        "duplicated": duplicated // 3 + (duplicated % 3 if share else 0),
                    }
                )
        rows.append(
            {
                "name": name,
                "guarantee": guarantee,
                "sink": sink,
                "verdict": verdict,
                "throughput_msg_s": thr,
                "overhead": 0.0 if j == 0 else round(1 - thr / base, 4),
                "latency_ms": {"p50": p50, "p99": p99, "max": mx, "count": MESSAGES - lost},
                "latency_hist": _hist(p50, MESSAGES - lost),
                "timeline": _timeline(500.0, faults, j * 0.5),
                "transactions": (
                    {"committed": 500, "aborted": 3, "abort_rate": 0.006}
                    if guarantee == "exactly-once" and sink == "topic"
                    else None
                ),
                "rebalances": [4, 7, 7, 6][j],
                "per_fault": windows,
            }
        )
    producer = [
        {
            "acks": "0",
            "sent": 3000,
            "acked": 0,
            "failed": 0,
            "acked_then_missing": 0,
            "missing": 17,
            "judged": False,
        },
        {
            "acks": "1",
            "sent": 3000,
            "acked": 2990,
            "failed": 10,
            "acked_then_missing": 0,
            "missing": 10,
            "judged": False,
        },
        {
            "acks": "all",
            "sent": 3000,
            "acked": 2985,
            "failed": 15,
            "acked_then_missing": 0 if kept else 2,
            "missing": 15 if kept else 17,
            "judged": True,
        },
    ]
    return {
        "version": 1,
        "tool": "odradek verify 0.1.0",
        "command": "odradek verify --seed 7 --messages 30000 --rate 500 --report report.html",
        "started_at": "2026-12-02T13:40:00Z",
        "duration_s": 118.2,
        "seed": 7,
        "bootstrap": "127.0.0.1:40123",
        "target": "embedded Odradek broker",
        "messages": MESSAGES,
        "partitions": 6,
        "rate": 500,
        "kept": kept,
        "exit_code": 0 if kept else 1,
        "faults": faults,
        "rows": rows,
        "producer": producer,
        "errors": [] if kept else ["worker exactly-once/w2 exited with 1 during the broker-crash fault"],
    }
