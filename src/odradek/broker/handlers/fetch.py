"""Fetch: serve stored batches as bytes, long-polling until ``min_bytes`` or ``max_wait``.

Batches leave the broker exactly as they were stored; nothing is decoded. Sessions (KIP-227) are not
kept: every response carries session id 0, which clients treat as "full fetch each time", as they do
when Kafka's session cache is full.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...log.partition import OffsetOutOfRange
from ._common import NONE, OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION, find_partition

MAX_WAIT_CAP_MS = 30_000  # bound on how long one fetch may hold a connection's response queue
READ_UNCOMMITTED = 0


def handle(ctx: Any, request: Any) -> Any:
    max_wait_ms = min(int(request.max_wait.total_seconds() * 1000), MAX_WAIT_CAP_MS)
    response, total = _read_all(ctx, request)
    if total >= request.min_bytes or max_wait_ms <= 0 or _has_error(response):
        return response
    return _long_poll(ctx, request, max_wait_ms)


async def _long_poll(ctx: Any, request: Any, max_wait_ms: int) -> dict[str, Any]:
    broker = ctx.broker
    deadline = time.monotonic() + max_wait_ms / 1000
    logs = [
        plog
        for t in request.topics
        for p in t.partitions
        if (plog := find_partition(broker, t.topic, p.partition)) is not None
    ]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if logs:
            await broker.waiters.wait(logs, remaining)
        else:
            await asyncio.sleep(remaining)
        response, total = _read_all(ctx, request)
        if total >= request.min_bytes or _has_error(response) or broker.stopping:
            return response
    return _read_all(ctx, request)[0]


def _has_error(response: dict[str, Any]) -> bool:
    return any(p["error_code"] != NONE for t in response["responses"] for p in t["partitions"])


def _read_all(ctx: Any, request: Any) -> tuple[dict[str, Any], int]:
    broker = ctx.broker
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)
    max_bytes = min(max_bytes, broker.config["fetch.max.bytes"])
    read_committed = getattr(request, "isolation_level", READ_UNCOMMITTED) != READ_UNCOMMITTED
    total = 0
    topics_out = []
    for t in request.topics:
        parts_out = []
        for p in t.partitions:
            plog = find_partition(broker, t.topic, p.partition)
            out: dict[str, Any] = {
                "partition_index": p.partition,
                "error_code": NONE,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": [] if read_committed else None,
                "preferred_read_replica": -1,
                "records": b"",
            }
            parts_out.append(out)
            # As Kafka does, a partition in error reports no offsets (-1) and empty records.
            if plog is None:
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            limit = min(p.partition_max_bytes, max_bytes - total)
            lso = plog.last_stable_offset
            try:
                chunks = plog.read(
                    p.fetch_offset,
                    max(limit, 0),
                    min_one_batch=(total == 0),
                    max_offset=lso if read_committed else None,
                )
            except OffsetOutOfRange:
                out["error_code"] = OFFSET_OUT_OF_RANGE
                continue
            out["high_watermark"] = plog.log_end_offset
            out["last_stable_offset"] = lso
            out["log_start_offset"] = plog.log_start_offset
            if read_committed and chunks:
                out["aborted_transactions"] = [
                    {"producer_id": a.producer_id, "first_offset": a.first_offset}
                    for a in plog.aborted_between(p.fetch_offset, lso)
                ]
            if chunks:
                # Stored batches as read; the response encoder passes them through (protocol.fast).
                total += sum(len(c) for c in chunks)
                out["records"] = chunks
        topics_out.append({"topic": t.topic, "partitions": parts_out})
    return {"throttle_time": 0, "error_code": NONE, "session_id": 0, "responses": topics_out}, total
