"""The benchmark suites run from the tests (tests/test_bench.py, tests/test_bench_stream.py): the ``bench``
package imported from the repository root, and a ``--quick`` run whose one JSON report is returned."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .odradek import REPO_ROOT


@contextlib.contextmanager
def repo_on_path() -> Iterator[None]:
    """``import bench...`` works inside the block (the repository root is on ``sys.path`` for it)."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        yield
    finally:
        sys.path.remove(str(REPO_ROOT))


def run_quick(module: str, tmp_path: Path, report_glob: str, timeout: float) -> dict:
    """``python -m <module> --quick`` with its results and work in ``tmp_path``; asserts it exited 0 and
    wrote exactly one report matching ``report_glob``, and returns that report."""
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            "--quick",
            "--results-dir",
            str(results),
            "--work-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + "\n" + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    files = sorted(results.glob(report_glob))
    assert len(files) == 1, out[-5000:]
    return json.loads(files[0].read_text())
