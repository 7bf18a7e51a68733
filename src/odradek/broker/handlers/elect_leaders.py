"""ElectLeaders: on one node the only replica always leads, so every named partition answers
ELECTION_NOT_NEEDED, as Kafka answers when the preferred (or any eligible) leader already leads.
Asked for every partition (null topic_partitions), Kafka leaves those out: each topic, no partitions.
ALTER on the cluster is needed, as in Kafka: without it the whole request and each partition named
answer CLUSTER_AUTHORIZATION_FAILED."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import (
    AUTHORIZATION_MESSAGES,
    CLUSTER_AUTHORIZATION_FAILED,
    NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    cluster_allowed,
)

ELECTION_NOT_NEEDED = 84
INVALID_REQUEST = 42
PREFERRED, UNCLEAN = 0, 1


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    if not cluster_allowed(ctx, authz.AclOperation.ALTER):
        code = CLUSTER_AUTHORIZATION_FAILED
        message = AUTHORIZATION_MESSAGES[code]
        refused = [
            {
                "topic": t.topic,
                "partition_result": [
                    {"partition_id": p, "error_code": code, "error_message": message} for p in t.partitions
                ],
            }
            for t in request.topic_partitions or ()
        ]
        return {"throttle_time": 0, "error_code": code, "replica_election_results": refused}
    results = []
    if request.topic_partitions is None:
        results = [{"topic": name, "partition_result": []} for name in state.topics]
        return {"throttle_time": 0, "error_code": NONE, "replica_election_results": results}
    election_type = getattr(request, "election_type", 0)
    for t in request.topic_partitions:
        topic = state.topics.get(t.topic)
        parts = []
        for p in t.partitions:
            if election_type not in (PREFERRED, UNCLEAN):  # Kafka refuses it as a whole and per partition
                code, message = INVALID_REQUEST, f"Unknown election type {election_type}"
            elif topic is None:
                code, message = UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {t.topic}"
            elif not 0 <= p < len(topic.partitions):
                code, message = UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {t.topic}-{p}"
            else:
                code, message = ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."
            parts.append({"partition_id": p, "error_code": code, "error_message": message})
        results.append({"topic": t.topic, "partition_result": parts})
    top = NONE if election_type in (PREFERRED, UNCLEAN) else INVALID_REQUEST
    return {"throttle_time": 0, "error_code": top, "replica_election_results": results}
