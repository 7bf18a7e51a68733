"""Helpers for the exactly-once tests: topics, reading a topic back, and a raw wire toolbox for the
idempotent / transactional protocol (InitProducerId, Produce with a hand-made batch, AddPartitionsToTxn,
EndTxn, AddOffsetsToTxn, TxnOffsetCommit, OffsetFetch require_stable, ListOffsets, DescribeTransactions,
ListTransactions).

Everything here speaks only to loopback brokers and is bounded in time.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kio.schema.add_offsets_to_txn.v3.request import AddOffsetsToTxnRequest
from kio.schema.add_partitions_to_txn.v3.request import AddPartitionsToTxnRequest
from kio.schema.describe_transactions.v0.request import DescribeTransactionsRequest
from kio.schema.end_txn.v3.request import EndTxnRequest
from kio.schema.fetch.v12.request import FetchRequest
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_offsets.v7.request import ListOffsetsRequest
from kio.schema.list_transactions.v0.request import ListTransactionsRequest
from kio.schema.offset_fetch.v7.request import OffsetFetchRequest
from kio.schema.produce.v9.request import ProduceRequest
from kio.schema.txn_offset_commit.v3.request import TxnOffsetCommitRequest

from support.kit import admin, create_topic, read_to_end, wait_until  # noqa: F401  (shared; re-exported)
from wire import WireClient, record_batch

TIMEOUT_S = 30.0

# Kafka error codes used by the tests
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
CONCURRENT_TRANSACTIONS = 51
UNSTABLE_OFFSET_COMMIT = 88
PRODUCER_FENCED = 90
_RETRIABLE_COORD = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR}

READ_UNCOMMITTED = 0
READ_COMMITTED = 1


# --------------------------------------------------------------------------------------------------
# Client-level helpers (confluent-kafka)


def producer(bootstrap: str, **conf):
    from confluent_kafka import Producer

    base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0}
    base.update(conf)
    return Producer(base)


def produce_values(bootstrap: str, topic: str, values: Iterable[str], partitions: int = 1) -> None:
    """Plain (non-transactional) acks=all produce, round-robin over ``partitions``."""
    p = producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 2000})
    errors: list = []
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, value=v.encode(), partition=i % partitions, on_delivery=_collect(errors))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(TIMEOUT_S * 2) == 0 and not errors, errors[:5]


def _collect(errors: list):
    def cb(err, msg):
        if err is not None:
            errors.append(err)

    return cb


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    value: str


def read_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    committed: bool,
    timeout: float = TIMEOUT_S,
) -> list[Rec]:
    """Everything in ``topic`` from the beginning up to the end (the LSO for read_committed), by
    assignment. Call it when no transaction is open on the topic. Sorted by (partition, offset)."""
    msgs = read_to_end(
        bootstrap, topic, partitions, committed=committed, group="eos-reader-unused", timeout=timeout
    )
    out = [Rec(m.partition(), m.offset(), m.value().decode()) for m in msgs]
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


def values_of(recs: Iterable[Rec]) -> list[str]:
    return [r.value for r in recs]


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (OffsetFetch on the wire; librdkafka 2.16's AdminClient
    list_consumer_group_offsets segfaults when Kafka answers COORDINATOR_LOAD_IN_PROGRESS)."""
    with Wire(bootstrap) as w:
        got = w.offset_fetch(group, topic, list(range(partitions)), require_stable=False)
    return {p: o for p, (code, o) in got.items() if code == NONE and o >= 0}


# --------------------------------------------------------------------------------------------------
# Wire level


