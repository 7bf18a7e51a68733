"""Group commit: one fsync pass acknowledges every acks=all request waiting when it started.

Appends happen on the event loop (a write to the OS page cache). A request that needs durability adds
its partitions to the dirty set and waits. At most one flush pass runs at a time, in a worker thread;
requests that arrive during a pass wait for the next one, which then covers all of them together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from ..log.partition import PartitionLog

log = logging.getLogger("odradek.broker")


class Flusher:
    def __init__(self) -> None:
        self._dirty: dict[int, PartitionLog] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._running: asyncio.Task[None] | None = None
        self.passes = 0
        self.last_pass_us = 0

    def mark_dirty(self, logs: Iterable[PartitionLog]) -> None:
        for plog in logs:
            self._dirty[id(plog)] = plog

    async def sync(self, logs: Iterable[PartitionLog]) -> None:
        """Return once everything appended to ``logs`` so far is on disk."""
        self.mark_dirty(logs)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._run())
        await fut

    async def flush_all(self, logs: Iterable[PartitionLog]) -> None:
        """Background flush of acks<all data (``log.flush.interval.ms``); nobody waits on it."""
        self.mark_dirty(logs)
        if self._dirty and self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        while self._running is not None:
            await asyncio.shield(self._running)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty or self._waiters:
                dirty = list(self._dirty.values())
                waiters = self._waiters
                self._dirty = {}
                self._waiters = []
                started = time.perf_counter()
                try:
                    # fsyncs of different files proceed in parallel on the device
                    await asyncio.gather(*(loop.run_in_executor(None, plog.flush) for plog in dirty))
                except Exception as e:  # a failed fsync must never be acknowledged
                    log.error("fsync failed, failing %d waiting requests: %s", len(waiters), e)
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e)
                    continue
                self.passes += 1
                self.last_pass_us = int((time.perf_counter() - started) * 1e6)
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            self._running = None
