"""The HTML report of ``odradek verify`` in a real browser: headless Chromium (Debian's package, driven by
playwright-core from tests/node) loads the file with nothing fetched, no script error and no console error,
and draws each of the three plots with a non-empty box. The full-page screenshot is kept as a test
artefact, in ``$ODRADEK_ARTIFACTS`` (default: build/test-artifacts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from odradek.verify import report
from support.deps import missing_dependency
from support.node import json_lines, run_node
from support.verify_sample import sample_result

REPO = Path(__file__).resolve().parents[1]
PLOT_IDS = ("plot-throughput", "plot-latency", "plot-faults")


def chromium() -> str:
    path = os.environ.get("ODRADEK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        missing_dependency("`chromium` not found", "run scripts/test as root: it installs Debian's chromium")
    return path


def artifacts_dir() -> Path:
    path = Path(os.environ.get("ODRADEK_ARTIFACTS") or REPO / "build" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_html_report_renders_in_headless_chromium(kafkajs: Path, tmp_path: Path) -> None:
    """``kafkajs`` is the fixture that installs tests/node's packages (playwright-core among them)."""
    browser = chromium()
    html_path = tmp_path / "verify-report.html"
    png_path = tmp_path / "verify-report.png"
    report.write_html(sample_result(kept=False), html_path)  # the broken one shows more

    proc = run_node("verify_report.js", browser, html_path, png_path, timeout=180)
    (seen,) = json_lines(proc.stdout)

    out = artifacts_dir()
    shutil.copyfile(png_path, out / "verify-report.png")
    shutil.copyfile(html_path, out / "verify-report.html")
    print(f"screenshot of the HTML report: {out / 'verify-report.png'}")

    assert seen["pageErrors"] == []
    assert seen["consoleErrors"] == []
    assert seen["requests"] == []  # nothing but the file itself was loaded
    assert seen["title"] == "odradek verify: BROKEN"
    assert seen["matrixRows"] == 4
    for plot_id in PLOT_IDS:
        plot = seen["plots"][plot_id]
        assert plot["found"] and plot["svgs"] >= 1, (plot_id, plot)
        assert plot["width"] > 100 and plot["height"] > 100, (plot_id, plot)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A page of tables and plots, not a blank one.
    assert png_path.stat().st_size == seen["screenshotBytes"] > 50_000
