"""``odradek verify`` from the command line: the default run, usage errors, each fault on its own.

Every run here is the real thing: an ``odradek serve`` child behind the fault proxy, odradek.stream
workers in child processes, the sinks read back and judged.
"""

from __future__ import annotations

import pytest
from verifykit import run_verify

from odradek.verify.checker import GUARANTEES
from support.browser import PLOT_IDS, open_report

pytestmark = pytest.mark.slow

ROWS = ["at-most-once", "at-least-once", "exactly-once", "exactly-once → SQL"]


def test_with_no_arguments_it_runs_every_guarantee_under_every_fault_and_exits_0(tmp_path, kafkajs):
    """(Besides --quiet and --json, which the tests read, and --report, which Chromium opens.)
    ``kafkajs`` installs tests/node's packages, playwright-core among them."""
    html = tmp_path / "report.html"
    out = run_verify(tmp_path, "--report", str(html), timeout=900)
    assert out.code == 0, out.explain()
    r = out.result
    assert [row["name"] for row in r["rows"]] == ROWS
    assert sorted(f["kind"] for f in r["faults"]) == ["broker-crash", "consumer-crash", "partition", "slow"]
    assert all(f["ran"] for f in r["faults"]), r["faults"]
    assert r["kept"] and r["messages"] == 30_000
    for row in r["rows"]:
        v = row["verdict"]
        assert v["inputs"] == 30_000 and v["kept"], row
        assert row["throughput_msg_s"] > 0 and row["latency_ms"]["p99"] > 0, row
    assert out.verdict("at-least-once")["lost"] == 0
    for name in ("exactly-once", "exactly-once → SQL"):
        assert out.verdict(name)["lost"] == out.verdict(name)["duplicated"] == 0
    assert out.verdict("at-most-once")["duplicated"] == 0
    assert next(c for c in r["producer"] if c["acks"] == "all")["acked_then_missing"] == 0
    # The matrix, in the terminal.
    for word in ("Lost", "Duplicates", "Reordered", "Aborted", "Throughput", "p99", "Overhead", *ROWS):
        assert word in out.stdout, out.explain()
    # The report of this real run, in a real browser.
    seen, _png = open_report(html, "verify-default-run")
    assert seen["pageErrors"] == [] and seen["consoleErrors"] == [] and seen["requests"] == [], seen
    assert seen["matrixRows"] == 4
    for plot_id in PLOT_IDS:
        plot = seen["plots"][plot_id]
        assert plot["found"] and plot["svgs"] >= 1 and plot["width"] > 100, (plot_id, plot)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--messages", "0"], "--messages"),
        (["--faults", "meteor"], "unknown fault 'meteor'"),
        (["--guarantee", "twice"], "unknown guarantee 'twice'"),
        (["--broker-kill-cmd", "true"], "go together"),
        (["--bootstrap", "127.0.0.1:1", "--faults", "none"], "cannot reach the cluster"),
    ],
)
def test_usage_and_setup_errors_exit_2_with_one_line(tmp_path, args, message):
    out = run_verify(tmp_path, *args, json_out=False, timeout=120)
    assert out.code == 2, out.explain()
    assert message in out.stderr, out.explain()
    assert "Traceback" not in out.stderr, out.explain()


@pytest.mark.parametrize("fault", ["consumer-crash", "broker-crash", "partition", "slow"])
def test_each_fault_on_its_own_every_guarantee_keeps_its_promise(tmp_path, fault):
    out = run_verify(
        tmp_path,
        "--faults", fault,
        "--messages", "6000",
        "--rate", "500",
        "--throughput-messages", "0",
        "--seed", "3",
        timeout=600,
    )  # fmt: skip
    assert out.code == 0, out.explain()
    r = out.result
    assert [f["kind"] for f in r["faults"]] == [fault] and r["faults"][0]["ran"], r["faults"]
    for row in r["rows"]:
        assert row["verdict"]["inputs"] == 6000
        assert row["verdict"]["kept"], (fault, row["name"], row["verdict"])
        assert row["verdict"]["aborted_reads"] == 0
    assert out.verdict("at-least-once")["lost"] == 0
    assert out.verdict("exactly-once")["duplicated"] == out.verdict("exactly-once")["lost"] == 0
    if fault == "slow":  # the stalled member's partitions moved
        assert all(row["rebalances"] > 0 for row in r["rows"]), [row["rebalances"] for row in r["rows"]]
    assert set(GUARANTEES) <= {row["guarantee"] for row in r["rows"]}
