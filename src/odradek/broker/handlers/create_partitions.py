"""CreatePartitions: grow a topic's partition count (never shrink); ALTER on the topic, as in Kafka."""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ..state import MAX_PARTITIONS_PER_TOPIC
from ._common import (
    INVALID_PARTITIONS,
    INVALID_REQUEST,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    refused,
)


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    denied = refused(
        ctx, authz.AclOperation.ALTER, authz.ResourceType.TOPIC, (t.name for t in request.topics)
    )
    results = []
    for t in request.topics:
        out: dict[str, Any] = {"name": t.name, "error_code": NONE, "error_message": None}
        results.append(out)
        if t.name in denied:
            out["error_code"] = TOPIC_AUTHORIZATION_FAILED
            continue
        topic = state.topics.get(t.name)
        if topic is None:
            out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
            out["error_message"] = f"The topic '{t.name}' does not exist."
            continue
        current = len(topic.partitions)
        if t.count < current:
            out["error_code"] = INVALID_PARTITIONS
            out["error_message"] = (
                f"The topic {t.name} currently has {current} partition(s); {t.count} "
                "would not be an increase."
            )
            continue
        if t.count == current:
            out["error_code"] = INVALID_PARTITIONS
            out["error_message"] = f"Topic already has {current} partition(s)."
            continue
        if t.count > MAX_PARTITIONS_PER_TOPIC:
            out["error_code"] = INVALID_PARTITIONS
            out["error_message"] = f"Number of partitions exceeds {MAX_PARTITIONS_PER_TOPIC}."
            continue
        if t.assignments is not None and len(t.assignments) != t.count - current:
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = "Assignments must be given for every new partition."
            continue
        if not request.validate_only:
            state.add_partitions(topic, t.count, now_ms())
    return {"throttle_time": 0, "results": results}
