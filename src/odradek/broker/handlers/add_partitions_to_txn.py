"""AddPartitionsToTxn (v0-v3, from clients): partitions join the producer's open transaction.

As Kafka: WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition)
and on each topic (else TOPIC_AUTHORIZATION_FAILED, the others then OPERATION_NOT_ATTEMPTED)."""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import (
    NONE,
    OPERATION_NOT_ATTEMPTED,
    TOPIC_AUTHORIZATION_FAILED,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    after_txn_persist,
    find_partition,
    refused,
)


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    txns = broker.txns
    topics = [(t.name, list(t.partitions)) for t in request.v3_and_below_topics]
    tid = request.v3_and_below_transactional_id
    if not authz.allowed(ctx, authz.AclOperation.WRITE, authz.ResourceType.TRANSACTIONAL_ID, tid):
        code = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return _response(topics, {(name, p): code for name, parts in topics for p in parts})
    denied = refused(ctx, authz.AclOperation.WRITE, authz.ResourceType.TOPIC, (name for name, _ in topics))
    failed = {
        (name, p): TOPIC_AUTHORIZATION_FAILED if name in denied else UNKNOWN_TOPIC_OR_PARTITION
        for name, parts in topics
        for p in parts
        if name in denied or find_partition(broker, name, p) is None
    }
    if failed:
        # Kafka refuses the whole request: the failed ones say why, the rest were not attempted.
        codes = {
            (name, p): failed.get((name, p), OPERATION_NOT_ATTEMPTED) for name, parts in topics for p in parts
        }
        return _response(topics, codes)
    error = txns.coordinator.add_partitions(
        now_ms(),
        tid,
        request.v3_and_below_producer_id,
        request.v3_and_below_producer_epoch,
        [(name, p) for name, parts in topics for p in parts],
        ctx.api_version,
    )
    response = _response(topics, {(name, p): error for name, parts in topics for p in parts})
    if error != NONE:
        return response
    return after_txn_persist(txns, response)


def _response(topics: list[tuple[str, list[int]]], codes: dict[tuple[str, int], int]) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "results_by_topic_v3_and_below": [
            {
                "name": name,
                "results_by_partition": [
                    {"partition_index": p, "partition_error_code": codes[(name, p)]} for p in parts
                ],
            }
            for name, parts in topics
        ],
    }
