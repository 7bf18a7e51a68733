"""Pieces the one-command side-by-side benchmarks share (admin, compaction, compression, fetch_sessions,
latency): a results directory for one run, and one measuring client run as a child process.

A benchmark module runs its own client role as ``python -m bench.<module> --client JSON``; the client
prints exactly one line ``RESULT {json}`` on stdout when done (as bench/client.py's roles do), and
everything else on stderr, which goes to a log file.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def end_cleanly_on_signals() -> None:
    """Make SIGTERM and SIGHUP end the run as Ctrl-C does: by an exception, so the ``finally`` blocks
    stop the brokers and remove their data directories. Killed by a bare signal, a run would leave
    them in ``$TMPDIR`` (a full TLS run's are tens of GB). Call it where a benchmark runs as a script."""

    def end(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, end)


def run_dirs(results_dir: Path, name: str) -> tuple[str, Path]:
    """(UTC stamp, log directory) for one run of benchmark ``name`` under ``results_dir``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = results_dir / f"{stamp}-{name}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return stamp, log_dir


def run_client(module: str, params: dict, stderr: Path, timeout_s: float) -> dict | None:
    """Run ``python -m bench.<module> --client JSON`` (stderr appended to ``stderr``) and return its
    RESULT, or None when it failed or printed none."""
    with open(stderr, "a") as err:
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{module}", "--client", json.dumps(params)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50, p99, mean and max of latency samples in ms (nearest-rank), and how many there were."""
    ordered = sorted(samples_ms)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "max_ms": round(ordered[-1], 3),
        "n": len(ordered),
    }
