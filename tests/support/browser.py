"""The HTML report of ``odradek verify`` in headless Chromium (Debian's package, driven by playwright-core
from tests/node): what the page loaded, its errors, its plots, and a screenshot kept as a test artefact
in ``$ODRADEK_ARTIFACTS`` (default: build/test-artifacts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from support.deps import missing_dependency
from support.node import json_lines, run_node

REPO = Path(__file__).resolve().parents[2]
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


def open_report(html_path: Path, name: str) -> tuple[dict, Path]:
    """Load ``html_path`` in Chromium; (what the page showed, the screenshot kept as ``<name>.png``)."""
    browser = chromium()
    png_path = html_path.with_suffix(".png")
    proc = run_node("verify_report.js", browser, html_path, png_path, timeout=180)
    (seen,) = json_lines(proc.stdout)
    out = artifacts_dir()
    shutil.copyfile(png_path, out / f"{name}.png")
    shutil.copyfile(html_path, out / f"{name}.html")
    print(f"screenshot of the HTML report: {out / f'{name}.png'}")
    return seen, png_path
