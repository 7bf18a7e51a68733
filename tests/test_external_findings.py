"""What external client test suites found, each pinned by a differential test (same assertions on both).

* ListOffsets MAX_TIMESTAMP (-3) names the first record holding the highest timestamp, not its batch;
* Metadata and DescribeCluster answer the authorized-operations bitfields when the client asks;
* group.initial.rebalance.delay.ms gathers members that join a new group at once into one rebalance.
"""

from __future__ import annotations

import datetime
import json
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kio.schema.describe_cluster.v1.request import DescribeClusterRequest
from kio.schema.list_offsets.v7.request import ListOffsetsRequest
from kio.schema.metadata.v10.request import MetadataRequest as MetadataRequestV10
from kio.schema.metadata.v12.request import MetadataRequest as MetadataRequestV12
from kio.schema.produce.v9.request import ProduceRequest

from support.kit import admin, wait_until
from wire import WireClient, record_batch

pytestmark = pytest.mark.differential

MAX_TIMESTAMP = -3
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
OMITTED = -2147483648


def _create(bootstrap: str, topic: str, config: dict[str, str] | None = None) -> None:
    a = admin(bootstrap)
    new = NewTopic(topic, num_partitions=1, replication_factor=1, config=config or {})
    a.create_topics([new])[topic].result(30)

    def ready() -> bool:
        md = a.list_topics(topic=topic, timeout=5).topics.get(topic)
        return md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values())

    wait_until(ready, 30, f"topic {topic}")


def _batch(timestamps: list[int]) -> bytes:
    return record_batch([(b"k%d" % i, b"v%d" % i, ts) for i, ts in enumerate(timestamps)])


def _produce(client: WireClient, topic: str, timestamps: list[int]) -> int:
    """One batch with these record timestamps; returns its base offset."""
    deadline = time.monotonic() + 30
    while True:
        resp = client.request(
            ProduceRequest,
            {
                "transactional_id": None,
                "acks": -1,
                "timeout": datetime.timedelta(seconds=10),
                "topic_data": [
                    {"name": topic, "partition_data": [{"index": 0, "records": _batch(timestamps)}]}
                ],
            },
        )
        p = resp.responses[0].partition_responses[0]
        retriable = int(p.error_code) in (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER)
        if not retriable or time.monotonic() > deadline:
            assert int(p.error_code) == 0, p
            return int(p.base_offset)
        time.sleep(0.1)


def _list_offset(client: WireClient, topic: str, timestamp: int, isolation: int) -> tuple[int, int]:
    """(offset, timestamp) ListOffsets v7 answers for one partition and a timestamp (or -1, -2, -3)."""
    p = _list_offset_answer(client, topic, timestamp, isolation)
    return int(p.offset), int(p.timestamp)


def _list_offset_answer(client: WireClient, topic: str, timestamp: int, isolation: int):
    """The partition's answer, asked again while a just-created topic propagates (Kafka)."""
    request = {
        "replica_id": -1,
        "isolation_level": isolation,
        "topics": [
            {
                "name": topic,
                "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}],
            }
        ],
    }
    deadline = time.monotonic() + 30
    while True:
        p = client.request(ListOffsetsRequest, request).topics[0].partitions[0]
        retriable = int(p.error_code) in (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER)
        if not retriable or time.monotonic() > deadline:
            assert int(p.error_code) == 0, p
            return p
        time.sleep(0.1)


def _max_timestamp(client: WireClient, topic: str, isolation: int = READ_UNCOMMITTED) -> tuple[int, int]:
    return _list_offset(client, topic, MAX_TIMESTAMP, isolation)


def _base_ms() -> int:
    """Record timestamps an hour in the past: accepted by both brokers' timestamp bounds."""
    return int(time.time() * 1000) - 3_600_000


# --------------------------------------------------------------------------------------------------
# ListOffsets MAX_TIMESTAMP


def test_max_timestamp_names_the_record_not_the_batch(broker, topic_name):
    t = _base_ms()
    _create(broker.bootstrap, topic_name)
    with WireClient(broker.bootstrap) as c:
        assert _max_timestamp(c, topic_name) == (-1, -1), "empty partition"
        assert _list_offset_answer(c, topic_name, MAX_TIMESTAMP, READ_UNCOMMITTED).leader_epoch == -1
        assert _produce(c, topic_name, [t + 1, t + 3, t + 2]) == 0
        assert _max_timestamp(c, topic_name) == (1, t + 3), "the record inside the batch, not its last"
        assert _list_offset_answer(c, topic_name, MAX_TIMESTAMP, READ_UNCOMMITTED).leader_epoch == 0
        # Ties: the first record with the highest timestamp, in the earliest batch holding it.
        assert _produce(c, topic_name, [t + 3, t + 3, t]) == 3
        assert _max_timestamp(c, topic_name) == (1, t + 3)
        assert _produce(c, topic_name, [t, t + 5, t + 5, t + 4]) == 6
        assert _max_timestamp(c, topic_name) == (7, t + 5)
        assert _produce(c, topic_name, [t + 5]) == 10
        assert _max_timestamp(c, topic_name) == (7, t + 5), "a later batch with the same maximum"


