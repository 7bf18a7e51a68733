"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset at a timestamp."""

from __future__ import annotations

from typing import Any

from ...protocol.record_decode import RecordDecodeError, records
from ...protocol.records import read_header
from ._common import LEADER_EPOCH, NONE, UNKNOWN_TOPIC_OR_PARTITION, UNSUPPORTED_VERSION, find_partition

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    topics_out = []
    for t in request.topics:
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
            ts = p.timestamp
            read_committed = getattr(request, "isolation_level", 0) == 1
            if ts == LATEST:
                out["offset"] = plog.last_stable_offset if read_committed else plog.log_end_offset
            elif ts == EARLIEST:
                out["offset"] = plog.log_start_offset
            elif ts == MAX_TIMESTAMP:
                if ctx.api_version < 7:
                    out["error_code"] = UNSUPPORTED_VERSION
                    continue
                offset, found_ts = plog.max_timestamp()
                out["offset"], out["timestamp"] = offset, found_ts
            elif ts < 0:
                out["error_code"] = UNSUPPORTED_VERSION
            else:
                found = _first_record_at_or_after(plog, ts)
                if found is not None and not (read_committed and found[0] >= plog.last_stable_offset):
                    out["offset"], out["timestamp"] = found
        topics_out.append({"name": t.name, "partitions": parts_out})
    return {"throttle_time": 0, "topics": topics_out}


def _first_record_at_or_after(plog: Any, target_ms: int) -> tuple[int, int] | None:
    """Kafka answers with the first record, not the first batch, whose timestamp reaches the target."""
    found = plog.offset_for_timestamp(target_ms)
    if found is None:
        return None
    offset = found[0]
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
