"""Group commit, per file: one fsync acknowledges every request that was waiting for that file.

Appends happen on the event loop (a write to the OS page cache). A request that needs durability waits
for each log it wrote to. Every log (partition or journal) has its own lane: at most one fsync of it
runs at a time, in a worker thread, and requests arriving meanwhile are covered together by the next
one. Lanes of different logs run in parallel, so a large background flush of one partition never holds
up an acks=all answer on another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("odradek.broker")


class _Lane:
    __slots__ = ("target", "waiters", "dirty", "task")

    def __init__(self, target: Any) -> None:
        self.target = target  # anything with flush(): a PartitionLog or a Journal
        self.waiters: list[asyncio.Future[None]] = []
        self.dirty = False
        self.task: asyncio.Task[None] | None = None


class Flusher:
    def __init__(self) -> None:
        self._lanes: dict[int, _Lane] = {}

    def _lane(self, target: Any) -> _Lane:
        lane = self._lanes.get(id(target))
        if lane is None or lane.target is not target:
            lane = self._lanes[id(target)] = _Lane(target)
        return lane

    @staticmethod
    def fsync(flush: Any, waiting: int) -> Any:
        """Run one flush in a worker thread (the broker's metrics put a timed one in its place)."""
        return flush()

    def mark_dirty(self, targets: Iterable[Any]) -> None:
        """Flush these soon; nobody waits (background durability, journal records nobody awaits)."""
        for target in targets:
            lane = self._lane(target)
            lane.dirty = True
            self._start(lane)

    async def sync(self, targets: Iterable[Any]) -> None:
        """Return once everything written to ``targets`` so far is on disk."""
        loop = asyncio.get_running_loop()
        futures = []
        for target in targets:
            lane = self._lane(target)
            fut: asyncio.Future[None] = loop.create_future()
            lane.waiters.append(fut)
            lane.dirty = True
            futures.append(fut)
            self._start(lane)
        if futures:
            await asyncio.gather(*futures)

    async def drain(self) -> None:
        while True:
            running = [lane.task for lane in self._lanes.values() if lane.task is not None]
            if not running:
                return
            await asyncio.gather(*running, return_exceptions=True)

    def _start(self, lane: _Lane) -> None:
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(self._run(lane))

    async def _run(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.dirty:
                waiters, lane.waiters = lane.waiters, []
                lane.dirty = False
                try:
                    await loop.run_in_executor(None, self.fsync, lane.target.flush, len(waiters))
                except Exception as e:  # a failed fsync must never be acknowledged
                    log.error("fsync failed, failing %d waiting requests: %s", len(waiters), e)
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e)
                    continue
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            lane.task = None
            if not lane.waiters and not lane.dirty:
                self._lanes.pop(id(lane.target), None)
