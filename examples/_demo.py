"""What the examples share: their command line (``--bootstrap``, ``--group``, ``--input``, ``--demo N``,
``--exit-after-idle SECONDS``, ``--metrics-port``) and the idle stop behind ``--exit-after-idle``.

Not an example itself: the examples import it as ``_demo``, which works because Python puts a script's
own folder on ``sys.path`` (``python examples/x.py`` from any directory).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from odradek.stream import App


def command_line(doc: str, *, group: str, input_topic: str, sample: str) -> argparse.ArgumentParser:
    """The options every example takes; ``doc``'s first line describes the program, ``sample`` names
    what ``--demo N`` sends (e.g. "page views"). The example adds its own options and parses."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default=group)
    parser.add_argument("--input", default=input_topic)
    parser.add_argument("--demo", type=int, default=0, metavar="N", help=f"send N sample {sample} first")
    parser.add_argument("--exit-after-idle", type=float, metavar="SECONDS")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    return parser


class IdleStop:
    """Calls ``app.stop()`` once no record was processed for ``idle_s`` seconds (counted from the first)."""

    def __init__(self, app: App, idle_s: float) -> None:
        self.last: float | None = None
        threading.Thread(target=self._watch, args=(app, idle_s), daemon=True).start()

    def touch(self) -> None:
        self.last = time.monotonic()

    def _watch(self, app: App, idle_s: float) -> None:
        while self.last is None or time.monotonic() - self.last < idle_s:
            time.sleep(0.1)
        app.stop()


def idle_stop(app: App, idle_s: float | None) -> Callable[[], None]:
    """What a processor calls for each record: with ``--exit-after-idle SECONDS`` it counts towards an
    :class:`IdleStop` of ``app``; without it (``idle_s`` None or 0), it does nothing."""
    if not idle_s:
        return lambda: None
    return IdleStop(app, idle_s).touch
