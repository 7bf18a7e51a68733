"""CreateTopics: one node, so replication factor 1 (or -1 for the default) only.

With an authorizer, as Kafka's controller: CREATE on the cluster, or else on each topic (refused ones
answer TOPIC_AUTHORIZATION_FAILED and are not validated); a created topic's configs, partition count and
replication factor are answered only with DESCRIBE_CONFIGS on it (else topic_config_error_code is 29).
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ..state import TopicError
from ._common import (
    INVALID_REQUEST,
    NO_REFUSALS,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    cluster_allowed,
    log,
    refused,
)
from .describe_configs import topic_config_entries

ZERO_UUID_STR = "00000000-0000-0000-0000-000000000000"


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    results = []
    seen: dict[str, int] = {}
    for t in request.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
    denied, hidden = NO_REFUSALS, NO_REFUSALS
    if ctx.broker.authorizer is not None:
        if not cluster_allowed(ctx, authz.AclOperation.CREATE):
            denied = refused(ctx, authz.AclOperation.CREATE, authz.ResourceType.TOPIC, seen)
        hidden = refused(ctx, authz.AclOperation.DESCRIBE_CONFIGS, authz.ResourceType.TOPIC, seen)
    for t in request.topics:
        out: dict[str, Any] = {
            "name": t.name,
            "error_code": NONE,
            "error_message": None,
            "num_partitions": -1,
            "replication_factor": -1,
            "configs": None,
        }
        results.append(out)
        if seen[t.name] > 1:
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = (
                f"Create topics request from client `{ctx.header.client_id}` contains "
                f"multiple entries for the following topics: {t.name}"
            )
            continue
        if t.name in denied:
            out.update(
                error_code=TOPIC_AUTHORIZATION_FAILED, error_message="Authorization failed.", configs=[]
            )
            continue
        try:
            if t.assignments:
                num_partitions = len(t.assignments)
                if t.num_partitions != -1 or t.replication_factor != -1:
                    raise TopicError(
                        INVALID_REQUEST,
                        "Both numPartitions or replicationFactor and "
                        "replicasAssignments were set. Both cannot be used at the same time.",
                    )
                for a in t.assignments:
                    if list(a.broker_ids) != [ctx.broker.node_id]:
                        raise TopicError(
                            39,
                            f"Replica assignment {list(a.broker_ids)} names brokers other "
                            f"than {ctx.broker.node_id}",
                        )  # INVALID_REPLICA_ASSIGNMENT
                n, configs = state.validate_new_topic(
                    t.name, num_partitions, -1, {c.name: c.value for c in t.configs}
                )
            else:
                n, configs = state.validate_new_topic(
                    t.name, t.num_partitions, t.replication_factor, {c.name: c.value for c in t.configs}
                )
        except TopicError as e:
            out["error_code"] = e.error_code
            out["error_message"] = str(e)
            log.info("create topic %s refused: %s", t.name, e)
            continue
        if request.validate_only:
            topic_id = None
        else:
            topic = state.create_topic(t.name, n, configs, now_ms())
            topic_id = topic.topic_id
        if t.name in hidden:
            out.update(topic_id=topic_id, topic_config_error_code=TOPIC_AUTHORIZATION_FAILED, configs=[])
            continue
        out.update(
            num_partitions=n,
            replication_factor=1,
            topic_id=topic_id,
            configs=topic_config_entries(state, configs, include_docs=False),
        )
    return {"throttle_time": 0, "topics": results}
