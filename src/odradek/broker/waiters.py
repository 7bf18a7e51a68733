"""Wake long-polling fetches when data arrives on a partition they are waiting for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class AppendWaiters:
    def __init__(self) -> None:
        self._by_log: dict[int, set[asyncio.Future[None]]] = {}

    async def wait(self, logs: Iterable[Any], timeout_s: float) -> None:
        """Return when any of ``logs`` is appended to, or after ``timeout_s``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = [id(plog) for plog in logs]
        for k in keys:
            self._by_log.setdefault(k, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        finally:
            for k in keys:
                waiting = self._by_log.get(k)
                if waiting is not None:
                    waiting.discard(fut)
                    if not waiting:
                        del self._by_log[k]

    def notify(self, plog: Any) -> None:
        waiting = self._by_log.pop(id(plog), None)
        if waiting:
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

    def wake_all(self) -> None:
        for waiting in self._by_log.values():
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)
        self._by_log.clear()