def test_max_timestamp_with_log_append_time(broker, topic_name):
    _create(broker.bootstrap, topic_name, {"message.timestamp.type": "LogAppendTime"})
    t = _base_ms()
    with WireClient(broker.bootstrap) as c:
        before = int(time.time() * 1000)
        assert _produce(c, topic_name, [t + 3, t + 9, t + 1]) == 0
        offset, ts = _max_timestamp(c, topic_name)
    assert offset == 0, "every record of the batch carries the append time: the first one is named"
    assert ts >= before, "the broker's append time, not the producer's timestamps"


def test_max_timestamp_read_committed_stops_at_the_last_stable_offset(broker, topic_name):
    t = _base_ms()
    _create(broker.bootstrap, topic_name)
    with WireClient(broker.bootstrap) as c:
        assert _produce(c, topic_name, [t + 1, t + 3, t + 2]) == 0
        p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": topic_name, "linger.ms": 0})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic_name, b"open", partition=0, timestamp=t + 9)
        assert p.flush(30) == 0
        assert _max_timestamp(c, topic_name, READ_UNCOMMITTED) == (3, t + 9)
        committed_view = _max_timestamp(c, topic_name, READ_COMMITTED)
        assert _list_offset_answer(c, topic_name, MAX_TIMESTAMP, READ_COMMITTED).leader_epoch == -1
        p.commit_transaction(30)
        # Kafka writes the markers after answering EndTxn: wait until the marker is in (LSO 5).
        wait_until(lambda: _list_offset(c, topic_name, -1, READ_COMMITTED)[0] == 5, 30, "the commit marker")
        after_commit = _max_timestamp(c, topic_name, READ_COMMITTED)
        uncommitted_view = _max_timestamp(c, topic_name, READ_UNCOMMITTED)
    assert committed_view == (-1, -1), "the highest timestamp is in an open transaction"
    # The commit marker (offset 4) is stamped with the coordinator's clock, later than every record here.
    assert after_commit[0] == 4 and after_commit[1] > t + 9, after_commit
    assert uncommitted_view == after_commit


# --------------------------------------------------------------------------------------------------
# Authorized operations

# Bit n is AclOperation code n: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
# DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def _metadata(client: WireClient, cls, topics: list[str], **include) -> object:
    body = {
        "topics": [{"topic_id": None, "name": n} for n in topics],
        "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False,
        **include,
    }
    if cls is MetadataRequestV10:
        body.setdefault("include_cluster_authorized_operations", False)
    return client.request(cls, body)


def test_authorized_operations_when_asked(broker, topic_name, unique):
    _create(broker.bootstrap, topic_name)
    missing = unique("missing")
    with WireClient(broker.bootstrap) as c:
        quiet = _metadata(c, MetadataRequestV10, [topic_name])
        asked = _metadata(
            c,
            MetadataRequestV10,
            [topic_name, missing],
            include_topic_authorized_operations=True,
            include_cluster_authorized_operations=True,
        )
        v12 = _metadata(c, MetadataRequestV12, [topic_name], include_topic_authorized_operations=True)
        cluster_quiet = c.request(
            DescribeClusterRequest, {"include_cluster_authorized_operations": False, "endpoint_type": 1}
        )
        cluster_asked = c.request(
            DescribeClusterRequest, {"include_cluster_authorized_operations": True, "endpoint_type": 1}
        )
    assert quiet.topics[0].topic_authorized_operations == OMITTED
    assert quiet.cluster_authorized_operations == OMITTED
    by_name = {t.name: t for t in asked.topics}
    assert by_name[topic_name].topic_authorized_operations == TOPIC_OPERATIONS
    assert int(by_name[missing].error_code) == UNKNOWN_TOPIC_OR_PARTITION
    assert by_name[missing].topic_authorized_operations == TOPIC_OPERATIONS, "error entries too"
    assert asked.cluster_authorized_operations == CLUSTER_OPERATIONS
    assert v12.topics[0].topic_authorized_operations == TOPIC_OPERATIONS
    assert int(cluster_asked.error_code) == 0
    assert cluster_quiet.cluster_authorized_operations == OMITTED
    assert cluster_asked.cluster_authorized_operations == CLUSTER_OPERATIONS


