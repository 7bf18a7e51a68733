"""A fault-injecting TCP proxy on loopback, between Kafka clients and a broker: the network faults of
``odradek verify`` and of the test suite.

It listens on a free 127.0.0.1 port and forwards every connection to a target broker. Two faults:

**Black hole** (``blackhole(seconds)``): nothing is forwarded either way for a while; bytes wait in the
sockets, as over a network partition that heals. Clients time out and retry, and requests that reached
the broker before it may have their responses arrive long after.

**Chaos** (``chaos = True``): it cuts connections mid-stream, so requests that already reached the
broker lose their responses and the client has to retry them:

* every connection gets a random budget of client->broker bytes (``min_bytes``..``max_bytes``); when a chunk
  would exceed it, only part of the chunk is forwarded (a request cut in half) and both sides are aborted;
* every ``every_s`` (jittered) all live connections are aborted at once, dropping whatever responses
  are in flight.

Aborts use ``transport.abort()``: buffered data is discarded and the peer sees a reset, not a clean close.

How clients are kept on the proxy: a Kafka client bootstraps, then connects to the address the broker
advertises in Metadata / FindCoordinator. Both brokers are started with ``advertised.listeners`` naming
the proxy's port (Odradek supports the key; Kafka has it natively), so every connection after bootstrap
goes through the proxy too, with no protocol rewriting. The proxy is created first (its port is known),
the broker second, and ``target`` is set once the broker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading


class ChaosProxy:
    def __init__(
        self,
        *,
        every_s: float = 0.25,
        min_bytes: int = 20_000,
        max_bytes: int = 400_000,
        seed: int = 1,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.listen = listen
        self.every_s = every_s
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.rng = random.Random(seed)
        self.target: tuple[str, int] | None = None
        self.chaos = False
        self.port = 0
        self.cuts = 0  # connections aborted by the proxy
        self.connections = 0
        self.blackholes = 0
        self._open = threading.Event()  # set: traffic flows; cleared during a black hole
        self._open.set()
        self._flowing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._live: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)
        self._ticker: asyncio.Task | None = None

    # -- control (from the test thread) ----------------------------------------------------------
    def start(self) -> ChaosProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut_all(self) -> None:
        self._loop.call_soon_threadsafe(self._cut_all)

    def blackhole(self, seconds: float) -> None:
        """Forward nothing, either way, for ``seconds`` (from now); returns at once."""
        self.blackholes += 1
        self._open.clear()
        self._loop.call_soon_threadsafe(self._hold, seconds)

    @property
    def blackholed(self) -> bool:
        return not self._open.is_set()

    @property
    def address(self) -> str:
        return f"{self.listen[0]}:{self.port}"

    # -- inside the loop -----------------------------------------------------------------------------
    def _hold(self, seconds: float) -> None:
        assert self._flowing is not None
        self._flowing.clear()
        self._loop.call_later(seconds, self._release)

    def _release(self) -> None:
        assert self._flowing is not None
        self._flowing.set()
        self._open.set()

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, *self.listen, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())

    async def _stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        self._cut_all(count=False)
        # The connections' handlers end here, before the loop stops, not as "destroyed but pending".
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.every_s * self.rng.uniform(0.5, 1.5))
            if self.chaos and self._live:
                self._cut_all()

    def _cut_all(self, count: bool = True) -> None:
        for pair in list(self._live):
            self._abort(pair, count)

    def _abort(self, pair, count: bool = True) -> None:
        if pair not in self._live:
            return
        self._live.discard(pair)
        if count:
            self.cuts += 1
        for w in pair:
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self.target is None:
            c_writer.transport.abort()
            return
        try:
            b_reader, b_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.transport.abort()
            return
        self.connections += 1
        pair = (c_writer, b_writer)
        self._live.add(pair)
        budget = self.rng.randint(self.min_bytes, self.max_bytes)
        flowing = self._flowing
        assert flowing is not None

        async def upstream() -> None:
            nonlocal budget
            while True:
                data = await c_reader.read(65536)
                if not data:
                    break
                await flowing.wait()
                if self.chaos and len(data) >= budget:
                    b_writer.write(data[: self.rng.randint(0, max(0, budget - 1))])
                    await asyncio.sleep(0)
                    self._abort(pair)
                    return
                budget -= len(data)
                b_writer.write(data)
                await b_writer.drain()

        async def downstream() -> None:
            while True:
                data = await b_reader.read(65536)
                if not data:
                    break
                await flowing.wait()
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._abort(pair, count=False)