def batch(
    values: list[bytes],
    *,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    return record_batch(
        [(None, v) for v in values],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
    )


@dataclass
class Pid:
    producer_id: int
    epoch: int


class Wire:
    """A WireClient plus the requests the exactly-once tests need, with Kafka's coordinator retries."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.c = WireClient(bootstrap, timeout_s=TIMEOUT_S)

    def close(self) -> None:
        self.c.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _retry(self, fn: Callable[[], object], code_of: Callable[[object], int], retriable: set[int]):
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            resp = fn()
            if code_of(resp) not in retriable or time.monotonic() > deadline:
                return resp
            time.sleep(0.1)

    def find_coordinator(self, key: str, key_type: int) -> None:
        """Wait until the coordinator for ``key`` is available (one node: it is always this broker)."""
        resp = self._retry(
            lambda: self.c.request(FindCoordinatorRequest, {"key": key, "key_type": key_type}),
            lambda r: int(r.error_code),
            _RETRIABLE_COORD,
        )
        assert int(resp.error_code) == NONE, resp

    def init_producer_id(
        self, transactional_id: str | None = None, timeout_ms: int = 60000, expect: int = NONE
    ) -> Pid:
        if transactional_id is not None:
            self.find_coordinator(transactional_id, 1)
        resp = self._retry(
            lambda: self.c.request(
                InitProducerIdRequest,
                {
                    "transactional_id": transactional_id,
                    "transaction_timeout": datetime.timedelta(milliseconds=timeout_ms),
                    "producer_id": -1,
                    "producer_epoch": -1,
                },
            ),
            lambda r: int(r.error_code),
            _RETRIABLE_COORD | {CONCURRENT_TRANSACTIONS},
        )
        assert int(resp.error_code) == expect, resp
        return Pid(resp.producer_id, resp.producer_epoch)

    def produce(
        self, topic: str, partition: int, records: bytes, transactional_id: str | None = None
    ) -> tuple[int, int]:
        """(error_code, base_offset); retried while a just-created topic propagates (Kafka)."""

        def once():
            resp = self.c.request(
                ProduceRequest,
                {
                    "transactional_id": transactional_id,
                    "acks": -1,
                    "timeout": datetime.timedelta(seconds=10),
                    "topic_data": [
                        {"name": topic, "partition_data": [{"index": partition, "records": records}]}
                    ],
                },
            )
            return resp.responses[0].partition_responses[0]

        p = self._retry(
            once, lambda r: int(r.error_code), {UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER}
        )
        return int(p.error_code), p.base_offset

    def list_offset(self, topic: str, partition: int, isolation: int, timestamp: int = -1) -> int:
        resp = self.c.request(
            ListOffsetsRequest,
            {
                "replica_id": -1,
                "isolation_level": isolation,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {"partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp}
                        ],
                    }
                ],
            },
        )
        p = resp.topics[0].partitions[0]
        assert int(p.error_code) == NONE, p
        return p.offset

    def hw(self, topic: str, partition: int = 0) -> int:
        return self.list_offset(topic, partition, READ_UNCOMMITTED)

    def lso(self, topic: str, partition: int = 0) -> int:
        return self.list_offset(topic, partition, READ_COMMITTED)

    def add_partitions(self, txn_id: str, pid: Pid, topic: str, partitions: list[int]) -> list[int]:
        resp = self._retry(
            lambda: self.c.request(
                AddPartitionsToTxnRequest,
                {
                    "v3_and_below_transactional_id": txn_id,
                    "v3_and_below_producer_id": pid.producer_id,
                    "v3_and_below_producer_epoch": pid.epoch,
                    "v3_and_below_topics": [{"name": topic, "partitions": partitions}],
                },
            ),
            lambda r: int(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code),
            {CONCURRENT_TRANSACTIONS} | _RETRIABLE_COORD,
        )
        return [
            int(p.partition_error_code) for p in resp.results_by_topic_v3_and_below[0].results_by_partition
        ]

    def add_offsets(self, txn_id: str, pid: Pid, group: str) -> int:
        resp = self._retry(
            lambda: self.c.request(
                AddOffsetsToTxnRequest,
                {
                    "transactional_id": txn_id,
                    "producer_id": pid.producer_id,
                    "producer_epoch": pid.epoch,
                    "group_id": group,
                },
            ),
            lambda r: int(r.error_code),
            {CONCURRENT_TRANSACTIONS} | _RETRIABLE_COORD,
        )
        return int(resp.error_code)

    def txn_offset_commit(
        self,
        txn_id: str,
        pid: Pid,
        group: str,
        topic: str,
        offsets: dict[int, int],
        *,
        generation: int = -1,
        member: str = "",
        instance: str | None = None,
    ) -> list[int]:
        self.find_coordinator(group, 0)
        resp = self._retry(
            lambda: self.c.request(
                TxnOffsetCommitRequest,
                {
                    "transactional_id": txn_id,
                    "group_id": group,
                    "producer_id": pid.producer_id,
                    "producer_epoch": pid.epoch,
                    "generation_id": generation,
                    "member_id": member,
                    "group_instance_id": instance,
                    "topics": [
                        {
                            "name": topic,
                            "partitions": [
                                {
                                    "partition_index": p,
                                    "committed_offset": o,
                                    "committed_leader_epoch": -1,
                                    "committed_metadata": "",
                                }
                                for p, o in offsets.items()
                            ],
                        }
                    ],
                },
            ),
            lambda r: int(r.topics[0].partitions[0].error_code),
            {CONCURRENT_TRANSACTIONS} | _RETRIABLE_COORD,
        )
        return [int(p.error_code) for p in resp.topics[0].partitions]

    def end_txn(self, txn_id: str, pid: Pid, commit: bool) -> int:
        resp = self._retry(
            lambda: self.c.request(
                EndTxnRequest,
                {
                    "transactional_id": txn_id,
                    "producer_id": pid.producer_id,
                    "producer_epoch": pid.epoch,
                    "committed": commit,
                },
            ),
            lambda r: int(r.error_code),
            _RETRIABLE_COORD,
        )
        return int(resp.error_code)

    def offset_fetch(self, group: str, topic: str, partitions: list[int], require_stable: bool) -> dict:
        """partition -> (error_code, committed_offset)."""
        self.find_coordinator(group, 0)
        resp = self._retry(
            lambda: self.c.request(
                OffsetFetchRequest,
                {
                    "group_id": group,
                    "topics": [{"name": topic, "partition_indexes": partitions}],
                    "require_stable": require_stable,
                },
            ),
            lambda r: int(r.error_code),
            _RETRIABLE_COORD,
        )
        assert int(resp.error_code) == NONE, resp
        return {p.partition_index: (int(p.error_code), p.committed_offset) for p in resp.topics[0].partitions}

    def describe_txn(self, txn_id: str):
        self.find_coordinator(txn_id, 1)
        resp = self.c.request(DescribeTransactionsRequest, {"transactional_ids": [txn_id]})
        return resp.transaction_states[0]

    def list_txns(self) -> dict[str, tuple[int, str]]:
        resp = self.c.request(ListTransactionsRequest, {"state_filters": [], "producer_id_filters": []})
        assert int(resp.error_code) == NONE, resp
        return {t.transactional_id: (t.producer_id, t.transaction_state) for t in resp.transaction_states}

    def fetch(self, topic: str, partition: int, offset: int, isolation: int):
        resp = self.c.request(
            FetchRequest,
            {
                "replica_id": -1,
                "max_wait": datetime.timedelta(milliseconds=10),
                "min_bytes": 1,
                "max_bytes": 1 << 20,
                "isolation_level": isolation,
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {
                                "partition": partition,
                                "current_leader_epoch": -1,
                                "fetch_offset": offset,
                                "last_fetched_epoch": -1,
                                "log_start_offset": -1,
                                "partition_max_bytes": 1 << 20,
                            }
                        ],
                    }
                ],
                "forgotten_topics_data": [],
                "rack_id": "",
            },
        )
        return resp.responses[0].partitions[0]
