"""ConnectionStream without sockets: bytes written into its buffer come out as whole frames, reading pauses
past the high-water mark and resumes once framed, a grown buffer keeps what it held, EOF ends the stream."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest

from odradek.broker.connection_io import (
    BASE_BUFFER_BYTES,
    DIRECT_FRAME_MAX_BYTES,
    DIRECT_FRAME_MIN_BYTES,
    ConnectionStream,
)
from odradek.protocol.codec import FrameReader


class Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.written: list[bytes] = []
        self.closing = False

    def pause_reading(self) -> None:
        assert not self.paused
        self.paused, self.pauses = True, self.pauses + 1

    def resume_reading(self) -> None:
        assert self.paused
        self.paused = False

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name, default=None):
        return default


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def receive(stream: ConnectionStream, data: bytes, chunk: int = 7000) -> None:
    """What the event loop does: ask for a buffer, fill as much of it as a read brings (at most the
    buffer's length), report how much."""
    pos = 0
    while pos < len(data):
        buf = stream.get_buffer(-1)
        assert len(buf) > 0
        n = min(len(buf), chunk, len(data) - pos)
        buf[:n] = data[pos : pos + n]
        stream.buffer_updated(n)
        pos += n


async def connected(high_water: int = 1 << 20) -> tuple[ConnectionStream, Transport]:
    started = asyncio.Event()

    async def on_connected(_: ConnectionStream) -> None:
        started.set()

    stream = ConnectionStream(on_connected, high_water=high_water)
    transport = Transport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    await started.wait()
    return stream, transport


def test_frames_come_out_whole_across_reads_and_buffer_growth():
    async def main() -> None:
        stream, _ = await connected()
        payloads = [bytes([i]) * size for i, size in enumerate((10, 0, 300_000, 5, 70_000))]
        data = b"".join(frame(p) for p in payloads)
        reader = FrameReader(1 << 20)
        receive(stream, data[:150_001])  # past the base buffer: it grows, keeping what it holds
        got = await stream.next_frames(reader, 1)
        receive(stream, data[150_001:])
        got += await stream.next_frames(reader, 1)
        assert got == payloads

    asyncio.run(main())


def test_reading_pauses_past_the_high_water_mark_and_resumes_once_framed():
    async def main() -> None:
        stream, transport = await connected(high_water=BASE_BUFFER_BYTES)
        receive(stream, frame(b"x" * (3 * BASE_BUFFER_BYTES)))
        assert transport.paused and transport.pauses == 1
        assert await stream.next_frames(FrameReader(1 << 20), 1) == [b"x" * (3 * BASE_BUFFER_BYTES)]
        assert not transport.paused

    asyncio.run(main())


def test_idle_times_out_and_eof_ends_after_what_is_buffered():
    async def main() -> None:
        stream, _ = await connected()
        reader = FrameReader(1024)
        with pytest.raises(TimeoutError):
            await stream.next_frames(reader, 0.05)
        receive(stream, frame(b"last"))
        stream.eof_received()
        assert await stream.next_frames(reader, 1) == [b"last"]
        assert await stream.next_frames(reader, 1) is None

    asyncio.run(main())


def test_drain_waits_while_writing_is_paused_and_fails_once_the_connection_is_lost():
    async def main() -> None:
        stream, transport = await connected()
        stream.write(b"abc")
        assert transport.written == [b"abc"]
        await stream.drain()  # not paused: returns at once
        stream.pause_writing()
        waiting = asyncio.ensure_future(stream.drain())
        await asyncio.sleep(0)
        assert not waiting.done()
        stream.resume_writing()
        await waiting
        stream.pause_writing()
        waiting = asyncio.ensure_future(stream.drain())
        await asyncio.sleep(0)
        stream.connection_lost(None)
        with pytest.raises(ConnectionResetError):
            await waiting
        assert stream.is_closing()
        assert await stream.next_frames(FrameReader(1024), 1) is None

    asyncio.run(main())


def test_tls_writes_join_small_parts_into_record_sized_pieces_and_keep_order():
    from odradek.broker.server import TLS_RECORD_BYTES, _coalesced

    small, big = b"h" * 100, memoryview(b"B" * (2 * TLS_RECORD_BYTES))
    parts = [small, small, big, small, *[b"s" * 1000] * 40]
    out = _coalesced(parts)
    assert b"".join(bytes(p) for p in out) == b"".join(bytes(p) for p in parts)
    assert out[0] == small + small and out[1] is big  # a large part is never copied
    assert all(memoryview(p).nbytes <= 2 * TLS_RECORD_BYTES for p in out)
    assert len(out) < len(parts) // 4


def test_a_large_frame_is_received_into_its_own_buffer_and_order_is_kept():
    async def main() -> None:
        rng = random.Random(7)
        stream, _ = await connected(high_water=BASE_BUFFER_BYTES)
        sizes = [3, DIRECT_FRAME_MIN_BYTES, 0, 1_000_000, 17, DIRECT_FRAME_MIN_BYTES + 1, 200_000, 5]
        payloads = [bytes([i + 1]) * size for i, size in enumerate(sizes)]
        data = b"".join(frame(p) for p in payloads)
        reader = FrameReader(DIRECT_FRAME_MAX_BYTES * 2)
        got: list = []
        pos = 0
        while pos < len(data):  # reads of random sizes, each followed by the connection taking frames
            n = rng.choice((1, 3, 4, 5, 1000, 16384, 70_000))
            receive(stream, data[pos : pos + n], chunk=n)
            pos += n
            if stream._len or stream._frames_done:
                got += await stream.next_frames(reader, 1)
        assert [bytes(g) for g in got] == payloads
        big = [g for g in got if len(g) >= DIRECT_FRAME_MIN_BYTES]
        assert len(big) == 4
        assert all(isinstance(g, memoryview) and g.readonly for g in big), "a large frame was copied"

    asyncio.run(main())


def test_a_frame_above_the_direct_bound_still_comes_out_whole():
    async def main() -> None:
        stream, _ = await connected()
        payload = b"z" * (DIRECT_FRAME_MAX_BYTES + 10)
        reader = FrameReader(DIRECT_FRAME_MAX_BYTES * 2)
        data = frame(payload)
        got: list = []
        for start in range(0, len(data), 1 << 20):
            receive(stream, data[start : start + (1 << 20)], chunk=1 << 16)
            got += await stream.next_frames(reader, 1)
        assert len(got) == 1 and bytes(got[0]) == payload
        assert stream._frame is None, "a frame past the bound was allocated before its bytes came"

    asyncio.run(main())


def test_eof_in_the_middle_of_a_large_frame_ends_the_stream():
    async def main() -> None:
        stream, _ = await connected()
        reader = FrameReader(1 << 22)
        receive(stream, frame(b"k" * 10) + frame(b"q" * 500_000)[:100_000])
        assert [bytes(f) for f in await stream.next_frames(reader, 1)] == [b"k" * 10]
        receive(stream, b"q" * 50_000)
        stream.eof_received()
        assert await stream.next_frames(reader, 1) is None

    asyncio.run(main())
