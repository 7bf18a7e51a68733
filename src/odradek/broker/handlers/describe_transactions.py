"""DescribeTransactions: state, timeout, producer and partitions of transactional ids.

As Kafka: DESCRIBE on each transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for it), and only
the partitions of topics the principal may describe are listed."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import NONE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, refused

TRANSACTIONAL_ID_NOT_FOUND = 105


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    txns = ctx.broker.txns.coordinator.txns
    denied = refused(
        ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TRANSACTIONAL_ID, request.transactional_ids
    )
    out = []
    for tid in request.transactional_ids:
        t = txns.get(tid)
        if t is None or tid in denied:
            out.append(
                {
                    "error_code": TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                    if tid in denied
                    else TRANSACTIONAL_ID_NOT_FOUND,
                    "transactional_id": tid,
                    "transaction_state": "",
                    "transaction_timeout": 0,
                    # Kafka answers an unknown id with zeros here (a start time of -1 is not a timestamp).
                    "transaction_start_time": 0,
                    "producer_id": 0,
                    "producer_epoch": 0,
                    "topics": [],
                }
            )
            continue
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(t.partitions):
            topics.setdefault(topic, []).append(partition)
        hidden = refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, topics)
        topics = {name: parts for name, parts in topics.items() if name not in hidden}
        out.append(
            {
                "error_code": NONE,
                "transactional_id": tid,
                "transaction_state": t.state.value,
                "transaction_timeout": t.timeout_ms,
                "transaction_start_time": t.start_ms,
                "producer_id": t.producer_id,
                "producer_epoch": t.producer_epoch,
                "topics": [{"topic": name, "partitions": parts} for name, parts in topics.items()],
            }
        )
    return {"throttle_time": 0, "transaction_states": out}
