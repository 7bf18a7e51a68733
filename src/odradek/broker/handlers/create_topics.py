"""CreateTopics: one node, so replication factor 1 (or -1 for the default) only."""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ..state import TopicError
from ._common import INVALID_REQUEST, NONE, log
from .describe_configs import topic_config_entries

ZERO_UUID_STR = "00000000-0000-0000-0000-000000000000"


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    results = []
    seen: dict[str, int] = {}
    for t in request.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
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
        out.update(
            num_partitions=n,
            replication_factor=1,
            topic_id=topic_id,
            configs=topic_config_entries(state, configs, include_docs=False),
        )
    return {"throttle_time": 0, "topics": results}
