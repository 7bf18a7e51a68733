"""Pieces every handler uses: Kafka error codes and partition lookup."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("odradek.broker")

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
INVALID_TIMESTAMP = 32
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REQUEST = 42
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87
UNKNOWN_TOPIC_ID = 100

LEADER_EPOCH = 0


class CloseConnection(Exception):
    """The request is one Kafka answers by closing the connection; the message says why."""


def now_ms() -> int:
    return int(time.time() * 1000)


def find_partition(broker: Any, topic: str, partition: int) -> Any | None:
    t = broker.state.topics.get(topic)
    if t is None or not 0 <= partition < len(t.partitions):
        return None
    return t.partitions[partition]


async def after_persist(groups: Any, records: list[bytes], response: dict[str, Any]) -> dict[str, Any]:
    """Answer only once the coordinator's journal records are on disk."""
    await groups.persist(records)
    return response


async def after_txn_persist(txns: Any, response: dict[str, Any]) -> dict[str, Any]:
    """Answer once the transaction coordinator's change is on disk (and its timeout scheduled)."""
    await txns.persist()
    txns.reschedule()
    return response
