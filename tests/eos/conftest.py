"""Exactly-once tests (idempotence, transactions, consume-transform-produce) against Odradek and Kafka 4.4.

Helpers live next to the tests (``eoskit.py``, ``chaosproxy.py``; this folder is put on ``sys.path``);
processes the tests SIGKILL (``txn_hold.py``, ``copier.py``) run as separate Python programs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # kafka-python loads its protocol schemas with deprecated importlib.resources calls.
    quiet = [
        pytest.mark.filterwarnings(f"ignore:{fn} is deprecated:DeprecationWarning")
        for fn in ("read_text", "open_text")
    ]
    for item in items:
        if _HERE in item.path.parents:
            for mark in quiet:
                item.add_marker(mark)


with __import__("warnings").catch_warnings():
    # the same deprecation warnings fire once at import time (collection), outside any test's marks
    __import__("warnings").simplefilter("ignore", DeprecationWarning)
    import kafka.record.default_records  # noqa: F401
