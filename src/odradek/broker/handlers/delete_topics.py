"""DeleteTopics: by name (v1-v6) or by topic id (v6)."""

from __future__ import annotations

import uuid
from typing import Any

from ._common import INVALID_REQUEST, NONE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION

ZERO_UUID = uuid.UUID(int=0)


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    results = []
    for name, topic_id in wanted:
        out: dict[str, Any] = {
            "name": name,
            "topic_id": topic_id or ZERO_UUID,
            "error_code": NONE,
            "error_message": None,
        }
        results.append(out)
        if name is not None and topic_id not in (None, ZERO_UUID):
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = "Name and topic id cannot both be set"
            continue
        if name is None:
            topic = state.topics_by_id.get(topic_id)
            if topic is None:
                out["error_code"] = UNKNOWN_TOPIC_ID
                out["error_message"] = "This server does not host this topic ID."
                continue
            out["name"] = topic.name
        else:
            topic = state.topics.get(name)
            if topic is None:
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                out["error_message"] = "This server does not host this topic-partition."
                continue
            out["topic_id"] = topic.topic_id
        state.delete_topic(topic)
        ctx.broker.groups.topic_deleted(topic.name)
    return {"throttle_time": 0, "responses": results}
