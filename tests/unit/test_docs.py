"""The docs match the code: the compatibility page lists exactly the API versions the broker advertises;
the odradek.stream pages (docs/stream) hold code that compiles and name only metrics that exist."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from odradek.protocol.apis import SUPPORTED

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def test_compatibility_table_matches_the_advertised_versions() -> None:
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+)–(\d+) \|", DOC.read_text(), flags=re.MULTILINE)
    documented = {int(key): (int(lo), int(hi)) for _, key, lo, hi in rows}
    advertised = {int(k): (r.min_version, r.max_version) for k, r in SUPPORTED.items()}
    assert documented == advertised


# --------------------------------------------------------------------------------------------------
# docs/stream: the odradek.stream pages

STREAM_DOCS = DOC.parent / "stream"
STREAM_METRICS = DOC.parents[1] / "src" / "odradek" / "stream" / "metrics.py"
_EXPOSED_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("", "_bucket", "_sum", "_count")}


def _stream_pages() -> list[Path]:
    pages = sorted(STREAM_DOCS.glob("*.md"))
    assert pages, f"no pages in {STREAM_DOCS}"
    return pages


def _exposed_metric_names() -> set[str]:
    """The names Prometheus exposes for each metric defined in metrics.py (counters with ``_total``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(STREAM_METRICS.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        suffixes = _EXPOSED_SUFFIXES.get(node.func.id)
        if suffixes and node.args and isinstance(node.args[0], ast.Constant):
            names.update(node.args[0].value + s for s in suffixes)
    return names


def test_stream_docs_code_that_imports_odradek_stream_compiles_and_imports_names_that_exist() -> None:
    checked = 0
    for page in _stream_pages():
        blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL)
        for n, block in enumerate(blocks, 1):
            if "odradek.stream" not in block:
                continue
            tree = ast.parse(block, filename=f"{page.name}, python block {n}")
            compile(tree, f"{page.name}, python block {n}", "exec")
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("odradek.stream"):
                    module = importlib.import_module(node.module)
                    missing = [a.name for a in node.names if not hasattr(module, a.name)]
                    assert not missing, f"{page.name}, python block {n}: {node.module} has no {missing}"
            checked += 1
    assert checked


def test_stream_docs_name_only_metrics_that_exist() -> None:
    exposed = _exposed_metric_names()
    assert "odradek_stream_records_consumed_total" in exposed
    for page in _stream_pages():
        named = set(re.findall(r"\bodradek_stream_[a-z0-9_]+", page.read_text()))
        unknown = sorted(named - exposed)
        assert not unknown, f"{page.name} names metrics that {STREAM_METRICS.name} does not expose: {unknown}"
