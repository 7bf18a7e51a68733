"""Produce: validate each partition's batch, append it, answer per ``acks``.

A batch is appended exactly as received unless the topic's ``compression.type`` names a codec other
than the batch's: then it is recompressed first (``protocol.recompress``), in a worker thread, and the
partition's later appends wait for it so that the log keeps the order the batches arrived in.

acks=0 never answers (an error closes the connection, as Kafka does); acks=1 answers once the batch
reached the OS; acks=-1 answers once a group-commit fsync covered it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ...log.partition import LogWriteFailed
from ...log.producer_state import Duplicate, ProducerStateError
from ...protocol import codec
from ...protocol.recompress import Levels, inflate, needs_recompression, recompress, target_codec
from ...protocol.record_decode import RecordDecodeError, records
from ...protocol.records import (
    ATTR_CODEC_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MESSAGE_TOO_LARGE,
    InvalidBatch,
    read_header,
    split_batches,
    validate_produced_batch,
)
from .. import authz
from ..clock import now_ms
from ._common import (
    INVALID_RECORD,
    INVALID_REQUIRED_ACKS,
    INVALID_TIMESTAMP,
    KAFKA_STORAGE_ERROR,
    LEADER_EPOCH,
    NO_REFUSALS,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
    CloseConnection,
    find_partition,
    log,
    refused,
)

WRITE = authz.AclOperation.WRITE
TOPIC = authz.ResourceType.TOPIC
TRANSACTIONAL_ID = authz.ResourceType.TRANSACTIONAL_ID


def handle(ctx: Any, request: Any) -> Any:
    if isinstance(request, codec.OldProduceRequest):
        return _refuse_old(ctx, request)
    broker = ctx.broker
    acks = request.acks
    denied = NO_REFUSALS
    if broker.authorizer is not None:
        if _has_transactional_batch(request) and not (
            request.transactional_id is not None
            and authz.allowed(ctx, WRITE, TRANSACTIONAL_ID, request.transactional_id)
        ):
            # As Kafka: the whole request is refused (acks=0: the connection is closed).
            if acks == 0:
                raise CloseConnection("acks=0 produce refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
            return _all_partitions(request, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None)
        denied = refused(ctx, WRITE, TOPIC, (t.name for t in request.topic_data))
    if acks not in (0, 1, -1):
        return _all_partitions(request, INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1")
    now = now_ms()
    topics_out = []
    queued: list[tuple[list[Any], int, asyncio.Future[dict[str, Any]]]] = []
    for t in request.topic_data:
        parts_out: list[Any] = []
        if denied and t.name in denied:
            # Refused topics are never looked up: an unknown one the principal may not write is 29 too.
            parts_out += [_refused_partition(p.index) for p in t.partition_data]
            topics_out.append({"name": t.name, "partition_responses": parts_out})
            continue
        for p in t.partition_data:
            # Write-behind: with acks=1 and acks=all the flusher's thread writes the batch (and, for
            # acks=all, fsyncs it) while the event loop goes on; acks=0 is written at once.
            result = _append_partition(
                ctx, request.transactional_id, t.name, p.index, p.records, now, defer=acks != 0
            )
            if isinstance(result, asyncio.Future):
                queued.append((parts_out, len(parts_out), result))
            parts_out.append(result)
        topics_out.append({"name": t.name, "partition_responses": parts_out})
    if queued:
        return _after_queued(broker, acks, topics_out, queued)
    return _answer(broker, acks, topics_out)


def _has_transactional_batch(request: Any) -> bool:
    """Kafka's hasTransactionalRecords: some partition's (first) batch is transactional."""
    for t in request.topic_data:
        for p in t.partition_data:
            records = p.records
            if records and len(records) >= HEADER_SIZE:
                header = read_header(records)
                if header.magic == 2 and header.is_transactional:
                    return True
    return False


def _refused_partition(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": TOPIC_AUTHORIZATION_FAILED,
        "base_offset": -1,
        "log_append_time": -1,
        "log_start_offset": -1,
        "record_errors": [],
        "error_message": None,
    }


async def _after_queued(
    broker: Any, acks: int, topics_out: list[Any], queued: list[tuple[list[Any], int, Any]]
) -> dict[str, Any] | None:
    for parts_out, i, task in queued:
        parts_out[i] = await task
    result = _answer(broker, acks, topics_out)
    return await result if asyncio.iscoroutine(result) else result


def _answer(broker: Any, acks: int, topics_out: list[Any]) -> Any:
    appended: list[Any] = []
    answers: list[dict[str, Any]] = []
    failed = False
    for t in topics_out:
        for result in t["partition_responses"]:
            if result["error_code"] != NONE:
                failed = True
            elif "_log" in result:
                appended.append(result.pop("_log"))
                answers.append(result)
    for plog in appended:
        broker.waiters.notify(plog)
    response = {"responses": topics_out, "throttle_time": 0}
    if acks == 0:
        if failed:
            raise CloseConnection("acks=0 produce failed; closing the connection as Kafka does")
        return None
    if appended:
        # acks=1: answered once in the page cache, as before; acks=all: once fsynced too.
        wait = broker.flusher.sync if acks == -1 else broker.flusher.written
        return _after_flush(wait(appended), answers, response)
    return response


async def _after_flush(
    flushed: Awaitable[None], answers: list[dict[str, Any]], response: dict[str, Any]
) -> dict[str, Any]:
    try:
        await flushed
    except OSError as e:  # a failed write or fsync: never acknowledged (Kafka: KAFKA_STORAGE_ERROR)
        for answer in answers:
            answer.update(error_code=KAFKA_STORAGE_ERROR, error_message=str(e), base_offset=-1)
    return response


def _append_partition(
    ctx: Any,
    transactional_id: str | None,
    topic: str,
    index: int,
    records: bytes | None,
    now: int,
    *,
    defer: bool,
) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
    broker = ctx.broker
    plog = find_partition(broker, topic, index)
    out: dict[str, Any] = {
        "index": index,
        "error_code": NONE,
        "base_offset": -1,
        "log_append_time": -1,
        "log_start_offset": -1,
        "record_errors": [],
        "error_message": None,
    }
    if plog is None:
        out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
        log.info("produce to unknown partition %s-%d from %s", topic, index, ctx.peer)
        return out
    out["log_start_offset"] = plog.log_start_offset
    configs = broker.state.topics[topic].effective
    try:
        batches = split_batches(records or b"")
        if len(batches) != 1:
            raise InvalidBatch(INVALID_RECORD, f"expected exactly one record batch, got {len(batches)}")
        batch = batches[0]
        header = validate_produced_batch(
            batch, max_batch_bytes=configs["max.message.bytes"], api_version=ctx.api_version
        )
        log_append_time = configs["message.timestamp.type"] == "LogAppendTime"
        if not log_append_time:
            _check_timestamp(header.max_timestamp, now, configs)
        if "compact" in configs["cleanup.policy"]:
            _check_keys(batch, header)
        _check_transaction(ctx, transactional_id, topic, index, header, plog)
    except InvalidBatch as e:
        return _rejected(ctx, topic, index, out, e)
    if needs_recompression(header, configs["compression.type"]):
        target = target_codec(configs["compression.type"], header.codec)
        levels = Levels.from_configs(configs)
        work = _recompressor().submit(recompress, batch, header, target, levels)
        job = asyncio.wrap_future(work)
        return _queue_append(ctx, transactional_id, topic, index, plog, out, job, now, log_append_time, defer)
    if plog in _tails:  # an earlier batch of this partition is still being recompressed: keep the order
        return _queue_append(
            ctx, transactional_id, topic, index, plog, out, batch, now, log_append_time, defer
        )
    return _append(ctx, topic, index, plog, out, batch, header, now, log_append_time, defer)


# Recompression runs here rather than on the event loop: a batch of up to max.message.bytes (1 MiB by
# default) takes tens of milliseconds to gzip, and cramjam releases the GIL while it works. Two threads:
# the machine's cores are shared with the loop and the fsync thread; the queue is bounded by the
# connections' in-flight request limit (queued.max.requests).
RECOMPRESS_THREADS = 2
_executor: ThreadPoolExecutor | None = None
# partition log -> its latest queued append; present only while one is queued or running.
_tails: dict[Any, asyncio.Future[dict[str, Any]]] = {}


def _recompressor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(RECOMPRESS_THREADS, thread_name_prefix="odradek-recompress")
    return _executor


def _queue_append(
    ctx: Any,
    transactional_id: str | None,
    topic: str,
    index: int,
    plog: Any,
    out: dict[str, Any],
    batch: Any,
    now: int,
    log_append_time: bool,
    defer: bool,
) -> asyncio.Future[dict[str, Any]]:
    """Append after every queued append of the same partition; ``batch`` is bytes or a pending job."""
    prev = _tails.get(plog)
    task = asyncio.ensure_future(
        _append_in_order(
            ctx, transactional_id, topic, index, plog, out, prev, batch, now, log_append_time, defer
        )
    )
    _tails[plog] = task

    def done(_: Any) -> None:
        if _tails.get(plog) is task:
            del _tails[plog]

    task.add_done_callback(done)
    return task


async def _append_in_order(
    ctx: Any,
    transactional_id: str | None,
    topic: str,
    index: int,
    plog: Any,
    out: dict[str, Any],
    prev: asyncio.Future[dict[str, Any]] | None,
    batch: Any,
    now: int,
    log_append_time: bool,
    defer: bool,
) -> dict[str, Any]:
    """The checks that depend on the partition's state run again once this batch's turn has come."""
    if prev is not None:
        await asyncio.wait([prev])
    recompressed = isinstance(batch, asyncio.Future)
    if recompressed:
        try:
            batch = await batch
        except InvalidBatch as e:
            return _rejected(ctx, topic, index, out, e)
        except Exception:  # a codec failing on valid input: this batch fails, the broker goes on
            log.exception("recompressing a batch for %s-%d failed", topic, index)
            out["error_code"] = UNKNOWN_SERVER_ERROR
            return out
    if find_partition(ctx.broker, topic, index) is not plog:  # deleted while this batch waited
        out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
        return out
    header = read_header(batch)
    try:
        max_bytes = ctx.broker.state.topics[topic].effective["max.message.bytes"]
        if recompressed and len(batch) > max_bytes:  # Kafka checks the size again after recompressing
            raise InvalidBatch(
                MESSAGE_TOO_LARGE, f"recompressed batch of {len(batch)} bytes exceeds {max_bytes}"
            )
        _check_transaction(ctx, transactional_id, topic, index, header, plog)
    except InvalidBatch as e:
        return _rejected(ctx, topic, index, out, e)
    return _append(ctx, topic, index, plog, out, batch, header, now, log_append_time, defer)


def _rejected(ctx: Any, topic: str, index: int, out: dict[str, Any], e: InvalidBatch) -> dict[str, Any]:
    out["error_code"] = e.error_code
    out["error_message"] = str(e)
    log.warning("rejected batch for %s-%d from %s: %s (error %d)", topic, index, ctx.peer, e, e.error_code)
    return out


def _append(
    ctx: Any,
    topic: str,
    index: int,
    plog: Any,
    out: dict[str, Any],
    batch: Any,
    header: Any,
    now: int,
    log_append_time: bool,
    defer: bool,
) -> dict[str, Any]:
    try:
        result = plog.append_producer_batch(
            batch, header, leader_epoch=LEADER_EPOCH, now_ms=now, log_append_time=log_append_time, defer=defer
        )
    except ProducerStateError as e:
        out["error_code"] = e.error_code
        out["error_message"] = str(e)
        log.info("refused batch for %s-%d from %s: %s (error %d)", topic, index, ctx.peer, e, e.error_code)
        return out
    except OSError as e:  # the disk refused the write; a failed log says so itself, once
        out["error_code"] = KAFKA_STORAGE_ERROR
        out["error_message"] = str(e)
        if not isinstance(e, LogWriteFailed):
            log.error("writing a batch to %s-%d failed: %s", topic, index, e)
        return out
    if isinstance(result, Duplicate):
        out["base_offset"] = result.first_offset  # a retry: acknowledged where it already is
        out["_log"] = plog  # once that is as durable as acks asks (the first try may still be in flight)
        return out
    ctx.broker.metrics.produced(topic, len(batch), header.record_count)
    out["base_offset"] = result.base_offset
    out["log_append_time"] = result.log_append_time_ms
    out["_log"] = plog
    return out


def _check_keys(batch: memoryview, header: Any) -> None:
    """A compacted topic keeps the latest record per key, so every record needs one (Kafka: 87).

    As in Kafka 4.4: a payload that does not inflate is UNKNOWN_SERVER_ERROR, records that do not
    decode INVALID_RECORD."""
    if header.codec:
        plain = bytes(batch[:HEADER_SIZE]) + inflate(batch, header)
        batch = memoryview(plain)
        attributes = header.attributes & ~ATTR_CODEC_MASK
        header = replace(header, attributes=attributes, batch_length=len(plain) - LOG_OVERHEAD)
    try:
        for record in records(batch, header):
            if record.key is None:
                raise InvalidBatch(INVALID_RECORD, "Compacted topic cannot accept message without key.")
    except RecordDecodeError as e:
        raise InvalidBatch(INVALID_RECORD, str(e)) from None


def _check_transaction(
    ctx: Any, transactional_id: str | None, topic: str, index: int, header: Any, plog: Any
) -> None:
    if header.is_transactional:
        if transactional_id is None:
            raise InvalidBatch(
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional batch without a transactional id"
            )
        if not ctx.broker.txns.coordinator.verify_partition(
            transactional_id, header.producer_id, header.producer_epoch, (topic, index)
        ):
            entry = plog.producers.entries.get(header.producer_id)
            if entry is not None and header.producer_epoch < entry.epoch:
                raise InvalidBatch(INVALID_PRODUCER_EPOCH, "the producer's epoch is fenced on this partition")
            code = TRANSACTION_ABORTABLE if ctx.api_version >= 11 else INVALID_TXN_STATE
            raise InvalidBatch(
                code, f"{topic}-{index} is not part of an ongoing transaction of this producer"
            )
    elif header.producer_id >= 0:
        entry = plog.producers.entries.get(header.producer_id)
        if entry is not None and entry.txn_first_offset is not None:
            raise InvalidBatch(
                INVALID_TXN_STATE, "non-transactional batch from a producer with an open transaction"
            )


INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTION_ABORTABLE = 120
UNKNOWN_SERVER_ERROR = -1


def _check_timestamp(ts: int, now: int, configs: dict[str, Any]) -> None:
    if ts < 0:
        return  # -1: no timestamp given
    if (
        now - ts > configs["message.timestamp.before.max.ms"]
        or ts - now > configs["message.timestamp.after.max.ms"]
    ):
        raise InvalidBatch(INVALID_TIMESTAMP, f"timestamp {ts} is out of the accepted range around {now}")


def _all_partitions(request: Any, code: int, message: str | None) -> dict[str, Any]:
    return {
        "responses": [
            {
                "name": t.name,
                "partition_responses": [
                    {"index": p.index, "error_code": code, "base_offset": -1, "error_message": message}
                    for p in t.partition_data
                ],
            }
            for t in request.topic_data
        ],
        "throttle_time": 0,
    }


def _refuse_old(ctx: Any, request: codec.OldProduceRequest) -> bytes | None:
    """Produce v0-v2 is listed for librdkafka's sake (its compression check) but refused as Kafka 4 does."""
    log.warning("refused Produce v%d from %s: versions below 3 are not supported", ctx.api_version, ctx.peer)
    if request.acks == 0:
        raise CloseConnection(f"Produce v{ctx.api_version} with acks=0 is not supported")
    topics = [
        {"name": name, "partitions": [{"index": i, "error_code": UNSUPPORTED_VERSION} for i in parts]}
        for name, parts in request.topics
    ]
    return codec.encode_old_produce_response(ctx.api_version, ctx.header.correlation_id, topics)
