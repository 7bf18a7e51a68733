"""DeleteRecords: move a partition's log start offset (KIP-107).

Segments wholly below the new start are deleted; ListOffsets earliest and Fetch honour it at once, and the
start is durable before the answer. -1 means the high watermark (the log end on one node); beyond it, or
any other negative offset, is OFFSET_OUT_OF_RANGE; an offset below the current start changes nothing.
Compacted topics are no exception (Kafka 4 deletes their records too).
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import (
    NONE,
    OFFSET_OUT_OF_RANGE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    log,
    refused,
)

HIGH_WATERMARK = -1


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    # Kafka keys the request by partition: one answer per partition named, the last offset given wins.
    wanted: dict[str, dict[int, int]] = {}
    for t in request.topics:
        for p in t.partitions:
            wanted.setdefault(t.name, {})[p.partition_index] = p.offset
    denied = refused(ctx, authz.AclOperation.DELETE, authz.ResourceType.TOPIC, wanted)  # as Kafka
    topics_out = []
    for name, partitions in wanted.items():
        topic = state.topics.get(name)
        parts_out = []
        for index, requested in partitions.items():
            out = {"partition_index": index, "low_watermark": -1, "error_code": NONE}
            parts_out.append(out)
            if name in denied:
                out["error_code"] = TOPIC_AUTHORIZATION_FAILED
                continue
            if topic is None or not 0 <= index < len(topic.partitions):
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            plog = topic.partitions[index]
            high_watermark = plog.log_end_offset
            offset = high_watermark if requested == HIGH_WATERMARK else requested
            if offset < 0 or offset > high_watermark:
                out["error_code"] = OFFSET_OUT_OF_RANGE
                continue
            out["low_watermark"] = await state.set_log_start(topic, index, offset)
            log.info("delete records of %s-%d below %d", name, index, offset)
        topics_out.append({"name": name, "partitions": parts_out})
    return {"throttle_time": 0, "topics": topics_out}
