"""The compatibility page must list exactly the API versions the broker advertises."""

from __future__ import annotations

import re
from pathlib import Path

from odradek.protocol.apis import SUPPORTED

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def test_compatibility_table_matches_the_advertised_versions() -> None:
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+)–(\d+) \|", DOC.read_text(), flags=re.MULTILINE)
    documented = {int(key): (int(lo), int(hi)) for _, key, lo, hi in rows}
    advertised = {int(k): (r.min_version, r.max_version) for k, r in SUPPORTED.items()}
    assert documented == advertised
