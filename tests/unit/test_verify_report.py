"""The report of ``odradek verify`` from a made-up result: the terminal matrix says the numbers and the
verdict, the JSON file round-trips, the HTML report is one self-contained file with its three plots, and a
partial result (a run cut short) renders without an exception."""

from __future__ import annotations

import copy
import io
import json
import math
import re
from html.parser import HTMLParser

import pytest
from rich.console import Console

from odradek.verify import report
from support.verify_sample import sample_result

PLOT_IDS = ("plot-throughput", "plot-latency", "plot-faults")


def rendered(result: dict, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width)
    report.render_matrix(result, console)
    return console.file.getvalue()


def line_of(text: str, start: str) -> str:
    """The table line whose first cell is ``start``."""
    for line in text.splitlines():
        if re.match(rf"^\W*{re.escape(start)}\s", line):
            return line
    raise AssertionError(f"no line starting with {start!r} in:\n{text}")


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]


# -- the terminal ---------------------------------------------------------------------------------------


def test_the_matrix_shows_each_rows_numbers_and_its_verdict():
    out = rendered(sample_result())
    assert "\x1b[" not in out  # a console that is no terminal gets plain text
    assert cells(line_of(out, "at-most-once")) == [
        "at-most-once",
        "41",
        "0",
        "0",
        "0",
        "15,234",
        "310",
        "baseline",
        "kept",
    ]
    assert cells(line_of(out, "at-least-once")) == [
        "at-least-once",
        "0",
        "212",
        "57",
        "0",
        "13,890",
        "920",
        "8.8%",
        "kept",
    ]
    sql = cells(line_of(out, "exactly-once → SQL"))
    assert sql[1:] == ["0", "0", "1", "0", "7,410", "1,210", "51.4%", "kept"]
    assert out.rstrip().splitlines()[-1] == "every guarantee kept its promise"
    assert "BROKEN" not in out


def test_the_faults_and_producer_tables_are_printed():
    out = rendered(sample_result())
    assert cells(line_of(out, "consumer-crash"))[:4] == ["consumer-crash", "12.3 s", "1.5 s", "ran"]
    slow = cells(line_of(out, "slow"))
    assert slow[:4] == ["slow", "50.0 s", "2.0 s", "not run"] and "proxy could not" in slow[4]
    assert "exactly-once → SQL 2.9 s" in out  # recovery, per row
    assert cells(line_of(out, "0")) == ["0", "3,000", "0", "0", "0", "17", "not judged"]
    assert cells(line_of(out, "1")) == ["1", "3,000", "2,990", "10", "0", "10", "not judged"]
    assert cells(line_of(out, "all")) == ["all", "3,000", "2,985", "15", "0", "15", "kept"]


def test_a_broken_run_says_what_broke():
    out = rendered(sample_result(kept=False))
    exactly = cells(line_of(out, "exactly-once"))
    assert exactly[1:3] == ["3", "2"] and exactly[-1].startswith("BROKEN: lost 3")
    assert "duplicated 2" in out
    assert cells(line_of(out, "all"))[-1] == "BROKEN"
    last = out.rstrip().splitlines()[-1]
    assert last == (
        "BROKEN: exactly-once: lost 3, duplicated 2; producer acks=all: 2 acknowledged, then missing"
    )
    assert "error: worker exactly-once/w2 exited" in out
    assert report.summary(sample_result()) == "every guarantee kept its promise"


