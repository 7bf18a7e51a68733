"""The checker is itself tested: deliberately broken processors are caught with the right counts, and
a run where nothing is broken reports nothing.

``--sabotage`` swaps each pipeline's processor for a broken one (``odradek.verify.worker``):
``drop-every-1000`` never writes inputs 999, 1999, ...; ``write-twice`` writes them twice;
``commit-before-ack`` commits positions while its outputs still wait in the producer, so a crash loses
them. The first two have counts known in advance; the third is counted directly from the broker's data.
"""

from __future__ import annotations

import pytest
from verifykit import run_verify

from odradek.testing import EmbeddedBroker
from odradek.verify.workload import read

pytestmark = pytest.mark.slow

QUIET = ["--faults", "none", "--throughput-messages", "0", "--rate", "2000"]
ZERO = ("lost", "duplicated", "extra_copies", "reordered", "aborted_reads", "unknown")


def test_a_run_where_nothing_is_broken_reports_nothing(tmp_path):
    out = run_verify(tmp_path, *QUIET, "--messages", "4000")
    assert out.code == 0, out.explain()
    for row in out.result["rows"]:
        v = row["verdict"]
        assert v["inputs"] == 4000 and v["broken"] == [], row
        assert {k: v[k] for k in ZERO} == dict.fromkeys(ZERO, 0), (row["name"], v)
    assert "every guarantee kept its promise" in out.stdout, out.explain()


def test_a_processor_dropping_every_1000th_input_is_caught_losing_exactly_those(tmp_path):
    out = run_verify(tmp_path, *QUIET, "--messages", "5000", "--sabotage", "drop-every-1000")
    assert out.code == 1, out.explain()
    for row in out.result["rows"]:
        v = row["verdict"]
        assert v["lost"] == 5 and v["duplicated"] == 0, (row["name"], v)
        assert v["examples"]["lost"] == [999, 1999, 2999, 3999, 4999]
        # Loss is what at-most-once allows; the others promised none.
        assert v["kept"] == (row["guarantee"] == "at-most-once"), (row["name"], v)
    assert "BROKEN" in out.stdout, out.explain()


def test_a_processor_writing_every_1000th_input_twice_is_caught_duplicating_exactly_those(tmp_path):
    out = run_verify(tmp_path, *QUIET, "--messages", "5000", "--sabotage", "write-twice")
    assert out.code == 1, out.explain()
    for row in out.result["rows"]:
        v = row["verdict"]
        assert v["duplicated"] == 5 == v["extra_copies"] and v["lost"] == 0, (row["name"], v)
        assert v["examples"]["duplicated"] == [999, 1999, 2999, 3999, 4999]
        assert v["kept"] == (row["guarantee"] == "at-least-once"), (row["name"], v)


def test_a_processor_committing_before_its_outputs_are_acknowledged_loses_on_a_crash(tmp_path):
    work = tmp_path / "work"
    out = run_verify(
        tmp_path,
        "--sabotage", "commit-before-ack",
        "--guarantee", "at-least-once",
        "--no-sql",
        "--faults", "consumer-crash,consumer-crash",
        "--messages", "8000",
        "--rate", "500",
        "--throughput-messages", "0",
        "--work-dir", str(work),
    )  # fmt: skip
    assert out.code == 1, out.explain()
    r = out.result
    v = out.verdict("at-least-once")
    assert v["lost"] > 0 and not v["kept"], v
    # The verifier's count against a direct one, from the broker's own data after the run.
    with EmbeddedBroker(data_dir=work / "broker") as b:
        inputs = {
            d.seq
            for d in read(b.bootstrap_servers, r["input_topic"], isolation="read_uncommitted").deliveries
        }
        sink = {d.seq for d in read(b.bootstrap_servers, out.row("at-least-once")["sink_name"]).deliveries}
    assert len(inputs) == 8000 == r["workload"]["acked"]
    missing = sorted(inputs - sink)
    assert len(missing) == v["lost"], (len(missing), v)
    assert missing[:10] == v["examples"]["lost"]
