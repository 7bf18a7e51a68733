"""The HTML report of ``odradek verify`` in a real browser: headless Chromium (Debian's package, driven by
playwright-core from tests/node) loads the file with nothing fetched, no script error and no console error,
and draws each of the three plots with a non-empty box. The full-page screenshot is kept as a test
artefact, in ``$ODRADEK_ARTIFACTS`` (default: build/test-artifacts)."""

from __future__ import annotations

from pathlib import Path

from odradek.verify import report
from support.browser import PLOT_IDS, open_report
from support.verify_sample import sample_result


def test_the_html_report_renders_in_headless_chromium(kafkajs: Path, tmp_path: Path) -> None:
    """``kafkajs`` is the fixture that installs tests/node's packages (playwright-core among them)."""
    html_path = tmp_path / "verify-report.html"
    report.write_html(sample_result(kept=False), html_path)  # the broken one shows more
    seen, png_path = open_report(html_path, "verify-report")
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
