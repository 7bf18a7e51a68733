"""The I/O shell: an asyncio server that moves frames between sockets and handlers.

One event loop owns all broker state, so handlers need no locks. Each connection has a reader that
splits frames and dispatches them in arrival order, and a writer that sends each response strictly in
request order (Java pairs a response with its oldest in-flight request). A handler returns a response
dict, an awaitable of one (acks=all waits for fsync; Fetch long-polls), or None (acks=0).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BrokerConfig, ConfigError
from ..protocol import codec
from ..protocol.apis import SUPPORTED, ApiKey, is_supported
from ..security import tls
from ..security.acls import Authorizer
from ..security.principal import NoMatchingRule, PrincipalMapper, require_cryptography, subject_dn
from ..security.sasl import MECHANISMS, AuthenticationFailed, plain_users_from_jaas
from ..security.scram_store import ScramStore
from ..security.session import ANONYMOUS, SaslSession, SessionClosed
from .cleaning import LogCleanerService
from .clock import monotonic_ms, now_ms
from .connection_io import ConnectionStream, Counter, RefusedConnection
from .fetch_sessions import FetchSessionCache
from .flusher import Flusher
from .groups import GroupService
from .handlers import HANDLERS, CloseConnection
from .listeners import Listener, parse_listeners
from .metrics import create as create_metrics
from .state import BrokerState
from .tls_server import start_tls_server
from .transactions import TransactionService
from .waiters import AppendWaiters

log = logging.getLogger("odradek.broker")

# Responses a connection may have encoded but not yet written before its next request waits.
UNSENT_LIMIT_BYTES = 16 * 1024 * 1024
SHUTDOWN_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class RequestContext:
    broker: Broker
    header: codec.RequestHeader
    host: str  # the address Metadata names for this listener (advertised, or the one connected to)
    port: int
    peer: str  # "ip:port" of the client, for logs
    principal: str  # "User:ANONYMOUS", "User:<SASL name>" or "User:<mapped certificate DN>"
    client_host: str  # the client's IP address (ACL host matching)
    listener: str  # the listener's name
    conn: _Connection

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
        # Security: who a client is (TLS certificates, SASL) and what it may do (ACLs).
        self.authorizer: Authorizer | None = (
            Authorizer(data_dir, config["super.users"], config["allow.everyone.if.no.acl.found"])
            if config["authorizer.class.name"]
            else None
        )
        self.scram = ScramStore(data_dir)
        self.mechanisms = tuple(m.strip() for m in config["sasl.enabled.mechanisms"].split(",") if m.strip())
        unknown = [m for m in self.mechanisms if m not in MECHANISMS]
        if unknown:
            raise ConfigError(
                f"sasl.enabled.mechanisms: Odradek offers {', '.join(MECHANISMS)}; got {', '.join(unknown)}"
            )
        self.principal_mapper = PrincipalMapper(config["ssl.principal.mapping.rules"])
        self.listeners = parse_listeners(config)  # validated now; start() binds them
        self._tls: dict[str, ssl.SSLContext] = {}
        self.plain_users: dict[str, dict[str, str]] = {}
        for listener in self.listeners:
            self._prepare(listener)
        self.bound: dict[str, tuple[str, int]] = {}  # listener name -> the address it is bound to
        self._servers: list[asyncio.Server] = []
        self._open = Counter()  # connections accepted and not yet closed (past max.connections: refused)
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self.stopping = False
        self._background: list[asyncio.Task[None]] = []
        self.host = ""
        self.port = 0

    def _prepare(self, listener: Listener) -> None:
        """A listener's TLS context and PLAIN users, built before anything is bound (ConfigError)."""
        if listener.tls:
            # As in Kafka (KIP-684), ssl.client.auth applies to SSL listeners; SASL_SSL clients are
            # authenticated by SASL, so their listener asks for no certificate.
            client_auth = self.config["ssl.client.auth"] if listener.protocol == "SSL" else "none"
            if client_auth != "none":
                require_cryptography()
            self._tls[listener.name] = tls.server_context(self.config, client_auth)
        if listener.sasl:
            key = f"listener.name.{listener.name.lower()}.plain.sasl.jaas.config"
            jaas = self.config.listener_keys.get(key)
            self.plain_users[listener.name] = plain_users_from_jaas(jaas, what=key) if jaas else {}

    async def start(self, host: str, port: int) -> None:
        """Open the data and bind every listener; ``host``/``port`` is the PLAINTEXT listener's address
        when ``listeners`` is not configured."""
        if not self.config["listeners"].strip():
            self.listeners = parse_listeners(self.config, (host, port))
        self.state.open(now_ms())
        try:
            self.groups.open()
            self.txns.open()
            self.scram.open()
            if self.authorizer is not None:
                self.authorizer.open()
        except BaseException:
            self.state.close()  # releases the data directory's lock (a corrupt file: DataDirError)
            raise
        await self.txns.start()
        self.metrics.start(self)
        try:
            for listener in self.listeners:
                await self._bind(listener)
        except BaseException:
            for server in self._servers:
                server.close()
            await self.metrics.stop()
            raise
        first = self.listeners[0]
        self.host, self.port = self.bound[first.name]
        self._background.append(asyncio.create_task(self._housekeeping()))
        self._background.append(asyncio.create_task(LogCleanerService(self).run()))
        for listener in self.listeners:
            bound_host, bound_port = self.bound[listener.name]
            log.info("listener %s (%s) on %s:%d", listener.name, listener.protocol, bound_host, bound_port)
            if listener.protocol == "PLAINTEXT" and not listener.loopback:
                log.warning(
                    "listener %s is PLAINTEXT on a non-loopback address: anyone who can reach %s:%d may use "
                    "the broker unauthenticated and unencrypted",
                    listener.name,
                    bound_host,
                    bound_port,
                )
        log.info("listening on %s:%d, data in %s", self.host, self.port, self.state.data_dir)

    async def _bind(self, listener: Listener) -> None:
        context = self._tls.get(listener.name)
        serve = functools.partial(self._serve_connection, listener)

        def refuse() -> RefusedConnection | None:
            # Counted from accept, so connections still in their TLS handshake count too, as in Kafka.
            if self._open.open < self.config["max.connections"]:
                return None
            return RefusedConnection()

        def stream() -> ConnectionStream:
            return ConnectionStream(serve, tls=context is not None, counter=self._open)

        def plaintext() -> asyncio.BaseProtocol:
            return refuse() or stream()

        try:
            if context is None:
                server = await asyncio.get_running_loop().create_server(
                    plaintext, listener.host or None, listener.port, reuse_address=True
                )
            else:
                server = await start_tls_server(
                    stream,
                    listener.host or None,
                    listener.port,
                    context,
                    handshake_timeout_s=self.config["ssl.handshake.timeout.ms"] / 1000,
                    refuse=refuse,
                )
        except OSError as e:
            raise OSError(
                e.errno, f"{listener.name}://{listener.host}:{listener.port}: {e.strerror}"
            ) from None
        self._servers.append(server)
        self.bound[listener.name] = server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop accepting, finish writes, fsync everything, release the data directory."""
        self.stopping = True
        await self.metrics.stop()
        for server in self._servers:
            server.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # Connections end by themselves: no more reading, pending responses (fsync waits, long polls
        # cut short) go out, then the socket closes. Only a connection stuck past the bound is cut.
        for conn in self._connections.values():
            conn.stream.feed_eof()
        self.waiters.wake_all()
        if self._connections:
            _, stuck = await asyncio.wait(list(self._connections), timeout=SHUTDOWN_GRACE_S)
            for task in stuck:
                self._connections[task].stream.abort()
            if stuck:
                await asyncio.wait(stuck, timeout=1)
        await self.txns.drain()
        await self.flusher.drain()
        self.flusher.close()
        self.txns.close()
        self.groups.close()
        self.scram.close()
        if self.authorizer is not None:
            self.authorizer.close()
        self.state.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
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

    async def _serve_connection(self, listener: Listener, stream: ConnectionStream) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer_info = stream.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        client_host = _acl_host(str(peer_info[0])) if peer_info else ""
        sock = stream.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        principal = ANONYMOUS
        if listener.tls:
            ssl_object = stream.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:
                try:
                    principal = "User:" + self.principal_mapper.name(subject_dn(der))
                except (NoMatchingRule, ValueError) as e:
                    log.warning("refusing TLS client %s: %s", peer, e)
                    stream.abort()
                    return
        local = listener.advertised or stream.get_extra_info("sockname") or (self.host, self.port)
        sasl = None
        if listener.sasl:
            sasl = SaslSession(
                self.mechanisms,
                self.plain_users.get(listener.name, {}),
                self.scram,
                self.config["connections.max.reauth.ms"],
                monotonic_ms,
            )
        conn = _Connection(self, stream, local[0], local[1], peer)
        conn.listener = listener.name
        conn.principal = principal
        conn.client_host = client_host
        if sasl is not None:
            conn.start_sasl(sasl)
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
        stream: ConnectionStream,
        host: str,
        port: int,
        peer: str,
    ) -> None:
        self.broker = broker
        self.stream = stream
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
        self.listener = ""
        self.principal = ANONYMOUS
        self.client_host = ""
        # SASL listeners: the session's state machine (None elsewhere); requests pass its gate until the
        # client is authenticated, and ``close_after_ms`` ends the connection after a failed login.
        self.sasl: SaslSession | None = None
        self.close_after_ms: int | None = None

    def start_sasl(self, session: SaslSession) -> None:
        self.sasl = session
        # Before authentication a request may be no larger than sasl.server.max.receive.size.
        self.frames.max_frame_bytes = min(
            self.broker.config["socket.request.max.bytes"], self.broker.config["sasl.server.max.receive.size"]
        )

    def authenticated(self, principal: str) -> None:
        self.principal = principal
        self.frames.max_frame_bytes = self.broker.config["socket.request.max.bytes"]

    def close_after_response(self, delay_ms: int = 0) -> None:
        """Send what is queued, wait ``delay_ms``, then close (a failed login or a refused mechanism)."""
        self.close_after_ms = delay_ms

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
        self.stream.close()
        with contextlib.suppress(Exception):
            await self.stream.wait_closed()

    async def _receive_loop(self) -> None:
        idle_s = self.broker.config["connections.max.idle.ms"] / 1000
        while True:
            try:
                frames = await self.stream.next_frames(self.frames, idle_s)
            except TimeoutError:
                log.info("closing idle connection from %s", self.peer)
                return
            if frames is None:
                return
            for frame in frames:
                sasl = self.sasl
                if sasl is not None and sasl.expects_raw_token:
                    await self._raw_token(sasl, bytes(frame))
                else:
                    fixed = codec.read_fixed_header(frame)
                    if sasl is not None:
                        try:
                            sasl.admits(fixed[0])
                        except SessionClosed as e:
                            raise CloseConnection(str(e)) from None
                    if not await self._wait_for_room(fixed[0] == ApiKey.FETCH):
                        return
                    await self._dispatch(frame, *fixed)
                if self.close_after_ms is not None:
                    if self.close_after_ms:
                        await asyncio.sleep(self.close_after_ms / 1000)
                    return

    async def _raw_token(self, sasl: SaslSession, token: bytes) -> None:
        """A SASL token without a Kafka header (after SaslHandshake v0): answered the same way, bare."""
        try:
            answer, _ = sasl.authenticate(token)
        except AuthenticationFailed as e:
            log.info("authentication failed for %s: %s", self.peer, e.reason)
            self.close_after_response(self.broker.config["connection.failed.authentication.delay.ms"])
            return
        if sasl.authenticated:
            assert sasl.principal is not None
            self.authenticated(sasl.principal)
        await self._queue(False, len(answer).to_bytes(4, "big") + answer)

    async def _wait_for_room(self, is_fetch: bool) -> bool:
        """Hold the next request while unwritten responses are over their bound; False once closed."""
        while not self._closed and (
            self.unsent_bytes > UNSENT_LIMIT_BYTES or (is_fetch and self.unsent_fetches)
        ):
            self._room.clear()
            await self._room.wait()
        return not self._closed

    async def _dispatch(
        self, frame: bytes | memoryview, api_key: int, api_version: int, correlation_id: int
    ) -> None:
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
        ctx = RequestContext(
            self.broker,
            header,
            self.host,
            self.port,
            self.peer,
            self.principal,
            self.client_host,
            self.listener,
            self,
        )
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
                await self.stream.drain()
                return
            is_fetch, response = item
            if isinstance(response, asyncio.Future):
                try:
                    response = await response
                except CloseConnection as e:
                    log.warning("closing connection from %s: %s", self.peer, e)
                    self.stream.close()
                    return
                except Exception:
                    log.exception("closing connection from %s after an internal error", self.peer)
                    self.stream.close()
                    return
            if response is not None:
                parts = response if isinstance(response, list) else (response,)
                if self.stream.tls and len(parts) > 1:
                    parts = _coalesced(parts)
                for part in parts:
                    if self.stream.is_closing():
                        return  # the client went away (e.g. closed during a long-poll Fetch)
                    self.stream.write(part)
                # Waits only while the socket's buffer is over its high-water mark (a slow reader).
                await self.stream.drain()
                self.unsent_bytes -= _size(response)
            if is_fetch:
                self.unsent_fetches -= 1
            self._room.set()


TLS_RECORD_BYTES = 16 * 1024


def _coalesced(parts: list[bytes | memoryview] | tuple[bytes | memoryview, ...]) -> list[bytes | memoryview]:
    """Over TLS each write becomes at least one record (and one encryption call): small parts (headers,
    small record batches) are joined into record-sized pieces; large ones go as they are."""
    out: list[bytes | memoryview] = []
    pending: list[bytes | memoryview] = []
    pending_bytes = 0
    for part in parts:
        size = memoryview(part).nbytes
        if size >= TLS_RECORD_BYTES:
            if pending:
                out.append(b"".join(pending))
                pending, pending_bytes = [], 0
            out.append(part)
            continue
        pending.append(part)
        pending_bytes += size
        if pending_bytes >= TLS_RECORD_BYTES:
            out.append(b"".join(pending))
            pending, pending_bytes = [], 0
    if pending:
        out.append(b"".join(pending))
    return out


def _acl_host(address: str) -> str:
    """The client address as ACL hosts name it: Kafka writes IPv6 as Java does, every group shown and
    none compressed (``::1`` is ``0:0:0:0:0:0:0:1``)."""
    if ":" not in address:
        return address
    try:
        exploded = ipaddress.IPv6Address(address.split("%", 1)[0]).exploded
    except ValueError:
        return address
    return ":".join(f"{int(group, 16):x}" for group in exploded.split(":"))


def _size(response: bytes | list[bytes | memoryview]) -> int:
    if isinstance(response, list):
        return sum(memoryview(part).nbytes for part in response)
    return len(response)


_CLOSE = object()
