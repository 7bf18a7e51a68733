"""DescribeLogDirs: the one data directory, each partition's size, offset lag 0 (no future replicas),
and the file system's total and usable bytes (v4); never cordoned (v5). DESCRIBE on the cluster, as in
Kafka: without it, no directories and (v3+) CLUSTER_AUTHORIZATION_FAILED."""

from __future__ import annotations

import shutil
from typing import Any

from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, NONE, cluster_allowed


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    if not cluster_allowed(ctx, authz.AclOperation.DESCRIBE):
        return {"throttle_time": 0, "error_code": CLUSTER_AUTHORIZATION_FAILED, "results": []}
    if request.topics is None:
        wanted = [(t, range(len(t.partitions))) for t in state.topics.values()]
    else:
        wanted = []
        for r in request.topics:
            topic = state.topics.get(r.topic)
            if topic is not None:  # Kafka leaves unknown topics and partitions out
                wanted.append((topic, [p for p in r.partitions if 0 <= p < len(topic.partitions)]))
    topics_out = []
    for topic, partitions in wanted:
        if not partitions and request.topics is not None:
            continue
        parts = [
            {
                "partition_index": p,
                "partition_size": topic.partitions[p].size_bytes,
                "offset_lag": 0,
                "is_future_key": False,
            }
            for p in partitions
        ]
        topics_out.append({"name": topic.name, "partitions": parts})
    usage = shutil.disk_usage(state.data_dir)  # one statvfs: cheap enough for the event loop
    result = {
        "error_code": NONE,
        "log_dir": str(state.data_dir.resolve()),
        "topics": topics_out,
        "total_bytes": usage.total,
        "usable_bytes": usage.free,
    }
    return {"throttle_time": 0, "error_code": NONE, "results": [result]}
