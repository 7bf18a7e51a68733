"""A connection's bytes, in and out, with as few copies as asyncio allows.

``asyncio.StreamReader`` costs several copies per chunk received: over TLS the SSL layer allocates a
buffer per read, trims it to one record, the chunks are joined, appended to the reader's buffer and
copied out again by ``read()``. :class:`ConnectionStream` is a ``BufferedProtocol`` instead: the socket
(or, on a TLS listener, OpenSSL's decryption) writes straight into one buffer per connection, and the
connection takes whole frames out of it with one copy each (``codec.FrameReader``). Measured on this
machine's kind of hardware that halves the broker's receive CPU in plain text and cuts it by a third over
TLS (bench/tls.py has the broker-level figures).

A large frame (a produce request of 1 MiB, say) is not copied at all: once its length prefix has arrived,
a buffer of the frame's size takes the rest straight from the socket or OpenSSL, and that buffer is the
frame (read-only). Two copies of every produced byte (into the frame reader's tail, then out into a frame)
took 9-26% of the event loop's busy time on produce before (py-spy).

Flow control both ways: reading pauses while more than ``high_water`` bytes wait to be framed, and
:meth:`drain` waits while the transport's write buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol.codec import FrameReader

log = logging.getLogger("odradek.broker")

BASE_BUFFER_BYTES = 64 * 1024  # what a connection holds when idle
MIN_FREE_BYTES = 16 * 1024  # one TLS record at least: a smaller free tail grows the buffer
HIGH_WATER_BYTES = 256 * 1024  # received but not yet framed: past this, reading pauses
# A buffer grown by a busy producer is kept (growing it again costs a copy of what it holds each time);
# one grown past this by a burst after a pause is given back.
KEEP_BUFFER_BYTES = 2 * HIGH_WATER_BYTES
# Frames of this size and up are received into a buffer of their own. The upper bound is what a
# connection may have allocated for a frame before its bytes arrive; larger frames (up to
# socket.request.max.bytes) grow with what arrives, through the frame reader.
DIRECT_FRAME_MIN_BYTES = 64 * 1024
DIRECT_FRAME_MAX_BYTES = 8 * 1024 * 1024


class ConnectionStream(asyncio.BufferedProtocol):
    """One client connection's transport, as the broker's connection coroutine sees it."""

    def __init__(
        self,
        on_connected: Callable[[ConnectionStream], Awaitable[None]],
        *,
        tls: bool = False,
        high_water: int = HIGH_WATER_BYTES,
        counter: Counter | None = None,
    ) -> None:
        self._on_connected = on_connected
        # Open connections are counted here, unless a TLS layer below counts them from accept.
        self.counter = counter
        self.tls = tls
        self._high_water = high_water
        self._buf = bytearray(BASE_BUFFER_BYTES)
        self._len = 0
        self._frame: bytearray | None = None  # a large frame being received into its own buffer
        self._frame_filled = 0
        self._frames_done: list[memoryview] = []  # such frames, complete, not yet taken
        self._transport: asyncio.BaseTransport | Any = None
        self._reading_paused = False
        self._eof = False
        self._lost = False
        self._data = asyncio.Event()
        self._writable: asyncio.Future[None] | None = None
        self._write_paused = False
        self._closed: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    # --- protocol callbacks (asyncio calls these) ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.counter is not None:
            self.counter.opened()
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self.task = loop.create_task(self._on_connected(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled :]
        if len(self._buf) - self._len < MIN_FREE_BYTES:
            # A new, larger buffer (the old one may still be exported to the caller of the last read).
            grown = bytearray(max(2 * len(self._buf), self._len + BASE_BUFFER_BYTES))
            grown[: self._len] = memoryview(self._buf)[: self._len]
            self._buf = grown
        return memoryview(self._buf)[self._len :]

    def buffer_updated(self, nbytes: int) -> None:
        frame = self._frame
        if frame is not None:
            self._frame_filled += nbytes
            if self._frame_filled == len(frame):
                self._frames_done.append(memoryview(frame).toreadonly())
                self._frame = None
                self._data.set()
            return
        self._len += nbytes
        self._data.set()
        if self._len >= self._high_water and not self._reading_paused and not self._lost:
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._data.set()
        return False  # close our side too: a Kafka client that half-closes is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        self._data.set()
        self._wake_writer(ConnectionResetError("connection lost") if exc is None else exc)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self.counter is not None:
            counter, self.counter = self.counter, None
            counter.closed()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer(None)

    def _wake_writer(self, exc: BaseException | None) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    # --- what the connection coroutine calls --------------------------------------------------------

    async def next_frames(self, frames: FrameReader, timeout_s: float) -> list[bytes | memoryview] | None:
        """The whole frames received since the last call (waiting for some); None at the end of the
        stream. TimeoutError when nothing arrives for ``timeout_s``. FrameTooLarge as FrameReader."""
        while self._len == 0 and not self._frames_done:
            if self._eof:
                return None
            self._data.clear()
            await asyncio.wait_for(self._data.wait(), timeout_s)
        # A large frame completed first: nothing reaches the buffer while one is being received.
        out: list[bytes | memoryview] = self._frames_done
        self._frames_done = []
        if self._len == 0:
            return out
        with memoryview(self._buf) as view, view[: self._len] as received:
            out += frames.feed(received)  # copies each frame, and any partial tail, out of the buffer
        self._len = 0
        partial = frames.take_partial(DIRECT_FRAME_MIN_BYTES, DIRECT_FRAME_MAX_BYTES)
        if partial is not None and not self._eof:
            size, head = partial
            self._frame = bytearray(size)
            self._frame[: len(head)] = head
            self._frame_filled = len(head)
        if len(self._buf) > KEEP_BUFFER_BYTES:
            self._buf = bytearray(BASE_BUFFER_BYTES)  # give back what an unusual burst needed
        if self._reading_paused and not self._lost:
            self._reading_paused = False
            self._transport.resume_reading()
        return out

    def feed_eof(self) -> None:
        """Stop reading: the next :meth:`next_frames` after what is buffered answers None."""
        self._eof = True
        self._data.set()

    def write(self, data: bytes | memoryview) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("connection lost")
        if self._write_paused:
            if self._writable is None:
                self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def is_closing(self) -> bool:
        return self._lost or self._transport.is_closing()

    def close(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class Counter:
    """Connections open on a broker's listeners, from accept to close (``max.connections``)."""

    def __init__(self) -> None:
        self.open = 0

    def opened(self) -> None:
        self.open += 1

    def closed(self) -> None:
        self.open -= 1


class RefusedConnection(asyncio.Protocol):
    """What a listener answers a connection past ``max.connections`` with: closed at once, unread."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        log.warning(
            "refusing connection from %s: max.connections reached", f"{peer[0]}:{peer[1]}" if peer else "?"
        )
        transport.abort()
