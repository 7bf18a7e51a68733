"""Consumer-group integration tests (classic and KIP-848) against Odradek and Apache Kafka 4.4.

Helpers live in ``gkit.py`` (imported as ``gkit``; this folder is put on ``sys.path``); consumers that
the tests SIGKILL run as separate processes from ``member.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))


@pytest.fixture
def members():
    """Every ``gkit.Member`` process started by the test is SIGKILLed (by its pid) at teardown."""
    import gkit

    started: list[gkit.Member] = []

    def spawn(bootstrap: str, group: str, topics: list[str], **kw) -> gkit.Member:
        m = gkit.Member(bootstrap, group, topics, **kw)
        started.append(m)
        return m

    yield spawn
    for m in started:
        m.kill()
