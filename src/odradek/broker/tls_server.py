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
from collections.abc import Awaitable, Callable
from typing import Any

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _AlertingSSLProtocol(sslproto.SSLProtocol):
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
    client_connected: ClientConnected,
    host: str | None,
    port: int,
    context: ssl.SSLContext,
    *,
    handshake_timeout_s: float,
    limit: int,
    reuse_address: bool = True,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    if not type(loop).__module__.startswith("asyncio"):
        return await asyncio.start_server(
            client_connected,
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=handshake_timeout_s,
            limit=limit,
            reuse_address=reuse_address,
        )

    def factory() -> Any:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        app = asyncio.StreamReaderProtocol(reader, client_connected, loop=loop)
        return _AlertingSSLProtocol(
            loop, app, context, None, server_side=True, ssl_handshake_timeout=handshake_timeout_s
        )

    return await loop.create_server(factory, host, port, reuse_address=reuse_address)
