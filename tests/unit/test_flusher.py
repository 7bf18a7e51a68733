"""The flusher's group commit, without sockets: fake logs whose flush() the test holds and releases."""

from __future__ import annotations

import asyncio
import threading

import pytest

from odradek.broker.flusher import Flusher


class FakeLog:
    """A log whose flushes can be held: each flush blocks until the test releases it."""

    def __init__(self, hold: bool = False, fail: int = 0) -> None:
        self.flushes = 0
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.hold = hold
        self.fail = fail  # this many flushes raise OSError, then they succeed
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def flush(self) -> None:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.started.release()
            if self.hold:
                assert self.release.acquire(timeout=10), "the test never released this flush"
            self.flushes += 1
            if self.fail:
                self.fail -= 1
                raise OSError(5, "Input/output error")
        finally:
            with self._lock:
                self.running -= 1


async def started(target: FakeLog) -> None:
    assert await asyncio.to_thread(target.started.acquire, True, 10), "no flush started"


def run(coro_fn):  # noqa: ANN001, ANN201
    flusher = Flusher()

    async def main() -> None:
        try:
            await asyncio.wait_for(coro_fn(flusher), 20)
        finally:
            await asyncio.wait_for(flusher.drain(), 20)
            flusher.close()

    asyncio.run(main())
    return flusher


def test_sync_returns_after_a_flush():
    target = FakeLog()

    async def body(flusher: Flusher) -> None:
        await flusher.sync([target])
        assert target.flushes == 1
        await flusher.sync([target])
        assert target.flushes == 2

    run(body)


def test_requests_during_a_flush_share_the_next_one_and_are_not_answered_by_the_one_running():
    target = FakeLog(hold=True)
    sizes: list[int] = []

    async def body(flusher: Flusher) -> None:
        real = flusher.fsync

        def counted(flush, waiting):  # noqa: ANN001, ANN202
            sizes.append(waiting)
            return real(flush, waiting)

        flusher.fsync = counted  # type: ignore[method-assign]
        first = asyncio.ensure_future(flusher.sync([target]))
        await started(target)  # flush 1 is running
        later = [asyncio.ensure_future(flusher.sync([target])) for _ in range(5)]
        await asyncio.sleep(0.05)
        target.release.release()  # flush 1 ends
        await first
        assert not any(f.done() for f in later), "a flush that began before a request answered it"
        await started(target)  # flush 2 covers all five
        target.release.release()
        await asyncio.gather(*later)
        assert target.flushes == 2
        assert sizes == [1, 5]

    run(body)


def test_a_failed_fsync_fails_its_waiters_and_the_next_one_succeeds():
    target = FakeLog(fail=1)

    async def body(flusher: Flusher) -> None:
        results = await asyncio.gather(flusher.sync([target]), flusher.sync([target]), return_exceptions=True)
        assert any(isinstance(r, OSError) for r in results)
        await flusher.sync([target])  # the disk recovered
        assert target.flushes >= 2

    run(body)


def test_lanes_of_different_logs_do_not_wait_for_each_other():
    slow, fast = FakeLog(hold=True), FakeLog()

    async def body(flusher: Flusher) -> None:
        held = asyncio.ensure_future(flusher.sync([slow]))
        await started(slow)
        await flusher.sync([fast])  # answered while the slow log's fsync is still running
        assert not held.done()
        slow.release.release()
        await held

    run(body)


def test_one_log_is_never_flushed_twice_at_once():
    target = FakeLog()

    async def body(flusher: Flusher) -> None:
        for _ in range(50):
            await asyncio.gather(*(flusher.sync([target]) for _ in range(20)))
            flusher.mark_dirty([target])
        assert target.most_running == 1

    run(body)


def test_mark_dirty_flushes_without_a_waiter_and_drain_waits_for_it():
    target = FakeLog(hold=True)

    async def body(flusher: Flusher) -> None:
        flusher.mark_dirty([target])
        await started(target)
        drained = asyncio.ensure_future(flusher.drain())
        await asyncio.sleep(0.05)
        assert not drained.done()
        target.release.release()
        await drained
        assert target.flushes == 1
        assert not flusher._lanes  # an idle log keeps no lane

    run(body)


def test_drain_returns_after_a_failed_fsync():
    target = FakeLog(fail=1)

    async def body(flusher: Flusher) -> None:
        flusher.mark_dirty([target])
        await flusher.drain()
        assert target.flushes == 1

    run(body)


def test_the_threads_are_bounded_and_close_stops_them():
    targets = [FakeLog() for _ in range(40)]

    async def body(flusher: Flusher) -> None:
        await asyncio.gather(*(flusher.sync([t]) for t in targets))
        assert all(t.flushes == 1 for t in targets)
        assert 1 <= len(flusher._threads) <= flusher._threads_max

    flusher = run(body)
    assert not flusher._threads
    assert not any(t.name.startswith("odradek-fsync") for t in threading.enumerate())


@pytest.mark.parametrize("n", [1, 3])
def test_sync_of_several_logs_waits_for_each(n: int):
    targets = [FakeLog(hold=True) for _ in range(n)]

    async def body(flusher: Flusher) -> None:
        waiting = asyncio.ensure_future(flusher.sync(targets))
        for i, t in enumerate(targets):
            await started(t)
            await asyncio.sleep(0.02)
            assert not waiting.done(), f"answered with {n - i} logs not yet on disk"
            t.release.release()
        await waiting

    run(body)


class QueuedLog(FakeLog):
    """A log with write-behind: write_queued() writes, flush() writes and fsyncs."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write_queued(self) -> None:
        self.writes += 1


def test_written_only_writes_and_sync_still_fsyncs():
    target = QueuedLog()

    async def body(flusher: Flusher) -> None:
        await flusher.written([target])
        assert (target.writes, target.flushes) == (1, 0), "acks=1 must not pay for an fsync"
        await asyncio.gather(flusher.written([target]), flusher.sync([target]))
        assert target.flushes >= 1, "a sync() shared with a written() round skipped its fsync"
        flushes = target.flushes
        await flusher.sync([target])
        assert target.flushes == flushes + 1

    run(body)


def test_a_written_request_during_a_held_fsync_is_answered_by_the_next_round():
    target = QueuedLog()
    target.hold = True

    async def body(flusher: Flusher) -> None:
        synced = asyncio.ensure_future(flusher.sync([target]))
        await started(target)
        write = asyncio.ensure_future(flusher.written([target]))
        await asyncio.sleep(0.05)
        assert not write.done(), "answered by an fsync that began before it was asked"
        target.release.release()
        await asyncio.gather(synced, write)
        assert (target.flushes, target.writes) == (1, 1)

    run(body)