# --------------------------------------------------------------------------------------------------
# Transaction commit: durable before EndTxn answers, with the Complete state written behind the answer

TXN_JOURNAL = Path("__odradek") / "transactions.journal"


def _journal_records(path: Path) -> list[tuple[int, dict]]:
    """(start position, decoded record) of every record of the coordinator's journal."""
    data, pos, out = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        out.append((pos, json.loads(data[pos + 8 : pos + 8 + size])))
        pos += 8 + size
    return out


def test_commit_survives_losing_the_unsynced_complete_state(odradek_factory, unique):
    """EndTxn answers once the Prepare state and the markers are on disk; the Complete state follows
    without a wait. A crash that loses it (the journal's un-fsynced tail) replays the Prepare: the
    second commit marker closes nothing, the data is committed once, and the producer carries on."""
    from eos.eoskit import Wire, batch

    broker = odradek_factory()
    topic = txn = unique("txn")
    _create(broker.bootstrap, topic)
    with Wire(broker.bootstrap) as w:
        pid = w.init_producer_id(txn)
        assert w.add_partitions(txn, pid, topic, [0]) == [0]
        data = batch([b"a", b"b"], producer_id=pid.producer_id, producer_epoch=pid.epoch, base_sequence=0,
                     transactional=True)  # fmt: skip
        assert w.produce(topic, 0, data, transactional_id=txn) == (0, 0)
        assert w.end_txn(txn, pid, True) == 0
    broker.kill()
    journal = broker.data_dir / TXN_JOURNAL
    records = _journal_records(journal)
    last_pos, last = records[-1]
    assert (last["id"], last["state"]) == (txn, "CompleteCommit"), records
    assert records[-2][1]["state"] == "PrepareCommit"
    with open(journal, "r+b") as f:  # what a power cut before the Complete state's fsync leaves
        f.truncate(last_pos)
    broker.restart()
    with Wire(broker.bootstrap) as w:
        assert w.lso(topic) == w.hw(topic) == 4, "data 0-1, the commit marker, the replayed one"
        values = [r.value for r in _read_committed(w, topic)]
        assert values == [b"a", b"b"]
        # The producer goes on with its next transaction; the replayed marker committed nothing of it.
        assert w.add_partitions(txn, pid, topic, [0]) == [0]
        more = batch([b"c"], producer_id=pid.producer_id, producer_epoch=pid.epoch, base_sequence=2,
                     transactional=True)  # fmt: skip
        assert w.produce(topic, 0, more, transactional_id=txn) == (0, 4)
        assert w.lso(topic) == 4, "the new transaction is open"
        assert w.end_txn(txn, pid, False) == 0
        assert w.lso(topic) == w.hw(topic) == 6
        assert [r.value for r in _read_committed(w, topic)] == [b"a", b"b"]
    states = [r["state"] for _, r in _journal_records(journal) if r.get("id") == txn]
    assert states[-2:] == ["PrepareAbort", "CompleteAbort"], "written (to the OS) before EndTxn answered"


def _read_committed(w, topic: str) -> list:
    """The records a read_committed consumer keeps from offset 0 (aborted ones and markers dropped)."""
    from kafka.record.default_records import DefaultRecordBatch

    p = w.fetch(topic, 0, 0, READ_COMMITTED)
    aborted = [(a.producer_id, a.first_offset) for a in (p.aborted_transactions or ())]
    out, view, pos = [], bytes(p.records or b""), 0
    while pos + 12 <= len(view):
        size = struct.unpack_from(">i", view, pos + 8)[0] + 12
        b = DefaultRecordBatch(view[pos : pos + size])
        dropped = any(b.producer_id == pid and b.base_offset >= first for pid, first in aborted)
        if not b.is_control_batch and not dropped:
            out.extend(b)
        pos += size
    return out


# --------------------------------------------------------------------------------------------------
# group.initial.rebalance.delay.ms (Odradek's default is 0, Kafka's 3000)


@pytest.fixture(params=["odradek", "kafka"])
def delayed_broker(request: pytest.FixtureRequest):
    """A private broker of each kind with Kafka's default initial rebalance delay, 3000 ms."""
    settings = {"group.initial.rebalance.delay.ms": "3000"}
    return request.getfixturevalue(f"{request.param}_factory")(settings)


