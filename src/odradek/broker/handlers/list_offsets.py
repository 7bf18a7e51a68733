"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset at a timestamp."""

from __future__ import annotations

from typing import Any

from ...protocol.record_decode import RecordDecodeError, records
from ...protocol.records import read_header
from .. import authz
from ._common import (
    KAFKA_STORAGE_ERROR,
    LEADER_EPOCH,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
    find_partition,
    refused,
)

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    denied = refused(
        ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, (t.name for t in request.topics)
    )
    topics_out = []
    for t in request.topics:
        if denied and t.name in denied:
            topics_out.append(
                {"name": t.name, "partitions": [_refused(p.partition_index) for p in t.partitions]}
            )
            continue
        parts_out = []
        for p in t.partitions:
            out = {
                "partition_index": p.partition_index,
                "error_code": NONE,
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": LEADER_EPOCH,
                "old_style_offsets": [],
            }
            parts_out.append(out)
            plog = find_partition(ctx.broker, t.name, p.partition_index)
            if plog is None:
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                out["leader_epoch"] = -1
                continue
            if plog.failed:  # offline after a failed write or fsync, as Kafka answers for one
                out["error_code"] = KAFKA_STORAGE_ERROR
                out["leader_epoch"] = -1
                continue
            try:
                _answer(ctx, plog, p.timestamp, getattr(request, "isolation_level", 0) == 1, out)
            except OSError:  # the log failed while it was read (logged where it failed)
                out.update(error_code=KAFKA_STORAGE_ERROR, offset=-1, timestamp=-1, leader_epoch=-1)
        topics_out.append({"name": t.name, "partitions": parts_out})
    return {"throttle_time": 0, "topics": topics_out}


def _answer(ctx: Any, plog: Any, ts: int, read_committed: bool, out: dict[str, Any]) -> None:
    """Fill ``out`` with the offset (and timestamp) a partition answers for ``ts``."""
    if ts == LATEST:
        out["offset"] = plog.last_stable_offset if read_committed else plog.log_end_offset
    elif ts == EARLIEST:
        out["offset"] = plog.log_start_offset
    elif ts == MAX_TIMESTAMP:
        if ctx.api_version < 7:
            out["error_code"] = UNSUPPORTED_VERSION
            return
        found = _max_timestamp_record(plog)
        if found is None or found[0] >= (plog.last_stable_offset if read_committed else plog.log_end_offset):
            out["leader_epoch"] = -1
        else:
            out["offset"], out["timestamp"] = found
    elif ts < 0:
        out["error_code"] = UNSUPPORTED_VERSION
    else:
        found = _first_record_at_or_after(plog, ts)
        if found is not None and not (read_committed and found[0] >= plog.last_stable_offset):
            out["offset"], out["timestamp"] = found


def _refused(index: int) -> dict[str, Any]:
    """As Kafka: DESCRIBE on the topic is needed; without it no offsets, epoch -1."""
    return {
        "partition_index": index,
        "error_code": TOPIC_AUTHORIZATION_FAILED,
        "timestamp": -1,
        "offset": -1,
        "leader_epoch": -1,
        "old_style_offsets": [],
    }


def _max_timestamp_record(plog: Any) -> tuple[int, int] | None:
    """(offset, timestamp) of the first record holding the log's highest timestamp, as Kafka answers.

    The log knows the batch (the earliest one whose max timestamp is the highest); only that batch is
    decoded to find the record. A marker can be that batch: its timestamp is the coordinator's clock.
    """
    batch_last_offset, max_ts = plog.max_timestamp()
    if batch_last_offset < 0:
        return None
    if batch_last_offset < plog.log_start_offset:
        # Below a start DeleteRecords set (its segment still on disk): Kafka names that record as well;
        # reads there are refused, so the batch's last offset is the answer.
        return batch_last_offset, max_ts
    chunks = plog.read(batch_last_offset, 1, min_one_batch=True)
    if chunks:
        try:
            for record in records(chunks[0]):
                if record.timestamp == max_ts:
                    return record.offset, max_ts
        except RecordDecodeError:
            pass
    return batch_last_offset, max_ts  # undecodable (or a record gone): the batch's last offset


def _first_record_at_or_after(plog: Any, target_ms: int) -> tuple[int, int] | None:
    """Kafka answers with the first record, not the first batch, whose timestamp reaches the target."""
    found = plog.offset_for_timestamp(target_ms)
    if found is None:
        return None
    offset = max(found[0], plog.log_start_offset)  # DeleteRecords may have moved the start inside a batch
    while offset < plog.log_end_offset:
        chunks = plog.read(offset, 1, min_one_batch=True)
        if not chunks:
            break
        batch = chunks[0]
        try:
            for record in records(batch):
                if record.offset >= offset and record.timestamp >= target_ms:
                    return record.offset, record.timestamp
        except RecordDecodeError:
            return found
        offset = read_header(batch).last_offset + 1
    return found
