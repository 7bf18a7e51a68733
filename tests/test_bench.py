"""The benchmark suite keeps working: `python -m bench --quick` runs every workload against every broker.

Speed is not judged here (CI machines are noisy); only that each workload produced positive figures and
no errors, for Odradek and both Apache Kafka columns.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from support.benchrun import repo_on_path, run_quick

pytestmark = pytest.mark.slow


def test_bench_quick_runs_every_workload(kafka_jars: Path, tmp_path: Path) -> None:
    with repo_on_path():
        from bench.run import BROKER_ORDER
        from bench.workloads import WORKLOADS

    report = run_quick("bench", tmp_path, "*.json", timeout=900)
    assert report["mode"] == "quick"
    assert set(report["brokers"]) == set(BROKER_ORDER)  # the default run: odradek and both Kafka columns
    problems = []
    for broker, entry in report["brokers"].items():
        if entry.get("error"):
            problems.append(f"{broker}: {entry['error']}")
        for workload in WORKLOADS:
            res = entry["workloads"].get(workload)
            if res is None:
                problems.append(f"{broker}/{workload}: missing")
                continue
            if res.get("error"):
                problems.append(f"{broker}/{workload}: {res['error']}")
                continue
            metrics = res.get("metrics") or {}
            if not metrics:
                problems.append(f"{broker}/{workload}: no metrics")
            for name, value in metrics.items():
                if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                    problems.append(f"{broker}/{workload}/{name}: {value!r}")
    assert not problems, "\n".join(problems) + "\n\n" + report.get("table", "")
    assert "like-for-like" in report["table"].lower()
