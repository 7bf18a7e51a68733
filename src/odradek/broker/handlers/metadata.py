"""Metadata: the one broker, and topics (auto-created where allowed).

With an authorizer, as Kafka: a topic needs DESCRIBE to be seen. "All topics" answers leave out the
ones the principal may not describe; named ones answer TOPIC_AUTHORIZATION_FAILED (known or not, so a
refusal tells nothing about existence). Auto-creation needs CREATE on the cluster or on the topic.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz
from ..clock import now_ms
from ..state import TopicError, topic_name_problem
from ._common import (
    INVALID_TOPIC_EXCEPTION,
    LEADER_EPOCH,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
    cluster_allowed,
    cluster_operations,
    refused,
)

ZERO_UUID = uuid.UUID(int=0)
DESCRIBE = authz.AclOperation.DESCRIBE
CREATE = authz.AclOperation.CREATE
TOPIC = authz.ResourceType.TOPIC


def topic_entry(broker: Any, topic: Any, include_operations: bool = False, ctx: Any = None) -> dict[str, Any]:
    node = broker.node_id
    return {
        "error_code": NONE,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": False,
        "partitions": [
            {
                "error_code": NONE,
                "partition_index": i,
                "leader_id": node,
                "leader_epoch": LEADER_EPOCH,
                "replica_nodes": (node,),
                "isr_nodes": (node,),
                "offline_replicas": (),
            }
            for i in range(len(topic.partitions))
        ],
        "topic_authorized_operations": authz.field_value(include_operations, TOPIC, topic.name, ctx),
    }


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    state = broker.state
    requested = request.topics
    # Kafka answers the bitfield for every topic entry it may describe, errors included, when asked
    # (v8+); cluster operations are in Metadata v8-v10 only (DescribeCluster has them since).
    ops = bool(getattr(request, "include_topic_authorized_operations", False))
    cluster_ops = bool(getattr(request, "include_cluster_authorized_operations", False))
    # v0: an empty list means every topic; v1+: null means every topic.
    if requested is None or (ctx.api_version == 0 and not requested):
        hidden = refused(ctx, DESCRIBE, TOPIC, state.topics)
        topics = [topic_entry(broker, t, ops, ctx) for t in state.topics.values() if t.name not in hidden]
    else:
        allow_create = getattr(request, "allow_auto_topic_creation", True)
        topics = [_named(ctx, item, ops, allow_create) for item in requested]
    return {
        "throttle_time": 0,
        "brokers": [{"node_id": broker.node_id, "host": ctx.host, "port": ctx.port, "rack": None}],
        "cluster_id": broker.cluster_id,
        "controller_id": broker.node_id,
        "topics": topics,
        "cluster_authorized_operations": cluster_operations(ctx, cluster_ops),
    }


def _named(ctx: Any, item: Any, ops: bool, allow_create: bool) -> dict[str, Any]:
    """The entry of one topic asked for by name or (v10+) by id."""
    broker = ctx.broker
    state = broker.state
    checked = broker.authorizer is not None
    name = item.name
    topic_id = getattr(item, "topic_id", None)
    if name is None and topic_id not in (None, ZERO_UUID):
        # v10+: topics may be named by id only (KIP-848 consumers resolve assignments this way).
        by_id = state.topics_by_id.get(topic_id)
        if by_id is None:
            return {**_error_entry(ctx, None, UNKNOWN_TOPIC_ID, ops), "topic_id": topic_id}
        if checked and not authz.allowed(ctx, DESCRIBE, TOPIC, by_id.name):
            # Kafka: a topic id is not secret, so the refusal names the id (and not the name).
            return {**_error_entry(ctx, None, TOPIC_AUTHORIZATION_FAILED, False), "topic_id": topic_id}
        return topic_entry(broker, by_id, ops, ctx)
    if checked and name is not None and not authz.allowed(ctx, DESCRIBE, TOPIC, name):
        return _error_entry(ctx, name, TOPIC_AUTHORIZATION_FAILED, False)
    topic = state.topics.get(name) if name is not None else None
    if topic is None and name is not None and allow_create:
        if (
            checked
            and state.config["auto.create.topics.enable"]
            and not (cluster_allowed(ctx, CREATE) or authz.allowed(ctx, CREATE, TOPIC, name))
        ):
            return _error_entry(ctx, name, TOPIC_AUTHORIZATION_FAILED, False)
        try:
            topic = state.auto_create(name, now_ms())
        except TopicError as e:
            return _error_entry(ctx, name, e.error_code, ops)
    if topic is None:
        code = (
            INVALID_TOPIC_EXCEPTION
            if name is not None and topic_name_problem(name)
            else (UNKNOWN_TOPIC_OR_PARTITION)
        )
        return _error_entry(ctx, name, code, ops)
    return topic_entry(broker, topic, ops, ctx)


def _error_entry(ctx: Any, name: str | None, code: int, include_operations: bool) -> dict[str, Any]:
    """A topic in error; ``include_operations`` False for refused topics (Kafka leaves the field unset)."""
    if name is None and ctx.broker.authorizer is not None:
        operations = authz.OMITTED
    else:
        operations = authz.field_value(include_operations, TOPIC, name, ctx if name is not None else None)
    return {
        "error_code": code,
        "name": name,
        "topic_id": ZERO_UUID,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": operations,
    }
