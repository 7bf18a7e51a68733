"""The TLS benchmark keeps working: `python -m bench.tls --quick` runs every workload over PLAINTEXT and SSL
on Odradek and on Apache Kafka (log.flush.interval.messages=1, the like-for-like column).

Speed is not judged here (CI machines are noisy): only that every row has positive, consistent figures,
that the SSL listener really negotiated TLS on both brokers, and that the table says what it compares.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.benchrun import repo_on_path, run_quick
from support.kit import wait_until
from support.odradek import REPO_ROOT

pytestmark = pytest.mark.slow


def test_bench_tls_quick_runs_every_row(kafka_jars: Path, tmp_path: Path) -> None:
    with repo_on_path():
        from bench.tls import DEFAULT_BROKERS, KIB, PROTOCOLS, WORKLOADS

    report = run_quick("bench.tls", tmp_path, "*-tls.json", timeout=900)
    assert report["mode"] == "quick"
    assert set(report["brokers"]) == set(DEFAULT_BROKERS)
    assert report["params"]["clients"] == ["confluent"]
    problems = []
    for broker, entry in report["brokers"].items():
        if entry.get("error"):
            problems.append(f"{broker}: {entry['error']}")
            continue
        if entry.get("tls", {}).get("version") not in ("TLSv1.2", "TLSv1.3"):
            problems.append(f"{broker}: SSL listener negotiated {entry.get('tls')!r}")
        for workload in WORKLOADS:
            for protocol in PROTOCOLS:
                key = f"confluent/{workload}/{protocol}"
                row = entry.get("rows", {}).get(key)
                if row is None or "error" in row:
                    problems.append(f"{broker}/{key}: {row and row.get('error') or 'missing'}")
                    continue
                for name in ("mb_per_s", "msg_per_s"):
                    value = row.get(name)
                    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                        problems.append(f"{broker}/{key}/{name}: {value!r}")
                if not problems and not math.isclose(
                    row["msg_per_s"] * KIB / 1e6, row["mb_per_s"], rel_tol=0.01
                ):
                    problems.append(f"{broker}/{key}: {row['msg_per_s']} rec/s is not {row['mb_per_s']} MB/s")
                cpu = row.get("cpu_s_per_100mb")
                if not (isinstance(cpu, int | float) and math.isfinite(cpu) and cpu >= 0):
                    problems.append(f"{broker}/{key}/cpu_s_per_100mb: {cpu!r}")
    table = report.get("table", "")
    assert not problems, "\n".join(problems) + "\n\n" + table
    assert "like-for-like" in table.lower()
    assert "odradek/kafka-flush" in table
    assert table.count("| SSL |") == len(WORKLOADS)


@pytest.mark.parametrize(
    "argv",
    [["--workloads", "produce_1k_acks5"], ["--workloads", ","], ["--only", "odradek,redpanda"]],
)
def test_bench_tls_refuses_unknown_names_in_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with repo_on_path():
        from bench.tls import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "workloads from produce_1k_acks_all" in err


def test_bench_tls_runs_only_the_workloads_asked_for() -> None:
    with repo_on_path():
        from bench.tls import WORKLOADS, parse_args

    assert parse_args([]).workloads == list(WORKLOADS)
    chosen = parse_args(["--workloads", "consume, produce_1k_acks1"]).workloads
    assert chosen == ["consume", "produce_1k_acks1"]


@pytest.mark.parametrize(("when", "sig"), [("== Odradek", signal.SIGTERM), ("round 1", signal.SIGHUP)])
def test_bench_tls_ended_by_a_signal_removes_its_brokers_and_data(
    tmp_path: Path, when: str, sig: int
) -> None:
    """A run ended by SIGTERM or SIGHUP, while it starts a broker or during a round, stops the brokers it
    started and removes their data directories as a finished run does: a killed full run once left tens
    of GB in $TMPDIR."""
    out = tmp_path / "stdout"
    with open(out, "w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.tls", "--only", "odradek", "--quick"]
            + ["--results-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path)],
            cwd=REPO_ROOT,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: when in out.read_text() or proc.poll() is not None, 120, repr(when))
        assert proc.poll() is None, out.read_text()
        (work,) = tmp_path.glob("odradek-bench-tls-odradek-*")
        assert any(work.iterdir()), "the broker's data directory is in use"
        proc.send_signal(sig)
        assert proc.wait(60) == 128 + sig, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not work.exists(), "the data directory was left behind"
    using = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(work) in _cmdline(pid)]
    assert not using, f"processes still running on {work}: {using}"


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
