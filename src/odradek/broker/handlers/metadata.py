"""Metadata: the one broker, and topics (auto-created where allowed)."""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz
from ..clock import now_ms
from ..state import TopicError, topic_name_problem
from ._common import INVALID_TOPIC_EXCEPTION, LEADER_EPOCH, NONE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION

ZERO_UUID = uuid.UUID(int=0)


def topic_entry(broker: Any, topic: Any, include_operations: bool = False) -> dict[str, Any]:
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
        "topic_authorized_operations": authz.field_value(
            include_operations, authz.ResourceType.TOPIC, topic.name
        ),
    }


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    state = broker.state
    requested = request.topics
    # Kafka answers the bitfield for every topic entry, errors included, when asked (v8+); cluster
    # operations are in Metadata v8-v10 only (DescribeCluster has them since).
    ops = bool(getattr(request, "include_topic_authorized_operations", False))
    cluster_ops = bool(getattr(request, "include_cluster_authorized_operations", False))
    # v0: an empty list means every topic; v1+: null means every topic.
    if requested is None or (ctx.api_version == 0 and not requested):
        topics = [topic_entry(broker, t, ops) for t in state.topics.values()]
    else:
        allow_create = getattr(request, "allow_auto_topic_creation", True)
        topics = []
        for item in requested:
            name = item.name
            topic_id = getattr(item, "topic_id", None)
            if name is None and topic_id not in (None, ZERO_UUID):
                # v10+: topics may be named by id only (KIP-848 consumers resolve assignments this way).
                by_id = state.topics_by_id.get(topic_id)
                if by_id is None:
                    topics.append({**_error_entry(None, UNKNOWN_TOPIC_ID, ops), "topic_id": topic_id})
                else:
                    topics.append(topic_entry(broker, by_id, ops))
                continue
            topic = state.topics.get(name) if name is not None else None
            if topic is None and name is not None and allow_create:
                try:
                    topic = state.auto_create(name, now_ms())
                except TopicError as e:
                    topics.append(_error_entry(name, e.error_code, ops))
                    continue
            if topic is None:
                code = (
                    INVALID_TOPIC_EXCEPTION
                    if name is not None and topic_name_problem(name)
                    else (UNKNOWN_TOPIC_OR_PARTITION)
                )
                topics.append(_error_entry(name, code, ops))
            else:
                topics.append(topic_entry(broker, topic, ops))
    return {
        "throttle_time": 0,
        "brokers": [{"node_id": broker.node_id, "host": ctx.host, "port": ctx.port, "rack": None}],
        "cluster_id": broker.cluster_id,
        "controller_id": broker.node_id,
        "topics": topics,
        "cluster_authorized_operations": authz.field_value(cluster_ops, authz.ResourceType.CLUSTER),
    }


def _error_entry(name: str | None, code: int, include_operations: bool) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": ZERO_UUID,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": authz.field_value(include_operations, authz.ResourceType.TOPIC, name),
    }
