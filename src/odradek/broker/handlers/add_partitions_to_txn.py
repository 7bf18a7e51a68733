"""AddPartitionsToTxn (v0-v3, from clients): partitions join the producer's open transaction."""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ._common import NONE, UNKNOWN_TOPIC_OR_PARTITION, after_txn_persist, find_partition

OPERATION_NOT_ATTEMPTED = 55


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    txns = broker.txns
    topics = [(t.name, list(t.partitions)) for t in request.v3_and_below_topics]
    unknown = {(name, p) for name, parts in topics for p in parts if find_partition(broker, name, p) is None}
    if unknown:
        # Kafka refuses the whole request: the unknown ones say why, the rest were not attempted.
        codes = {
            (name, p): UNKNOWN_TOPIC_OR_PARTITION if (name, p) in unknown else OPERATION_NOT_ATTEMPTED
            for name, parts in topics
            for p in parts
        }
        return _response(topics, codes)
    error = txns.coordinator.add_partitions(
        now_ms(),
        request.v3_and_below_transactional_id,
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
