"""Group commit, per file: one fsync acknowledges every request that was waiting for that file.

Appends happen on the event loop; the write to the OS page cache happens there too, or, for batches a
request waits for (write-behind, acks=1 and acks=all), in the flusher's threads. A request that needs
durability waits for each log it wrote to. Every log (partition or journal) has its own lane: at most
one fsync of it runs at a time, and requests arriving meanwhile are covered together by the next one.
Lanes of different logs run in parallel, so a large background flush of one partition never holds up
an acks=all answer on another.

The fsyncs run in the flusher's own long-lived threads, not in the loop's default executor. A thread
that has just finished an fsync takes the next dirty lane straight away, so under steady acks=all load
the loop only bumps a counter under a lock: waking a sleeping worker thread for every round (what
``run_in_executor`` does) cost the loop a futex wake per fsync, measured at a sixth of its busy time.
A partition log may also hold batches queued for writing (write-behind, see ``log/partition.py``):
``written()`` waits until they are in the page cache, without an fsync (acks=1); a round that has an
fsync to do writes them first anyway.

Each lane counts the requests made of it (``requested``) and the ones an ended fsync has answered
(``answered``); a waiter is answered, with success or with the fsync's error, once ``answered``
reaches the count its request took.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("odradek.broker")

# Worker threads, at most: parallel fsyncs of different files (Python's default executor allows
# cpu + 4 threads; fsyncs beyond a handful in flight only queue in the device).
FLUSH_THREADS_MAX = 4


class _Lane:
    __slots__ = ("target", "requested", "waiting", "fsync", "scheduled", "answered", "waiters")

    def __init__(self, target: Any) -> None:
        self.target = target  # anything with flush(): a PartitionLog or a Journal
        # Under the flusher's lock: written by the loop, read by the worker that takes the lane.
        self.requested = 0  # requests made of this lane so far
        self.waiting = 0  # sync() requests since the last fsync began (the metrics' batch size)
        self.fsync = False  # some request since the last fsync began wants one (else: writes only)
        self.scheduled = False  # queued or being flushed: owned by one worker at a time
        # Loop thread only.
        self.answered = 0  # every request up to this one has been answered by an ended fsync
        self.waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()


class Flusher:
    def __init__(self, threads_max: int = FLUSH_THREADS_MAX) -> None:
        self._lanes: dict[int, _Lane] = {}
        self._threads_max = threads_max
        self._cv = threading.Condition(threading.Lock())
        self._ready: collections.deque[_Lane] = collections.deque()  # under _cv
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers waiting on _cv
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def fsync(flush: Any, waiting: int) -> Any:
        """Run one flush in a worker thread (the broker's metrics put a timed one in its place)."""
        return flush()

    def mark_dirty(self, targets: Iterable[Any]) -> None:
        """Flush these soon; nobody waits (background durability, journal records nobody awaits)."""
        for target in targets:
            self._request(self._lane(target), waiting=False, fsync=True)

    async def sync(self, targets: Iterable[Any]) -> None:
        """Return once everything appended to ``targets`` so far is on disk."""
        await self._wait(targets, fsync=True)

    async def written(self, targets: Iterable[Any]) -> None:
        """Return once everything appended to these partition logs so far is written to their files."""
        await self._wait(targets, fsync=False)

    async def _wait(self, targets: Iterable[Any], fsync: bool) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for target in targets:
            lane = self._lane(target)
            fut: asyncio.Future[None] = loop.create_future()
            lane.waiters.append((self._request(lane, waiting=fsync, fsync=fsync), fut))
            futures.append(fut)
        if futures:
            await asyncio.gather(*futures)

    async def drain(self) -> None:
        """Return once every request made so far has been flushed (or has failed)."""
        loop = asyncio.get_running_loop()
        while pending := [lane for lane in self._lanes.values() if lane.answered < lane.requested]:
            futures = []
            for lane in pending:
                fut: asyncio.Future[None] = loop.create_future()
                lane.waiters.append((lane.requested, fut))
                futures.append(fut)
            await asyncio.gather(*futures, return_exceptions=True)

    def close(self) -> None:
        """Stop the worker threads (after drain(): a lane still queued is not flushed)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    # --- loop side ----------------------------------------------------------------------------------

    def _lane(self, target: Any) -> _Lane:
        lane = self._lanes.get(id(target))
        if lane is None or lane.target is not target:
            lane = self._lanes[id(target)] = _Lane(target)
        return lane

    def _request(self, lane: _Lane, waiting: bool, fsync: bool) -> int:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._cv:
            lane.requested += 1
            lane.waiting += waiting
            lane.fsync |= fsync
            if not lane.scheduled:
                lane.scheduled = True
                self._ready.append(lane)
                if self._idle:
                    self._cv.notify()
                elif len(self._threads) < self._threads_max and not self._closing:
                    self._spawn()
            return lane.requested

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"odradek-fsync-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _flushed(self, lane: _Lane, upto: int, error: BaseException | None) -> None:
        """An fsync of ``lane`` that covered requests up to ``upto`` has ended (on the loop)."""
        if error is not None:  # a failed fsync must never be acknowledged
            log.error("fsync failed, failing the requests waiting for it: %s", error)
        lane.answered = max(lane.answered, upto)
        waiters = lane.waiters
        while waiters and waiters[0][0] <= upto:
            _, fut = waiters.popleft()
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        self._forget_if_idle(lane)

    def _forget_if_idle(self, lane: _Lane) -> None:
        if not lane.waiters and lane.answered >= lane.requested and self._lanes.get(id(lane.target)) is lane:
            del self._lanes[id(lane.target)]

    # --- worker threads -----------------------------------------------------------------------------

    def _work(self) -> None:
        cv = self._cv
        while True:
            with cv:
                while not self._ready and not self._closing:
                    self._idle += 1
                    cv.wait()
                    self._idle -= 1
                if self._closing:
                    return
                lane = self._ready.popleft()
                upto, waiting, fsync = lane.requested, lane.waiting, lane.fsync
                lane.waiting, lane.fsync = 0, False
            # A round without an fsync only has written() requests up to ``upto`` to answer: any sync()
            # or mark_dirty() among them would have set ``fsync``.
            error: BaseException | None = None
            try:
                if fsync:
                    self.fsync(lane.target.flush, waiting)
                else:
                    lane.target.write_queued()
            except Exception as e:
                error = e
            with cv:
                if lane.requested > upto:  # asked again meanwhile: this thread keeps the lane
                    self._ready.append(lane)
                else:
                    lane.scheduled = False
                self._post(lane, upto, error)

    def _post(self, lane: _Lane, upto: int, error: BaseException | None) -> None:
        # Under _cv, so the results of one lane reach the loop in the order its fsyncs ended.
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._flushed, lane, upto, error)
        except RuntimeError:  # the loop has closed: nobody is left to answer
            pass
