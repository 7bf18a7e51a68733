"""odradek.stream tests. Helpers live next to them (``streamkit.py``: Apps run on a thread, topics read
back, and for the crash and zombie tests ``worker.py``, the process they SIGKILL and SIGSTOP); this
folder is put on ``sys.path``. Each crash or zombie run appends one line (lost / duplicates / kills /
seconds) to ``streamkit.REPORT``, printed in the terminal summary under "odradek.stream runs"."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import streamkit  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus: int, config) -> None:
    if streamkit.REPORT:
        terminalreporter.section("odradek.stream runs")
        for line in streamkit.REPORT:
            terminalreporter.write_line(line)
