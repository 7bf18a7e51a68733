"""TLS listeners on the asyncio event loop, telling a refused peer why, as Kafka does.

``asyncio.start_server(ssl=...)`` does the TLS through ``asyncio.sslproto.SSLProtocol``. When a handshake
fails (an untrusted or expired client certificate, a plaintext client on a TLS port), OpenSSL has written
a fatal alert into the protocol's outgoing buffer, but Python 3.11's SSLProtocol closes the transport
without sending it (CPython gh-98078), so clients report a dropped connection instead of, say, "SSL alert:
certificate unknown". Apache Kafka's clients and Kafka's own broker send that alert. This module builds the
same server ``start_server`` builds, with one change in a subclass: the alert is written to the socket
before the connection is closed. On an event loop of another kind (uvloop, which has its own TLS) the
loop's TLS is used unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

from .connection_io import ConnectionStream, Counter


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    # Counted from accept to close: the application protocol hears of neither end when a handshake fails.
    counter: Counter | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.counter is not None:
            self.counter.opened()
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.counter is not None:
            counter, self.counter = self.counter, None
            counter.closed()
        super().connection_lost(exc)

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            # The transport is empty at this point (nothing was sent after the server's last flight), so
            # this write reaches the socket at once, before the close that follows.
            with contextlib.suppress(Exception):
                alert = self._outgoing.read()
                if alert:
                    self._transport.write(alert)
        super()._on_handshake_complete(handshake_exc)


async def start_tls_server(
    app_factory: Callable[[], ConnectionStream],
    host: str | None,
    port: int,
    context: ssl.SSLContext,
    *,
    handshake_timeout_s: float,
    reuse_address: bool = True,
    refuse: Callable[[], asyncio.BaseProtocol | None] = lambda: None,
) -> asyncio.Server:
    """A TLS server whose connections' decrypted bytes go to ``app_factory()``'s protocol. ``refuse()``
    is asked first, at accept: a protocol it returns takes the connection instead (no handshake)."""
    loop = asyncio.get_running_loop()
    if not type(loop).__module__.startswith("asyncio"):
        return await loop.create_server(
            app_factory,
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=handshake_timeout_s,
            reuse_address=reuse_address,
        )

    def factory() -> Any:
        refused = refuse()
        if refused is not None:
            return refused
        app = app_factory()
        protocol = _AlertingSSLProtocol(
            loop, app, context, None, server_side=True, ssl_handshake_timeout=handshake_timeout_s
        )
        protocol.counter, app.counter = app.counter, None  # counted from accept, handshake included
        return protocol

    return await loop.create_server(factory, host, port, reuse_address=reuse_address)
