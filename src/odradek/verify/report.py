"""The output side of ``odradek verify``: the terminal matrix, the live progress display, the JSON file
and a self-contained HTML report, all rendered from the result dict (``docs/verify.md``).

Everything here reads the result defensively: a run cut short, a fault that never ran or a row whose sink
could not be read leaves ``None``, empty lists or missing keys, and the report shows them as such instead of
failing. rich draws the terminal tables and the live display, matplotlib the report's plots (well-kept
libraries rather than hand-written layout and plotting code).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = ["LiveView", "console", "render_matrix", "summary", "write_html", "write_json"]

DASH = "—"
MATRIX_COLUMNS = (
    "Guarantee",
    "Lost",
    "Duplicates",
    "Reordered",
    "Aborted reads",
    "Throughput (msg/s)",
    "p99 (ms)",
    "Overhead (vs at-most-once)",
    "Verdict",
)
# The same headers for a terminal: broken where they may wrap, and shorter ones for a narrow terminal.
_MATRIX_HEADERS = (
    "Guarantee",
    "Lost",
    "Duplicates",
    "Reordered",
    "Aborted\nreads",
    "Throughput\n(msg/s)",
    "p99\n(ms)",
    "Overhead vs\nat-most-once",
    "Verdict",
)
_MATRIX_HEADERS_NARROW = ("Guarantee", "Lost", "Dups", "Reord", "Abrt", "msg/s", "p99", "Ovhd", "Verdict")
WIDE = 110  # a console at least this wide gets the full headers and boxes
PRODUCER_COLUMNS = ("acks", "sent", "acked", "failed", "acked then missing", "missing", "judged")


# -- reading a possibly partial result ------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _real(value: Any) -> float | None:
    """``value`` as a finite float, or None (for None, bools, text, NaN and infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _rows(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in _list(result.get("rows")) if isinstance(r, Mapping)]


def _faults(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in _list(result.get("faults")) if isinstance(f, Mapping)]


def _producer(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in _list(result.get("producer")) if isinstance(p, Mapping)]


def _name(row: Mapping[str, Any]) -> str:
    return str(row.get("name") or row.get("guarantee") or "?")


# -- formatting -------------------------------------------------------------------------------------------


def _count(value: Any) -> str:
    v = _real(value)
    if v is None:
        return DASH if value is None else str(value)
    return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"


def _rate(value: Any) -> str:
    v = _real(value)
    return DASH if v is None else f"{v:,.0f}"


def _ms(value: Any) -> str:
    v = _real(value)
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.1f}"


def _pct(value: Any) -> str:
    v = _real(value)
    return DASH if v is None else f"{v * 100:.1f}%"


def _secs(value: Any) -> str:
    v = _real(value)
    return DASH if v is None else f"{v:.1f} s"


def _overhead(row: Mapping[str, Any]) -> str:
    if row.get("guarantee") == "at-most-once" and row.get("sink", "topic") == "topic":
        return "baseline"
    return _pct(row.get("overhead"))


def _row_broken(row: Mapping[str, Any]) -> list[str] | None:
    """What broke the row's promise ([] when kept), or None when the row carries no verdict."""
    verdict = row.get("verdict")
    if not isinstance(verdict, Mapping):
        return None
    broken = [str(b) for b in _list(verdict.get("broken"))]
    if not broken and verdict.get("kept") is False:
        broken = ["not kept"]
    return broken


def _producer_broken(p: Mapping[str, Any]) -> bool:
    return bool(p.get("judged")) and (_real(p.get("acked_then_missing")) or 0) > 0


def _judged(p: Mapping[str, Any]) -> str:
    if not p.get("judged"):
        return "not judged"
    return "BROKEN" if _producer_broken(p) else "kept"


def _fault_label(f: Mapping[str, Any]) -> str:
    at = _real(f.get("at_s"))
    kind = str(f.get("kind") or "fault")
    return f"{kind} @{at:.1f}s" if at is not None else kind


def _recovery_parts(f: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(name), _secs(s)) for name, s in _map(f.get("recovery_s")).items()]


def _ran(f: Mapping[str, Any]) -> str:
    ran = f.get("ran")
    return "ran" if ran else ("not run" if ran is False else DASH)


