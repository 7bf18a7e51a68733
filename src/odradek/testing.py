"""A real Odradek broker inside your tests: no Docker, no JVM.

``EmbeddedBroker`` runs the broker in-process, on its own thread and event loop, on a free loopback
port with a temporary data directory::

    with EmbeddedBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

Installed as a pytest plugin (entry point ``odradek``), it also provides the ``odradek_broker`` fixture.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .config import BrokerConfig

STARTUP_TIMEOUT_S = 30.0


class EmbeddedBroker:
    def __init__(
        self,
        data_dir: str | Path | None = None,
        settings: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="odradek-"))
        self.config = BrokerConfig.build(overrides=[f"{k}={v}" for k, v in (settings or {}).items()])
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._stopped: asyncio.Event | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._broker is None:
            raise RuntimeError("the embedded broker is not running")
        return f"{self._broker.host}:{self._broker.port}"

    @property
    def metrics_address(self) -> str | None:
        """HOST:PORT of the Prometheus endpoint (``/metrics``) when ``metrics.listen`` is set, else None."""
        if self._broker is None:
            raise RuntimeError("the embedded broker is not running")
        address = self._broker.metrics.address
        return None if address is None else f"{address[0]}:{address[1]}"

    def start(self) -> EmbeddedBroker:
        from .broker.server import Broker

        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                self._stopped = asyncio.Event()
                self._broker = Broker(self.data_dir, self.config)
                await self._broker.start(self._host, self._port)
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            await self._stopped.wait()
            await self._broker.stop()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="odradek-embedded", daemon=True)
        self._thread.start()
        started = ready.wait(STARTUP_TIMEOUT_S)
        if failure or not started:
            self._thread.join(5)
            self._thread = None
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            if failure:
                raise failure[0]
            raise RuntimeError(f"the embedded broker did not start within {STARTUP_TIMEOUT_S:g} s")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        self._thread.join(30)
        self._thread = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


try:
    import pytest
except ImportError:  # the plugin part needs pytest; the context manager does not
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def odradek_broker() -> Iterator[EmbeddedBroker]:
        """A broker shared by the test session; give each test its own topic names."""
        with EmbeddedBroker() as broker:
            yield broker
