"""The broker's clocks in milliseconds: the wall clock (Kafka timestamps and deadlines are epoch
milliseconds) and a monotonic one for idle times that must not jump with the wall clock."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
