"""Fetch: serve stored batches as bytes, long-polling until ``min_bytes`` or ``max_wait``.

Batches leave the broker exactly as they were stored; nothing is decoded. Incremental fetch sessions
(KIP-227) are kept by ``broker.fetch_sessions``: the session cache decides which partitions a request
reads (all of its session's, for an incremental fetch) and which of the results the response carries.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

from ...log.partition import OffsetOutOfRange
from .. import authz
from ..fetch_sessions import (
    FINAL_EPOCH,
    FetchContext,
    IncrementalFetch,
    Outcome,
    PartitionRequest,
)
from ._common import (
    KAFKA_STORAGE_ERROR,
    NO_REFUSALS,
    NONE,
    OFFSET_OUT_OF_RANGE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    cluster_allowed,
    find_partition,
    refused,
)

MAX_WAIT_CAP_MS = 30_000  # bound on how long one fetch may hold a connection's response queue
READ_UNCOMMITTED = 0

Read = tuple[str, int, dict[str, Any], int]  # topic, partition, response entry, record bytes


def handle(ctx: Any, request: Any) -> Any:
    fetch = [
        (
            (t.topic, p.partition),
            PartitionRequest(
                p.fetch_offset,
                p.partition_max_bytes,
                getattr(p, "log_start_offset", -1),
                getattr(p, "current_leader_epoch", -1),
                getattr(p, "last_fetched_epoch", -1),
            ),
        )
        for t in request.topics
        for p in t.partitions
    ]
    forget = [
        (f.topic, p) for f in getattr(request, "forgotten_topics_data", None) or () for p in f.partitions
    ]
    # Fetch before v7 has no session fields: (0, FINAL) is sessionless, as Kafka reads it.
    context = ctx.broker.fetch_sessions.new_context(
        getattr(request, "session_id", 0), getattr(request, "session_epoch", FINAL_EPOCH), fetch, forget
    )
    max_wait_ms = min(int(request.max_wait.total_seconds() * 1000), MAX_WAIT_CAP_MS)
    denied = NO_REFUSALS if ctx.broker.authorizer is None else _denied(ctx, request, context)
    got = _read_all(ctx, request, context, denied)
    # As in Kafka: a fetch with no partition to read (a session error among them) is answered at once,
    # and so is one whose read failed (offset out of range); unknown partitions do not cut the wait.
    if got.readable == 0 or got.total >= request.min_bytes or max_wait_ms <= 0 or got.read_error:
        return _respond(context, got.reads)
    return _long_poll(ctx, request, context, max_wait_ms, denied)


def _denied(ctx: Any, request: Any, context: FetchContext) -> frozenset[str] | set[str]:
    """Topics of the partitions this fetch reads (its session's, when incremental) that the principal may
    not read: as Kafka, READ on each topic, and CLUSTER_ACTION on the cluster for a follower's fetch."""
    topics = {topic for (topic, _), _ in context.partitions}
    if getattr(request, "replica_id", -1) >= 0:
        return set() if cluster_allowed(ctx, authz.AclOperation.CLUSTER_ACTION) else topics
    return refused(ctx, authz.AclOperation.READ, authz.ResourceType.TOPIC, topics)


async def _long_poll(
    ctx: Any, request: Any, context: FetchContext, max_wait_ms: int, denied: frozenset[str] | set[str]
) -> dict[str, Any]:
    broker = ctx.broker
    deadline = time.monotonic() + max_wait_ms / 1000
    logs = [
        plog
        for (topic, partition), _ in context.partitions
        if topic not in denied and (plog := find_partition(broker, topic, partition)) is not None
    ]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if logs:
            await broker.waiters.wait(logs, remaining)
        else:
            await asyncio.sleep(remaining)
        got = _read_all(ctx, request, context, denied)
        if got.total >= request.min_bytes or got.read_error or broker.stopping:
            return _respond(context, got.reads)
    return _respond(context, _read_all(ctx, request, context, denied).reads)


def _respond(context: FetchContext, reads: list[Read]) -> dict[str, Any]:
    """The response: the session decides its error, its id and which partitions it carries."""
    reply = context.reply(
        [
            Outcome(
                (topic, out["partition_index"]),
                out["error_code"],
                out["high_watermark"],
                out["log_start_offset"],
                size,
            )
            for topic, _, out, size in reads
        ]
    )
    # As Kafka does, consecutive partitions of one topic share a topic entry; a session's order may
    # interleave topics, and then a topic appears more than once.
    topics_out: list[dict[str, Any]] = []
    for i in reply.keep:
        topic, _, out, _ = reads[i]
        if not topics_out or topics_out[-1]["topic"] != topic:
            topics_out.append({"topic": topic, "partitions": []})
        topics_out[-1]["partitions"].append(out)
    return {
        "throttle_time": 0,
        "error_code": reply.error_code,
        "session_id": reply.session_id,
        "responses": topics_out,
    }


class ReadAll(NamedTuple):
    reads: list[Read]
    total: int  # record bytes
    readable: int  # partitions that exist (read, or skipped as unchanged)
    read_error: bool  # a read failed (offset out of range)


def _read_all(ctx: Any, request: Any, context: FetchContext, denied: frozenset[str] | set[str]) -> ReadAll:
    broker = ctx.broker
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)
    max_bytes = min(max_bytes, broker.config["fetch.max.bytes"])
    read_committed = getattr(request, "isolation_level", READ_UNCOMMITTED) != READ_UNCOMMITTED
    # An incremental fetch reads every partition of its session, mostly partitions with nothing new:
    # those the answer would leave out are skipped before any work.
    unchanged = context.unchanged if isinstance(context, IncrementalFetch) else None
    total = 0
    readable = 0
    read_error = False
    reads: list[Read] = []
    for key, p in context.partitions:
        topic, partition = key
        if denied and topic in denied:
            # Refused before anything is looked up; an error is in every answer, a session's too.
            reads.append((topic, partition, _refused(partition), 0))
            continue
        plog = find_partition(broker, topic, partition)
        readable += plog is not None
        if (
            unchanged is not None
            and plog is not None
            and p.fetch_offset == plog.log_end_offset
            and unchanged(key, plog.log_end_offset, plog.log_start_offset)
        ):
            continue
        out: dict[str, Any] = {
            "partition_index": partition,
            "error_code": NONE,
            "high_watermark": -1,
            "last_stable_offset": -1,
            "log_start_offset": -1,
            "aborted_transactions": [] if read_committed else None,
            "preferred_read_replica": -1,
            "records": b"",
        }
        size = 0
        reads.append((topic, partition, out, 0))
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
            read_error = True
            continue
        except OSError:  # a log whose disk failed (logged where it failed)
            out["error_code"] = KAFKA_STORAGE_ERROR
            read_error = True
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
            size = sum(len(c) for c in chunks)
            total += size
            out["records"] = chunks
            reads[-1] = (topic, partition, out, size)
    return ReadAll(reads, total, readable, read_error)


def _refused(partition: int) -> dict[str, Any]:
    """As Kafka 4.4 answers a partition the principal may not read (aborted transactions empty, not null)."""
    return {
        "partition_index": partition,
        "error_code": TOPIC_AUTHORIZATION_FAILED,
        "high_watermark": -1,
        "last_stable_offset": -1,
        "log_start_offset": -1,
        "aborted_transactions": [],
        "preferred_read_replica": -1,
        "records": b"",
    }