def test_initial_rebalance_delay_gathers_members_joining_at_once(delayed_broker, unique):
    """Two cooperative-sticky consumers subscribe to a new group at once (the second a moment after the
    first): with the delay both join the first generation, so each gets its partitions in one assignment
    callback and never gives any up. With 0 (Odradek's default) the first one gets every partition, then
    hands half over in a second rebalance: this test fails there."""
    from confluent_kafka import Consumer

    bootstrap = delayed_broker.bootstrap
    topic, group = unique("topic"), unique("group")
    a = admin(bootstrap)  # kept referenced: a collected client cancels its futures
    a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    events: list[list[tuple[str, list[int]]]] = [[], []]

    def recorder(i: int, kind: str):
        return lambda _consumer, parts: events[i].append((kind, sorted(p.partition for p in parts)))

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": False,
    }
    consumers = [Consumer(conf), Consumer(conf)]

    def held() -> list[set[int]]:
        out: list[set[int]] = [set(), set()]
        for i in range(2):
            for kind, parts in events[i]:
                out[i] = out[i] | set(parts) if kind == "assign" else out[i] - set(parts)
        return out

    def poll_both() -> None:
        for c in consumers:
            c.poll(0.05)

    try:
        consumers[0].subscribe([topic], on_assign=recorder(0, "assign"), on_revoke=recorder(0, "revoke"))
        for _ in range(6):  # the first one's JoinGroup goes out a moment before the second's
            consumers[0].poll(0.05)
        consumers[1].subscribe([topic], on_assign=recorder(1, "assign"), on_revoke=recorder(1, "revoke"))

        def settled() -> bool:
            poll_both()
            now = held()
            return all(now) and now[0] | now[1] == {0, 1, 2, 3}

        wait_until(settled, 60, lambda: f"both consumers assigned; callbacks so far {events}")
        for _ in range(20):  # a second rebalance, if one were coming, follows at once
            poll_both()
        final, seen = held(), [list(e) for e in events]  # before close() revokes everything
    finally:
        for c in consumers:
            c.close()
    assert final[0].isdisjoint(final[1]) and final[0] | final[1] == {0, 1, 2, 3}, seen
    for i in range(2):
        changes = [kind for kind, parts in seen[i] if parts]  # callbacks that moved a partition
        assert changes == ["assign"], f"consumer {i}: one assignment, nothing revoked; got {seen[i]}"


# --------------------------------------------------------------------------------------------------
# bench.latency keeps working (its figures are not judged here)


def test_bench_latency_smoke(tmp_path):
    import subprocess
    import sys

    from support.odradek import REPO_ROOT

    results = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.latency", "--only", "odradek", "--count", "5", "--txns", "3"]
    argv += ["--warmup", "1", "--lingers", "0,1", "--results-dir", str(results), "--work-dir", str(tmp_path)]
    proc = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (report_path,) = results.glob("*-latency.json")
    figures = json.loads(report_path.read_text())["brokers"]["odradek"]["results"]
    assert set(figures) == {"linger_0", "linger_1", "txn_commit"}
    for name, f in figures.items():
        assert f["n"] == (3 if name == "txn_commit" else 5)
        assert 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"], (name, f)


# Groups: READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS (Kafka 4.4 answers 3400).
GROUP_OPERATIONS = sum(1 << op for op in (3, 6, 8, 10, 11))


def test_group_authorized_operations_when_asked(broker, topic_name, unique):
    from confluent_kafka import Consumer, TopicPartition
    from kio.schema.consumer_group_describe.v0.request import ConsumerGroupDescribeRequest
    from kio.schema.describe_groups.v5.request import DescribeGroupsRequest

    _create(broker.bootstrap, topic_name)
    classic, modern = unique("classic"), unique("kip848")
    for group, protocol in ((classic, "classic"), (modern, "consumer")):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": protocol})
        try:
            c.subscribe([topic_name])
            wait_until(lambda c=c: (c.poll(0.2), c.assignment())[1], 30, f"{group} assigned")
            c.commit(offsets=[TopicPartition(topic_name, 0, 0)], asynchronous=False)
        finally:
            c.close()
    with WireClient(broker.bootstrap) as w:
        quiet, asked = (
            w.request(DescribeGroupsRequest, {"groups": [classic], "include_authorized_operations": flag})
            for flag in (False, True)
        )
        described = w.request(
            ConsumerGroupDescribeRequest, {"group_ids": [modern], "include_authorized_operations": True}
        )
    assert quiet.groups[0].authorized_operations == OMITTED
    assert int(asked.groups[0].error_code) == 0
    assert asked.groups[0].authorized_operations == GROUP_OPERATIONS
    assert int(described.groups[0].error_code) == 0
    assert described.groups[0].authorized_operations == GROUP_OPERATIONS
