"""DeleteTopics: by name (v1-v6) or by topic id (v6).

With an authorizer, as Kafka's controller: DELETE on the cluster allows every topic; otherwise a name
the principal may not DESCRIBE answers TOPIC_AUTHORIZATION_FAILED before its existence is looked at, and
one it may describe but not DELETE answers 29 too. By id, an unknown id is UNKNOWN_TOPIC_ID and a known
one without DELETE is 29, naming the topic only to a principal that may describe it.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz
from ._common import (
    INVALID_REQUEST,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
    cluster_allowed,
)

ZERO_UUID = uuid.UUID(int=0)


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    check = ctx.broker.authorizer is not None and not cluster_allowed(ctx, authz.AclOperation.DELETE)

    def may(operation: authz.AclOperation, topic_name: str) -> bool:
        return not check or authz.allowed(ctx, operation, authz.ResourceType.TOPIC, topic_name)

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
            if not may(authz.AclOperation.DELETE, topic.name):
                # The name is told only to a principal that may describe the topic.
                if may(authz.AclOperation.DESCRIBE, topic.name):
                    out["name"] = topic.name
                out["error_code"] = TOPIC_AUTHORIZATION_FAILED
                out["error_message"] = "Topic authorization failed."
                continue
            out["name"] = topic.name
        else:
            if not may(authz.AclOperation.DESCRIBE, name):
                out["error_code"] = TOPIC_AUTHORIZATION_FAILED
                out["error_message"] = "Topic authorization failed."
                continue
            topic = state.topics.get(name)
            if topic is None:
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                out["error_message"] = "This server does not host this topic-partition."
                continue
            if not may(authz.AclOperation.DELETE, name):
                out["error_code"] = TOPIC_AUTHORIZATION_FAILED
                out["error_message"] = "Topic authorization failed."
                continue
            out["topic_id"] = topic.topic_id
        state.delete_topic(topic)
        ctx.broker.groups.topic_deleted(topic.name)
    return {"throttle_time": 0, "responses": results}
