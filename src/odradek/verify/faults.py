"""The fault schedule of ``odradek verify``: drawn from a seed, so a failing run can be repeated.

No I/O here: :func:`schedule` turns (fault kinds, seed, window) into a list of :class:`Fault` that the
runner carries out. The window is the time the workload producer sends; faults fall in its middle
(from 15 % to 80 %), each in a slot of its own so that one fault's effects have settled before the next,
in an order and at offsets drawn from the seed.

The kinds:

* ``consumer-crash``: SIGKILL of worker ``target`` of every pipeline, restarted ``duration_s`` later;
* ``broker-crash``: SIGKILL of the broker (or the user's kill command), restarted ``duration_s`` later;
* ``partition``: the proxy between clients and broker black-holes all traffic for ``duration_s``
  (``mode="blackhole"``), or cuts every connection, mid-request too, again and again during
  ``duration_s`` (``mode="cut"``), so responses are lost after the broker acted on the request;
* ``slow``: worker ``target`` of every pipeline stalls on one record for ``duration_s``, past
  ``max.poll.interval.ms``, so the group moves its partitions while it still works.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("consumer-crash", "broker-crash", "partition", "slow")
DEFAULT = KINDS
WINDOW_START = 0.15
WINDOW_END = 0.80


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float  # from the start of the workload
    duration_s: float
    target: int = 0  # the worker index (consumer-crash, slow)
    mode: str = ""  # partition: "blackhole" or "cut"
    index: int = 0  # the how-manieth fault of its kind (0, 1, ...), e.g. for the broker commands

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    @property
    def label(self) -> str:
        return f"{self.kind} @{self.at_s:.1f}s"


def parse_kinds(text: str) -> list[str]:
    """``"consumer-crash,slow"`` -> the kinds, in order (repeats allowed); ``"none"`` or ``""`` -> []."""
    text = text.strip()
    if text in ("", "none"):
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown fault {bad[0]!r}; expected some of {', '.join(KINDS)} (or none)")
    return kinds


def schedule(
    kinds: Sequence[str], seed: int, window_s: float, *, workers: int = 2, stall_s: float = 8.0
) -> list[Fault]:
    """The faults ``kinds`` placed in ``window_s`` seconds of workload, from ``seed``, sorted by time."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown fault {k!r}")
    if not kinds:
        return []
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    start, end = WINDOW_START * window_s, WINDOW_END * window_s
    slot = (end - start) / len(order)
    seen: dict[str, int] = {}
    out = []
    for i, kind in enumerate(order):
        at = start + i * slot + rng.uniform(0.0, 0.3 * slot)
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        target = rng.randrange(max(1, workers))
        if kind == "consumer-crash":
            out.append(Fault(kind, at, rng.uniform(0.5, 2.0), target=target, index=index))
        elif kind == "broker-crash":
            out.append(Fault(kind, at, rng.uniform(1.0, 3.0), index=index))
        elif kind == "partition":
            mode = rng.choice(("blackhole", "cut"))
            out.append(Fault(kind, at, rng.uniform(2.0, 4.0), mode=mode, index=index))
        else:
            out.append(Fault(kind, at, stall_s, target=target, index=index))
    return sorted(out, key=lambda f: f.at_s)
