"""The stream-processing benchmark keeps working: `python -m bench.stream --quick` runs every row.

Speed is not judged here (CI machines are noisy): only that every row produced a positive throughput
with all its outputs there, none skipped (Quix Streams is installed into its own venv in the cache on
first use) and no errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from support.benchrun import repo_on_path, run_quick

pytestmark = pytest.mark.slow


def test_bench_stream_quick_runs_every_row(tmp_path: Path) -> None:
    with repo_on_path():
        from bench.stream import QUICK_SIZES, ROWS

    # The timeout: the first run on a machine also installs Quix Streams into its venv.
    report = run_quick("bench.stream", tmp_path, "stream-*.json", timeout=1200)
    assert report["mode"] == "quick"
    assert report["skipped"] == {}, report["skipped"]
    problems = []
    for row in ROWS:
        entry = report["rows"].get(row.name)
        if entry is None:
            problems.append(f"{row.name}: missing")
            continue
        for rnd in entry["rounds"]:
            if "error" in rnd:
                problems.append(f"{row.name}: {rnd['error']}")
                continue
            rate = rnd.get("msg_per_s")
            if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
                problems.append(f"{row.name}: throughput {rate!r}")
            if rnd.get("distinct") != QUICK_SIZES.records:
                problems.append(f"{row.name}: {rnd.get('distinct')} of {QUICK_SIZES.records} outputs")
    assert not problems, "\n".join(problems) + "\n\n" + report.get("table", "")
    assert report["broker_exit_code"] == 0, report.get("table", "")
