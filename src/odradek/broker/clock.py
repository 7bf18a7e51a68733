"""The broker's wall clock in milliseconds (Kafka timestamps and deadlines are epoch milliseconds)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