def summary(result: Mapping[str, Any]) -> str:
    """One line: every guarantee kept its promise, or what broke."""
    problems = []
    for row in _rows(result):
        broken = _row_broken(row)
        if broken:
            problems.append(f"{_name(row)}: {', '.join(broken)}")
        elif broken is None:
            problems.append(f"{_name(row)}: no verdict")
    for p in _producer(result):
        if _producer_broken(p):
            missing = _count(p.get("acked_then_missing"))
            problems.append(f"producer acks={p.get('acks')}: {missing} acknowledged, then missing")
    if not problems and result.get("kept") is False:
        problems.append("the run was judged broken")
    if not problems and not _rows(result):
        return "no guarantee was measured"
    if problems:
        return "BROKEN: " + "; ".join(problems)
    return "every guarantee kept its promise"


# -- the terminal -----------------------------------------------------------------------------------------


def console(file: Any = None) -> Console:
    """The console the command prints to (stdout unless ``file``); plain text when it is no terminal.

    Output to a file or a pipe has no width to fit, so it gets the full layout (``WIDE`` columns or more)
    unless COLUMNS says otherwise.
    """
    c = Console(file=file, highlight=False)
    if not c.is_terminal and not os.environ.get("COLUMNS"):
        c.width = max(c.width, 120)
    return c


def _verdict_text(row: Mapping[str, Any]) -> Text:
    broken = _row_broken(row)
    if broken is None:
        return Text(DASH)
    if broken:
        return Text("BROKEN: " + ", ".join(broken), style="bold red")
    return Text("kept", style="bold green")


def _recovery_text(f: Mapping[str, Any], wide: bool) -> str:
    parts = _recovery_parts(f)
    if wide or not parts:
        return "\n".join(f"{name} {s}" for name, s in parts) or DASH
    known = sorted(v for v in (_real(s) for s in _map(f.get("recovery_s")).values()) if v is not None)
    if not known:
        return DASH
    span = f"{known[0]:.1f} s" if known[0] == known[-1] else f"{known[0]:.1f}-{known[-1]:.1f} s"
    return span + (f" (+{len(parts) - len(known)} n/a)" if len(known) < len(parts) else "")


def render_matrix(result: Mapping[str, Any], console: Console) -> None:
    """Print the guarantee matrix, the faults, the producer check and a one-line verdict to ``console``.

    A console narrower than ``WIDE`` gets short headers, no vertical rules, each row's verdict below the
    matrix and each fault's recovery as a range over the rows.
    """
    wide = console.width >= WIDE

    def table(title: str) -> Table:
        return Table(
            title=title, title_justify="left", box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide
        )

    matrix = table("odradek verify")
    headers = _MATRIX_HEADERS if wide else _MATRIX_HEADERS_NARROW[:-1]
    for i, col in enumerate(headers):
        if i == 0:
            matrix.add_column(col)
        elif i == len(MATRIX_COLUMNS) - 1:
            matrix.add_column(col, min_width=12)
        else:  # numbers are never cut short: the other columns wrap first
            matrix.add_column(col, justify="right", no_wrap=True)
    rows = _rows(result)
    for row in rows:
        v = _map(row.get("verdict"))
        cells: list[Any] = [
            Text(_name(row)),
            _count(v.get("lost")),
            _count(v.get("duplicated")),
            _count(v.get("reordered")),
            _count(v.get("aborted_reads")),
            _rate(row.get("throughput_msg_s")),
            _ms(_map(row.get("latency_ms")).get("p99")),
            _overhead(row),
        ]
        if wide:
            cells.append(_verdict_text(row))
        matrix.add_row(*cells)
    console.print(matrix)
    if not wide:
        for row in rows:
            console.print(Text.assemble(f"  {_name(row)}: ", _verdict_text(row)))

    faults = _faults(result)
    if faults:
        faults_table = table("faults")
        for col in ("kind", "at", "duration" if wide else "for", "ran", "note", "recovery"):
            faults_table.add_column(
                col,
                justify="right" if col in ("at", "duration", "for") else "left",
                no_wrap=col in ("at", "duration", "for", "ran"),
                overflow="fold" if col == "note" else "ellipsis",
            )
        for f in faults:
            faults_table.add_row(
                Text(str(f.get("kind") or "?")),
                _secs(f.get("at_s")),
                _secs(f.get("duration_s")),
                Text(_ran(f), style="green" if f.get("ran") else "yellow"),
                Text(str(f.get("note") or "")),
                Text(_recovery_text(f, wide)),
            )
        console.print(faults_table)

    producer = _producer(result)
    if producer:
        producer_table = table("producer")
        for i, col in enumerate(PRODUCER_COLUMNS):
            producer_table.add_column(
                col, justify="left" if i in (0, len(PRODUCER_COLUMNS) - 1) else "right", no_wrap=True
            )
        for p in producer:
            judged = _judged(p)
            producer_table.add_row(
                Text(str(p.get("acks", "?"))),
                _count(p.get("sent")),
                _count(p.get("acked")),
                _count(p.get("failed")),
                _count(p.get("acked_then_missing")),
                _count(p.get("missing")),
                Text(judged, style={"kept": "green", "BROKEN": "bold red"}.get(judged, "dim")),
            )
        console.print(producer_table)

    for error in _list(result.get("errors")):
        console.print(Text(f"error: {error}", style="yellow"))
    line = summary(result)
    console.print(Text(line, style="bold green" if line.startswith("every") else "bold red"))


