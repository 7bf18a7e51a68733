"""The I/O shell: an asyncio server that moves frames between sockets and handlers.

One event loop owns all broker state, so handlers need no locks. Each connection has a reader that
splits frames and dispatches them in arrival order, and a writer that sends each response strictly in
request order (Java pairs a response with its oldest in-flight request). A handler returns a response
dict, an awaitable of one (acks=all waits for fsync; Fetch long-polls), or None (acks=0).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BrokerConfig, ConfigError
from ..protocol import codec
from ..protocol.apis import SUPPORTED, ApiKey, is_supported
from .cleaning import LogCleanerService
from .clock import monotonic_ms, now_ms
from .fetch_sessions import FetchSessionCache
from .flusher import Flusher
from .groups import GroupService
from .handlers import HANDLERS, CloseConnection
from .metrics import create as create_metrics
from .state import BrokerState
from .transactions import TransactionService
from .waiters import AppendWaiters

log = logging.getLogger("odradek.broker")

READ_CHUNK_BYTES = 256 * 1024
# Responses a connection may have encoded but not yet written before its next request waits.
UNSENT_LIMIT_BYTES = 16 * 1024 * 1024
SHUTDOWN_GRACE_S = 10.0


def parse_advertised(value: str) -> tuple[str, int] | None:
    """``PLAINTEXT://host:port`` (the first listener of a comma list) or None when not set."""
    if not value.strip():
        return None
    first = value.split(",")[0].strip()
    scheme, sep, address = first.partition("://")
    host, _, port = address.rpartition(":")
    if (
        not sep
        or scheme.upper() != "PLAINTEXT"
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise ConfigError(f"advertised.listeners: expected PLAINTEXT://HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class RequestContext:
    broker: Broker
    header: codec.RequestHeader
    host: str
    port: int
    peer: str

    @property
    def api_version(self) -> int:
        return self.header.api_version


class Broker:
    """Broker state plus the server that exposes it."""

    def __init__(self, data_dir: Path, config: BrokerConfig) -> None:
        self.config = config
        self.state = BrokerState(data_dir, config)
        self.metrics = create_metrics(config)  # ConfigError for a bad metrics.listen
        self.flusher = Flusher()
        if self.metrics.enabled:
            self.flusher.fsync = self.metrics.timed_fsync
        self.waiters = AppendWaiters()
        self.fetch_sessions = FetchSessionCache(
            config["max.incremental.fetch.session.cache.slots"], monotonic_ms
        )
        self.groups = GroupService(data_dir, config, self.flusher)
        self.txns = TransactionService(self, data_dir)
        self.node_id: int = config["node.id"]
        self.cluster_id: str = config["cluster.id"]
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self.stopping = False
        self._background: list[asyncio.Task[None]] = []
        self.host = ""
        self.port = 0
        self.advertised = parse_advertised(config["advertised.listeners"])

    async def start(self, host: str, port: int) -> None:
        self.state.open(now_ms())
        self.groups.open()
        self.txns.open()
        await self.txns.start()
        self.metrics.start(self)
        try:
            self._server = await asyncio.start_server(
                self._serve_connection, host, port, reuse_address=True, limit=READ_CHUNK_BYTES
            )
        except BaseException:
            await self.metrics.stop()
            raise
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        self._background.append(asyncio.create_task(self._housekeeping()))
        self._background.append(asyncio.create_task(LogCleanerService(self).run()))
        log.info("listening on %s:%d, data in %s", self.host, self.port, self.state.data_dir)

    async def stop(self) -> None:
        """Stop accepting, finish writes, fsync everything, release the data directory."""
        self.stopping = True
        await self.metrics.stop()
        if self._server is not None:
            self._server.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # Connections end by themselves: no more reading, pending responses (fsync waits, long polls
        # cut short) go out, then the socket closes. Only a connection stuck past the bound is cut.
        for conn in self._connections.values():
            conn.reader.feed_eof()
        self.waiters.wake_all()
        if self._connections:
            _, stuck = await asyncio.wait(list(self._connections), timeout=SHUTDOWN_GRACE_S)
            for task in stuck:
                self._connections[task].writer.transport.abort()
            if stuck:
                await asyncio.wait(stuck, timeout=1)
        await self.txns.drain()
        await self.flusher.drain()
        self.txns.close()
        self.groups.close()
        self.state.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        log.info("stopped cleanly")

    def connection_count(self) -> int:
        return len(self._connections)

    def all_logs(self) -> list[Any]:
        return [p for t in self.state.topics.values() for p in t.partitions]

    async def _housekeeping(self) -> None:
        """Background flush of acks<all data, segment rolling by age, and retention.

        The intervals are read on every round, so a dynamic broker config (IncrementalAlterConfigs)
        changes the pace from the next round on."""
        last_retention = last_offsets_check = now_ms()
        while True:
            await asyncio.sleep(max(10, self.config["log.flush.interval.ms"]) / 1000)
            retention_every_ms = max(1000, self.config["log.retention.check.interval.ms"])
            offsets_every_ms = max(1000, self.config["offsets.retention.check.interval.ms"])
            now = now_ms()
            logs = self.all_logs()
            dirty = [p for p in logs if p.flushed_offset < p.log_end_offset]
            if dirty:
                self.flusher.mark_dirty(dirty)
            expiration_ms = self.config["producer.id.expiration.ms"]
            for plog in logs:
                plog.maybe_roll(now)
                plog.producers.expire(now, expiration_ms)
            if now - last_retention >= retention_every_ms:
                last_retention = now
                for plog in logs:
                    removed = plog.enforce_retention(now)
                    if removed:
                        log.info("retention removed %d segments from %s", removed, plog)
            if now - last_offsets_check >= offsets_every_ms:
                last_offsets_check = now
                self.groups.expire_offsets()

    # --- connections ------------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        if len(self._connections) >= self.config["max.connections"]:
            # Past max.connections a new connection is closed at once; those open are not disturbed.
            log.warning("refusing connection from %s: max.connections reached", peer)
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = self.advertised or writer.get_extra_info("sockname") or (self.host, self.port)
        conn = _Connection(self, reader, writer, local[0], local[1], peer)
        self._connections[task] = conn
        self.metrics.connection_opened()
        try:
            await conn.run()
        finally:
            del self._connections[task]


class _Connection:
    """One client connection: requests are read and handled in order, responses written in order.

    Requests are pipelined (a client may have many in flight), but response memory is bounded as if
    they were not: no request is read while the responses waiting to be written exceed
    ``UNSENT_LIMIT_BYTES``, and a Fetch is not handled while an earlier Fetch response on the same
    connection is still unwritten (clients fetch one request at a time per broker). A client that never
    reads its responses therefore costs at most about one Fetch response plus the limit, as a Kafka
    connection, which handles one request at a time, costs one response.
    """

    def __init__(
        self,
        broker: Broker,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        peer: str,
    ) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.peer = peer
        self.frames = codec.FrameReader(broker.config["socket.request.max.bytes"])
        # Responses in request order; bounded by queued.max.requests so a client that never reads
        # its responses stops being read from instead of growing the broker's memory.
        self.pending: asyncio.Queue[Any] = asyncio.Queue(maxsize=broker.config["queued.max.requests"])
        self.unsent_bytes = 0  # responses encoded but not yet handed to the socket
        self.unsent_fetches = 0  # Fetch requests handled (or long-polling) whose response is unwritten
        self._room = asyncio.Event()
        self._closed = False

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._receive_loop()
        except CloseConnection as e:
            log.warning("closing connection from %s: %s", self.peer, e)
        except codec.ProtocolError as e:
            log.warning("closing connection from %s: %s", self.peer, e)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("closing connection from %s after an internal error", self.peer)
        # Let responses already queued go out before closing (e.g. the error reply to a bad request).
        with contextlib.suppress(asyncio.QueueFull):
            self.pending.put_nowait(_CLOSE)
        try:
            await asyncio.wait_for(sender, timeout=30)
        except (TimeoutError, Exception):
            sender.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def _receive_loop(self) -> None:
        idle_s = self.broker.config["connections.max.idle.ms"] / 1000
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK_BYTES), timeout=idle_s)
            except TimeoutError:
                log.info("closing idle connection from %s", self.peer)
                return
            if not data:
                return
            for frame in self.frames.feed(data):
                fixed = codec.read_fixed_header(frame)
                if not await self._wait_for_room(fixed[0] == ApiKey.FETCH):
                    return
                await self._dispatch(frame, *fixed)

    async def _wait_for_room(self, is_fetch: bool) -> bool:
        """Hold the next request while unwritten responses are over their bound; False once closed."""
        while not self._closed and (
            self.unsent_bytes > UNSENT_LIMIT_BYTES or (is_fetch and self.unsent_fetches)
        ):
            self._room.clear()
            await self._room.wait()
        return not self._closed

    async def _dispatch(self, frame: bytes, api_key: int, api_version: int, correlation_id: int) -> None:
        if not is_supported(api_key, api_version):
            if api_key == ApiKey.API_VERSIONS:
                await self._queue(False, codec.encode_api_versions_fallback(correlation_id))
                return
            name = ApiKey(api_key).name if api_key in SUPPORTED else f"unknown api key {api_key}"
            raise CloseConnection(
                f"unsupported request: {name} v{api_version} (correlation id {correlation_id})"
            )
        started = time.perf_counter()
        header = codec.parse_header(frame)
        request = codec.decode_request(header, frame)
        ctx = RequestContext(self.broker, header, self.host, self.port, self.peer)
        is_fetch = api_key == ApiKey.FETCH
        if is_fetch:
            self.unsent_fetches += 1
        metrics = self.broker.metrics
        try:
            result = HANDLERS[api_key](ctx, request)
        except BaseException:
            if is_fetch:
                self.unsent_fetches -= 1
            metrics.request_done(api_key, api_version, started, request, None)
            raise
        if inspect.isawaitable(result):
            future = asyncio.ensure_future(self._complete(ctx, result, started, request))
            await self.pending.put((is_fetch, future))
            return
        metrics.request_done(api_key, api_version, started, request, result)
        if result is not None:
            await self._queue(is_fetch, self._encode(ctx, result))
        elif is_fetch:
            self.unsent_fetches -= 1

    async def _queue(self, is_fetch: bool, response: bytes | list[bytes | memoryview]) -> None:
        self.unsent_bytes += _size(response)
        await self.pending.put((is_fetch, response))

    async def _complete(
        self, ctx: RequestContext, pending: Awaitable[Any], started: float, request: Any
    ) -> Any:
        h = ctx.header
        try:
            result = await pending
        except BaseException:
            self.broker.metrics.request_done(h.api_key, h.api_version, started, request, None)
            raise
        self.broker.metrics.request_done(h.api_key, h.api_version, started, request, result)
        if result is None:
            return None
        response = self._encode(ctx, result)
        self.unsent_bytes += _size(response)
        return response

    @staticmethod
    def _encode(ctx: RequestContext, result: Any) -> bytes | list[bytes | memoryview]:
        if isinstance(result, bytes):
            return result
        h = ctx.header
        return codec.encode_response_parts(h.api_key, h.api_version, h.correlation_id, result)

    async def _send_loop(self) -> None:
        try:
            await self._send_responses()
        finally:
            self._closed = True
            self._room.set()

    async def _send_responses(self) -> None:
        while True:
            item = await self.pending.get()
            if item is _CLOSE:
                await self.writer.drain()
                return
            is_fetch, response = item
            if isinstance(response, asyncio.Future):
                try:
                    response = await response
                except CloseConnection as e:
                    log.warning("closing connection from %s: %s", self.peer, e)
                    self.writer.close()
                    return
                except Exception:
                    log.exception("closing connection from %s after an internal error", self.peer)
                    self.writer.close()
                    return
            if response is not None:
                for part in response if isinstance(response, list) else (response,):
                    if self.writer.transport.is_closing():
                        return  # the client went away (e.g. closed during a long-poll Fetch)
                    self.writer.write(part)
                # Waits only while the socket's buffer is over its high-water mark (a slow reader).
                await self.writer.drain()
                self.unsent_bytes -= _size(response)
            if is_fetch:
                self.unsent_fetches -= 1
            self._room.set()


def _size(response: bytes | list[bytes | memoryview]) -> int:
    if isinstance(response, list):
        return sum(memoryview(part).nbytes for part in response)
    return len(response)


_CLOSE = object()