def test_a_narrow_terminal_keeps_every_number_whole():
    out = rendered(sample_result(kept=False), width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in line_of(out, "exactly-once → SQL")
    assert line_of(out, "exactly-once → SQL").split()[-7:] == ["0", "0", "1", "0", "7,410", "1,210", "51.4%"]
    assert "exactly-once: BROKEN: lost 3, duplicated 2" in out
    assert "2.0-2.9 s" in out  # the consumer crash's recovery, over the rows


def test_markup_in_names_is_printed_as_text():
    result = sample_result()
    result["rows"][0]["name"] = "[bold]odd[/bold] row"
    assert "[bold]odd[/bold] row" in rendered(result)


# -- the live display -------------------------------------------------------------------------------------


def live_update(view: report.LiveView) -> None:
    view.update(
        "faults",
        12.5,
        6000,
        30000,
        {
            "at-least-once": {"outputs": 5890, "workers": 2, "status": "running"},
            "exactly-once → SQL": {"outputs": 5102, "workers": 1, "status": "restarting w2"},
        },
        [
            {"kind": "consumer-crash", "at_s": 12.3, "duration_s": 1.5, "done": True},
            {"kind": "broker-crash", "at_s": 25.0, "duration_s": 4.0, "done": False},
        ],
    )


def test_the_live_view_prints_nothing_on_a_console_that_is_no_terminal():
    console = Console(file=io.StringIO(), width=100)
    with report.LiveView(console) as view:
        assert not view.enabled
        live_update(view)
    assert console.file.getvalue() == ""
    quiet = Console(file=io.StringIO(), width=100, force_terminal=True)
    with report.LiveView(quiet, enabled=False) as view:
        live_update(view)
    assert quiet.file.getvalue() == ""


def test_the_live_view_shows_the_phase_the_rows_and_the_faults():
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with report.LiveView(console) as view:
        assert view.enabled
        live_update(view)
    plain = Console(file=io.StringIO(), width=100)
    plain.print(view.renderable())
    text = plain.file.getvalue()
    assert "odradek verify: faults" in text and "produced 6,000 of 30,000" in text
    assert "exactly-once → SQL" in text and "5,102" in text and "restarting w2" in text
    assert "✓ consumer-crash @12.3s" in text and "· broker-crash @25.0s" in text


# -- JSON -------------------------------------------------------------------------------------------------


def test_the_json_file_round_trips(tmp_path):
    result = sample_result(kept=False)
    path = tmp_path / "result.json"
    report.write_json(result, path)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == result
    assert text.startswith('{\n  "')  # indented by 2
    assert "exactly-once → SQL" in text  # not \u-escaped
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
    report.write_json(sample_result(), path)  # replaces the file
    assert json.loads(path.read_text(encoding="utf-8"))["kept"] is True


# -- HTML -------------------------------------------------------------------------------------------------


class Outline(HTMLParser):
    """Which tags appear inside each element that has an id, and every tag's attributes."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "source", "col", "area", "base", "embed"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []
        self.inside: dict[str, list[str]] = {}
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        for _, owner in self.stack:
            if owner is not None:
                self.inside[owner].append(tag)
        if tag in self.VOID:
            return
        owner = a.get("id")
        if owner is not None:
            self.inside.setdefault(owner, [])
            self.text.setdefault(owner, [])
        self.stack.append((tag, owner))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        for _, owner in self.stack:
            if owner is not None:
                self.text[owner].append(data)


def outline(text: str) -> Outline:
    o = Outline()
    o.feed(text)
    o.close()
    return o


NETWORK = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)


def assert_self_contained(text: str) -> None:
    assert not NETWORK.search(text), NETWORK.search(text).group(0)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.I)
    assert "@import" not in text and "<link" not in text.lower()
    assert "<script" not in text.lower() and "<img" not in text.lower()
    for tag, attrs in outline(text).attrs:
        for name, value in attrs.items():
            if name in ("src", "href", "xlink:href") and value:
                assert value.startswith("#"), (tag, name, value)


def test_the_html_report_is_one_self_contained_file_with_three_plots(tmp_path):
    path = tmp_path / "report.html"
    report.write_html(sample_result(), path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert_self_contained(text)
    o = outline(text)
    for plot_id in PLOT_IDS:
        assert "svg" in o.inside[plot_id], plot_id
        assert "text" in o.inside[plot_id]  # svg.fonttype none: labels stay text, in the browser's fonts
    assert "path" in o.inside["plot-throughput"]
    matrix = "".join(o.text["matrix"])
    for word in ("at-most-once", "exactly-once → SQL", "15,234", "baseline", "51.4%", "kept", "Overhead"):
        assert word in matrix, word
    assert "BROKEN" not in matrix
    assert o.inside["faults"].count("tr") == 5 and "not run" in "".join(o.text["faults"])
    assert o.inside["producer"].count("tr") == 4
    assert "every guarantee kept its promise" in "".join(o.text["verdict"])
    assert "odradek verify --seed 7 --messages 30000" in text
    assert "2026-12-02T13:40:00Z" in text and ">7<" in text
    assert "no Kafka transactions" in text


def test_a_broken_html_report_says_what_broke(tmp_path):
    path = tmp_path / "report.html"
    report.write_html(sample_result(kept=False), path)
    text = path.read_text(encoding="utf-8")
    o = outline(text)
    assert "BROKEN: exactly-once: lost 3" in "".join(o.text["verdict"])
    assert "BROKEN: lost 3, duplicated 2" in "".join(o.text["matrix"])
    assert "e.g. lost: 1000, 1001, 1002" in "".join(o.text["matrix"])
    assert "BROKEN" in "".join(o.text["producer"])
    assert "<title>odradek verify: BROKEN</title>" in text


def test_every_string_in_the_html_report_is_escaped(tmp_path):
    result = sample_result()
    evil = '<script>alert("x")</script>'
    result["rows"][1]["name"] = evil
    result["faults"][0]["note"] = f"restarted {evil}"
    result["command"] = f"odradek verify --seed '{evil}'"
    result["producer"][0]["acks"] = evil
    result["errors"] = [evil]
    result["rows"][1]["per_fault"][0]["window"] = evil
    path = tmp_path / "report.html"
    report.write_html(result, path)
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert_self_contained(text)


def partial_results() -> list[dict]:
    base = sample_result()
    cut = copy.deepcopy(base)
    cut["rows"][0]["timeline"] = {"bucket_s": 1.0, "t_s": [], "outputs_per_s": []}
    cut["rows"][1]["timeline"] = None
    cut["rows"][1]["latency_hist"] = {"edges_ms": [], "counts": []}
    cut["rows"][2]["latency_hist"] = {"edges_ms": [0.0, 1.0, 2.0], "counts": [0, 0]}
    cut["rows"][3]["latency_hist"] = {"edges_ms": [1.0, 2.0], "counts": [5, 6, 7]}  # inconsistent
    cut["rows"][2]["latency_ms"] = None
    cut["rows"][2]["transactions"] = None
    cut["rows"][3]["verdict"] = None
    cut["rows"][0]["throughput_msg_s"] = None
    cut["rows"][1]["overhead"] = None
    cut["rows"][2]["per_fault"] = []
    cut["rows"][3]["per_fault"] = None
    cut["faults"][0]["recovery_s"] = None
    cut["faults"][1]["at_s"] = None
    cut["faults"][2]["duration_s"] = None
    cut["faults"][3]["ran"] = None
    cut["producer"] = None
    cut["errors"] = ["the broker did not come back"]

    zeros = copy.deepcopy(base)
    for row in zeros["rows"]:
        row["verdict"].update(lost=0, duplicated=0, reordered=0, inputs=0)
        row["latency_hist"]["counts"] = [0] * len(row["latency_hist"]["counts"])
        row["timeline"]["outputs_per_s"] = [0.0] * len(row["timeline"]["outputs_per_s"])
        row["per_fault"] = [{**w, "lost": 0, "duplicated": 0, "inputs": 0} for w in row["per_fault"]]
        row["latency_ms"] = {"p50": None, "p99": None, "max": None, "count": 0}

    odd = copy.deepcopy(base)
    odd["rows"][0]["latency_ms"]["p99"] = math.nan
    odd["rows"][1]["throughput_msg_s"] = math.inf
    odd["rows"][2]["timeline"]["outputs_per_s"][3] = None
    odd["rows"][3]["verdict"]["lost"] = "?"
    odd["faults"].append("not a fault")
    odd["rows"].append({"name": "no data yet"})

    no_faults = copy.deepcopy(base)
    no_faults["faults"] = []
    for row in no_faults["rows"]:
        row["per_fault"] = row["per_fault"][:1]

    return [cut, zeros, odd, no_faults, {"rows": [], "faults": [], "producer": []}, {}]


@pytest.mark.parametrize("n", range(len(partial_results())))
def test_a_partial_result_renders_everywhere_without_an_exception(n, tmp_path):
    result = partial_results()[n]
    out = rendered(result)
    assert out.strip()
    report.render_matrix(result, Console(file=io.StringIO(), width=60))
    report.write_json(result, tmp_path / "result.json")
    report.write_html(result, tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    o = outline(text)
    for plot_id in PLOT_IDS:
        assert "svg" in o.inside[plot_id], plot_id  # a plot with no data still draws, and says so
    assert "plot unavailable" not in text


def test_a_partial_result_shows_what_is_missing():
    cut = partial_results()[0]
    out = rendered(cut)
    assert cells(line_of(out, "at-most-once"))[5] == "—"  # no throughput
    assert cells(line_of(out, "exactly-once → SQL"))[-1] == "—"  # no verdict
    assert "exactly-once → SQL: no verdict" in report.summary(cut)
    assert report.summary({}) == "no guarantee was measured"
    assert "no latency data" not in report.render_html(cut)  # two rows still have a histogram
    assert "no timeline data" in report.render_html(partial_results()[4])


def test_the_commands_console_gives_a_pipe_the_full_layout(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console = report.console(io.StringIO())
    assert console.width >= report.WIDE
    report.render_matrix(sample_result(), console)
    out = console.file.getvalue()
    for word in ("Lost", "Duplicates", "Reordered", "Aborted", "Throughput", "p99", "Overhead", "Verdict"):
        assert word in out, word