class LiveView:
    """The live progress display while a run goes on (rich's Live, redrawn 4 times a second).

    ``update`` only stores the latest state; drawing happens on rich's refresh thread. Nothing is shown
    when ``enabled`` is false or the console is no terminal.
    """

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = bool(enabled) and console.is_terminal
        self._state: dict[str, Any] = {
            "phase": "starting",
            "elapsed_s": 0.0,
            "produced": 0,
            "total": 0,
            "rows": {},
            "faults": [],
        }
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(
                console=self.console,
                get_renderable=self.renderable,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(
        self,
        phase: str,
        elapsed_s: float,
        produced: int,
        total: int,
        rows: Mapping[str, Mapping[str, Any]],
        faults: Sequence[Mapping[str, Any]],
    ) -> None:
        self._state = {
            "phase": phase,
            "elapsed_s": elapsed_s,
            "produced": produced,
            "total": total,
            "rows": dict(rows),
            "faults": list(faults),
        }

    def renderable(self) -> Group:
        """What the display shows for the latest state."""
        s = self._state
        total = _real(s["total"]) or 0
        produced = _real(s["produced"]) or 0
        head = Text()
        head.append(f"odradek verify: {s['phase']}", style="bold")
        head.append(f"  {_real(s['elapsed_s']) or 0:.0f} s  produced {_count(produced)}")
        if total:
            head.append(f" of {_count(total)}")
        parts: list[Any] = [head]
        if total:
            parts.append(ProgressBar(total=total, completed=min(produced, total), width=60))
        rows = Table(box=None, pad_edge=False)
        for col, justify in (("row", "left"), ("outputs", "right"), ("workers", "right"), ("status", "left")):
            rows.add_column(col, justify=justify)
        for name, r in s["rows"].items():
            r = _map(r)
            rows.add_row(
                Text(str(name)),
                _count(r.get("outputs")),
                _count(r.get("workers")),
                Text(str(r.get("status", ""))),
            )
        if s["rows"]:
            parts.append(rows)
        if s["faults"]:
            line = Text("faults: ")
            for i, f in enumerate(s["faults"]):
                f = _map(f)
                if i:
                    line.append("  ")
                done = bool(f.get("done"))
                line.append(("✓ " if done else "· ") + _fault_label(f), style="green" if done else "dim")
            parts.append(line)
        return Group(*parts)


# -- files --------------------------------------------------------------------------------------------------


def _write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The result as JSON (indent 2), written atomically."""
    _write_atomically(path, json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")


# -- the HTML report --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem;
       color: #1d1d1f; background: #fff; }
h1 { margin-bottom: .2rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; vertical-align: top; }
th { background: #f4f4f6; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.kept { color: #17803d; font-weight: 600; }
.broken { color: #c0262d; font-weight: 600; }
.muted { color: #777; }
.banner { font-size: 1.2rem; padding: .6rem 1rem; border-radius: 6px; margin: 1rem 0; }
.banner.kept { background: #e8f6ec; }
.banner.broken { background: #fbeaea; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; }
code { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
.plot svg { max-width: 100%; height: auto; }
.examples { font-weight: normal; color: #555; font-size: .85em; }
"""

# Inline SVG needs no XML prolog, DOCTYPE or RDF metadata (the latter two name remote schemas).
_SVG_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _figure_svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = _SVG_METADATA.sub("", _SVG_PROLOG.sub("", buf.getvalue(), count=1), count=1)
    return svg.strip()


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _fault_markers(ax: Any, faults: Iterable[Mapping[str, Any]]) -> None:
    for f in faults:
        at = _real(f.get("at_s"))
        if at is None:
            continue
        ran = f.get("ran") is not False
        color = "#c0262d" if ran else "#999999"
        duration = _real(f.get("duration_s")) or 0.0
        if ran and duration > 0:
            ax.axvspan(at, at + duration, color=color, alpha=0.12, lw=0)
        ax.axvline(at, color=color, lw=1, ls="--" if ran else ":")
        label = str(f.get("kind") or "fault") + ("" if ran else " (not run)")
        ax.text(
            at,
            0.98,
            " " + label,
            transform=ax.get_xaxis_transform(),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=color,
        )


def _colors(result: Mapping[str, Any]) -> dict[str, str]:
    """One colour per row, the same in every plot."""
    palette = [f"C{i}" for i in range(10)]
    return {_name(row): palette[i % len(palette)] for i, row in enumerate(_rows(result))}


def _plot_throughput(fig: Any, result: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    drawn = 0
    for row in _rows(result):
        tl = _map(row.get("timeline"))
        ts, ys = _list(tl.get("t_s")), _list(tl.get("outputs_per_s"))
        pairs = [(_real(t), _real(y)) for t, y in zip(ts, ys, strict=False)]
        pairs = [(t, y) for t, y in pairs if t is not None and y is not None]
        if pairs:
            ax.step(
                [t for t, _ in pairs],
                [y for _, y in pairs],
                where="post",
                label=_name(row),
                lw=1.3,
                color=_colors(result)[_name(row)],
            )
            drawn += 1
    if not drawn:
        _no_data(ax, "no timeline data")
        return
    _fault_markers(ax, _faults(result))
    ax.set_xlabel("seconds since the fault phase started")
    ax.set_ylabel("outputs/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def _plot_latency(fig: Any, result: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    drawn = 0
    for row in _rows(result):
        hist = _map(row.get("latency_hist"))
        edges = [_real(e) for e in _list(hist.get("edges_ms"))]
        counts = [_real(c) for c in _list(hist.get("counts"))]
        if len(edges) != len(counts) + 1 or not counts or None in edges:
            continue
        # Bins whose left edge is not positive cannot be drawn on a log axis.
        keep = [i for i in range(len(counts)) if edges[i] > 0 and edges[i + 1] > edges[i]]
        if not keep or not any(counts[i] for i in keep):
            continue
        first, last = keep[0], keep[-1]
        ys = [counts[i] or 0.0 for i in range(first, last + 1)]
        color = _colors(result)[_name(row)]
        ax.stairs(ys, edges[first : last + 2], label=_name(row), lw=1.3, color=color)
        p99 = _real(_map(row.get("latency_ms")).get("p99"))
        if p99 is not None and p99 > 0:
            ax.axvline(p99, color=color, lw=0.8, ls=":")
        drawn += 1
    if not drawn:
        _no_data(ax, "no latency data")
        return
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency (ms, log scale; dotted: p99)")
    ax.set_ylabel("outputs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _plot_faults(fig: Any, result: Mapping[str, Any]) -> None:
    rows = _rows(result)
    windows: list[str] = []
    values: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        for w in _list(row.get("per_fault")):
            w = _map(w)
            label = str(w.get("window") or "?")
            if label not in windows:
                windows.append(label)
            values[(_name(row), label)] = {
                "lost": _real(w.get("lost")) or 0.0,
                "duplicated": _real(w.get("duplicated")) or 0.0,
            }
    axes = fig.subplots(1, 2, sharey=False)
    names = [_name(r) for r in rows if any(k[0] == _name(r) for k in values)]
    for ax, what in zip(axes, ("lost", "duplicated"), strict=True):
        ax.set_title(what, fontsize=10)
        if not windows or not names:
            _no_data(ax, "no per-fault data")
            continue
        width = 0.8 / len(names)
        top = 0.0
        for j, name in enumerate(names):
            ys = [values.get((name, w), {}).get(what, 0.0) for w in windows]
            top = max([top, *ys])
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(windows))]
            ax.bar(xs, ys, width=width, label=name, color=_colors(result)[name])
        ax.set_xticks(range(len(windows)))
        ax.set_xticklabels(windows, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, max(1.0, top * 1.15))
        ax.grid(alpha=0.3, axis="y")
    if windows and names:
        axes[0].set_ylabel("inputs")
        axes[1].legend(fontsize=8)


def _plots(result: Mapping[str, Any]) -> dict[str, str]:
    """The three plots as inline SVG, by container id (a plot that cannot be drawn says why instead)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display, ever; Figure objects below bypass pyplot's global state
    from matplotlib.figure import Figure

    out = {}
    specs = (
        ("plot-throughput", _plot_throughput, (10, 4)),
        ("plot-latency", _plot_latency, (10, 4)),
        ("plot-faults", _plot_faults, (10, 4)),
    )
    # svg.fonttype "none": text stays text, drawn with the browser's own fonts (no font files needed).
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        for plot_id, draw, size in specs:
            fig = Figure(figsize=size, layout="constrained")
            try:
                draw(fig, result)
                out[plot_id] = _figure_svg(fig)
            except Exception as e:  # a broken plot must not cost the rest of the report
                out[plot_id] = f'<p class="muted">plot unavailable: {_e(e)}</p>'
    return out


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str) -> str:
    """An HTML table; cells are already-escaped HTML, given as (html) or (html, css class)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for cells in rows:
        tds = []
        for cell in cells:
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            tds.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    rows_html = "\n".join(body) or f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return (
        f'<table id="{table_id}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows_html}\n</tbody>\n</table>'
    )


def _verdict_html(row: Mapping[str, Any]) -> tuple[str, str]:
    broken = _row_broken(row)
    if broken is None:
        return DASH, "muted"
    if not broken:
        return "kept", "kept"
    examples = []
    for kind, ids in _map(_map(row.get("verdict")).get("examples")).items():
        ids = _list(ids)
        if ids and kind != "reordered":
            examples.append(f"{kind}: {', '.join(str(i) for i in ids)}")
    text = "BROKEN: " + _e(", ".join(broken))
    if examples:
        text += f'<br><span class="examples">e.g. {_e("; ".join(examples))}</span>'
    return text, "broken"


def _matrix_html(result: Mapping[str, Any]) -> str:
    rows = []
    for row in _rows(result):
        v = _map(row.get("verdict"))
        rows.append(
            [
                _e(_name(row)),
                (_e(_count(v.get("lost"))), "n"),
                (_e(_count(v.get("duplicated"))), "n"),
                (_e(_count(v.get("reordered"))), "n"),
                (_e(_count(v.get("aborted_reads"))), "n"),
                (_e(_rate(row.get("throughput_msg_s"))), "n"),
                (_e(_ms(_map(row.get("latency_ms")).get("p99"))), "n"),
                (_e(_overhead(row)), "n"),
                _verdict_html(row),
            ]
        )
    return _table(MATRIX_COLUMNS, rows, "matrix")


def _details_html(result: Mapping[str, Any]) -> str:
    headers = (
        "Row",
        "Sink",
        "Inputs",
        "Extra copies",
        "From no input",
        "p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "Transactions",
        "Rebalances",
    )
    rows = []
    for row in _rows(result):
        v = _map(row.get("verdict"))
        lat = _map(row.get("latency_ms"))
        txns = row.get("transactions")
        if isinstance(txns, Mapping):
            txn = (
                f"{_count(txns.get('committed'))} committed, {_count(txns.get('aborted'))} aborted "
                f"({_pct(txns.get('abort_rate'))})"
            )
        else:
            txn = "no Kafka transactions"
        rows.append(
            [
                _e(_name(row)),
                _e(row.get("sink_name") or row.get("sink") or DASH),
                (_e(_count(v.get("inputs"))), "n"),
                (_e(_count(v.get("extra_copies"))), "n"),
                (_e(_count(v.get("unknown"))), "n"),
                (_e(_ms(lat.get("p50"))), "n"),
                (_e(_ms(lat.get("p99"))), "n"),
                (_e(_ms(lat.get("max"))), "n"),
                (_e(txn), "" if isinstance(txns, Mapping) else "muted"),
                (_e(_count(row.get("rebalances"))), "n"),
            ]
        )
    return _table(headers, rows, "rows")


def _faults_html(result: Mapping[str, Any]) -> str:
    names = [_name(r) for r in _rows(result)]
    for f in _faults(result):
        for name in _map(f.get("recovery_s")):
            if str(name) not in names:
                names.append(str(name))
    headers = ["Kind", "At", "Duration", "Ran", "Note", *(f"Recovery: {n}" for n in names)]
    rows = []
    for f in _faults(result):
        recovery = {str(k): v for k, v in _map(f.get("recovery_s")).items()}
        rows.append(
            [
                _e(f.get("kind") or "?"),
                (_e(_secs(f.get("at_s"))), "n"),
                (_e(_secs(f.get("duration_s"))), "n"),
                (_e(_ran(f)), {True: "kept", False: "broken"}.get(f.get("ran"), "muted")),
                _e(f.get("note") or ""),
                *((_e(_secs(recovery.get(n))), "n") for n in names),
            ]
        )
    return _table(headers, rows, "faults")


def _producer_html(result: Mapping[str, Any]) -> str:
    rows = []
    for p in _producer(result):
        judged = _judged(p)
        rows.append(
            [
                _e(p.get("acks", "?")),
                *(
                    (_e(_count(p.get(k))), "n")
                    for k in ("sent", "acked", "failed", "acked_then_missing", "missing")
                ),
                (_e(judged), {"kept": "kept", "BROKEN": "broken"}.get(judged, "muted")),
            ]
        )
    return _table(PRODUCER_COLUMNS, rows, "producer")


def _meta_html(result: Mapping[str, Any]) -> str:
    items = [
        ("command", f"<code>{_e(result.get('command') or DASH)}</code>"),
        ("seed", _e(result.get("seed", DASH))),
        ("started", _e(result.get("started_at") or DASH)),
        ("duration", _e(_secs(result.get("duration_s")))),
        ("target", _e(result.get("target") or DASH)),
        ("bootstrap", _e(result.get("bootstrap") or DASH)),
        (
            "workload",
            _e(
                f"{_count(result.get('messages'))} messages over {_count(result.get('partitions'))} "
                f"partitions at {_count(result.get('rate'))} msg/s"
            ),
        ),
        ("tool", _e(result.get("tool") or DASH)),
    ]
    if result.get("sabotage"):
        items.append(("sabotage", _e(f"{result['sabotage']} (a deliberately broken processor)")))
    body = "\n".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="meta">\n{body}\n</dl>'


def render_html(result: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG; nothing fetched)."""
    line = summary(result)
    kept = line.startswith("every")
    plots = _plots(result)
    errors = _list(result.get("errors"))
    errors_html = (
        "<h2>Errors</h2>\n<ul>" + "".join(f"<li>{_e(e)}</li>" for e in errors) + "</ul>" if errors else ""
    )
    title = f"odradek verify: {'kept' if kept else 'BROKEN'}"
    plot_sections = "\n".join(
        f'<h2>{_e(heading)}</h2>\n<div class="plot" id="{pid}">\n{plots[pid]}\n</div>'
        for pid, heading in (
            ("plot-throughput", "Throughput over time, with the faults"),
            ("plot-latency", "Latency distribution"),
            ("plot-faults", "Loss and duplicates per fault window"),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>odradek verify</h1>
<div id="verdict" class="banner {"kept" if kept else "broken"}">{_e(line)}</div>
{_meta_html(result)}
<h2>Guarantees</h2>
{_matrix_html(result)}
<h2>Rows in detail</h2>
{_details_html(result)}
{plot_sections}
<h2>Faults</h2>
{_faults_html(result)}
<h2>Producer</h2>
<p class="muted">Each acks setting sent under the same faults; only acks=all promises that an acknowledged
record stays in the log.</p>
{_producer_html(result)}
{errors_html}
</body>
</html>
"""


def write_html(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The self-contained HTML report, written atomically."""
    _write_atomically(path, render_html(result))
