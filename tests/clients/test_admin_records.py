"""Record and replica admin APIs against Odradek and Apache Kafka 4.4 with the same assertions:
DeleteRecords (confluent-kafka's delete_records, then what ListOffsets and a consumer see), ElectLeaders
(confluent-kafka), OffsetForLeaderEpoch and DescribeLogDirs (wire client), and on Odradek the log start
offset's durability across a restart with the segments below it gone from the disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kclients import wait_for_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wire import WireClient  # noqa: E402

TIMEOUT = 20.0
OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION = 1, 3
FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 74, 75


def _admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def _topic_with_records(bootstrap, topic, n=10, size=10, config=None):
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, config=config or {})])[topic].result(TIMEOUT)
    wait_for_topic(bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 0, "linger.ms": 0})
    for i in range(n):
        p.produce(topic, f"{i:0{size}d}".encode(), partition=0)
        p.poll(0)
    assert p.flush(TIMEOUT) == 0


def _delete(admin, topic, offset):
    """(low watermark, None) or (None, error name) of DeleteRecords on partition 0."""
    from confluent_kafka import KafkaException, TopicPartition

    futures = admin.delete_records([TopicPartition(topic, 0, offset)])
    try:
        result = list(futures.values())[0].result(TIMEOUT)
    except KafkaException as e:
        return None, e.args[0].name()
    return result.low_watermark, None


def _earliest(admin, topic):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    tp = TopicPartition(topic, 0)
    return admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(TIMEOUT).offset


def _first_read(bootstrap, topic, offset=None):
    """The offset of the first record a consumer reads from ``offset`` (None: auto.offset.reset=earliest),
    or the error it gets."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "log_level": 0,
        }
    )
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING if offset is None else offset)])
        for _ in range(100):
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                return msg.error().name()
            return msg.offset()
        return "nothing read"
    finally:
        c.close()


def test_delete_records_moves_the_log_start(broker, topic_name):
    admin = _admin(broker.bootstrap)
    _topic_with_records(broker.bootstrap, topic_name)
    assert _delete(admin, topic_name, 4) == (4, None)
    assert _earliest(admin, topic_name) == 4
    assert _first_read(broker.bootstrap, topic_name) == 4
    assert _first_read(broker.bootstrap, topic_name, 6) == 6
    assert _first_read(broker.bootstrap, topic_name, 2) == "_AUTO_OFFSET_RESET"  # OFFSET_OUT_OF_RANGE
    assert _delete(admin, topic_name, 2) == (4, None)  # below the start: nothing changes
    assert _delete(admin, topic_name, 11) == (None, "OFFSET_OUT_OF_RANGE")  # beyond the high watermark
    assert _earliest(admin, topic_name) == 4
    assert _delete(admin, topic_name, -1) == (10, None)  # -1: up to the high watermark
    assert _earliest(admin, topic_name) == 10


def test_delete_records_bad_input_and_a_compacted_topic(broker, topic_name, unique):
    import datetime

    from kio.schema.delete_records.v2.request import DeleteRecordsRequest

    _topic_with_records(broker.bootstrap, topic_name, n=3)
    compacted = unique("compacted")
    _admin(broker.bootstrap).create_topics([_new_topic(compacted, {"cleanup.policy": "compact"})])
    wait_for_topic(broker.bootstrap, compacted, 1)
    with WireClient(broker.bootstrap) as w:
        r = w.request(
            DeleteRecordsRequest,
            {
                "topics": [
                    {
                        "name": topic_name,
                        "partitions": [
                            {"partition_index": 5, "offset": 1},
                            {"partition_index": 0, "offset": -2},
                        ],
                    },
                    {"name": topic_name + "-missing", "partitions": [{"partition_index": 0, "offset": 1}]},
                    {"name": compacted, "partitions": [{"partition_index": 0, "offset": 0}]},
                ],
                "timeout": datetime.timedelta(seconds=10),
            },
        )
    answers = {
        (t.name, p.partition_index): (int(p.error_code), p.low_watermark)
        for t in r.topics
        for p in t.partitions
    }
    assert answers == {
        (topic_name, 5): (UNKNOWN_TOPIC_OR_PARTITION, -1),
        (topic_name, 0): (OFFSET_OUT_OF_RANGE, -1),
        (topic_name + "-missing", 0): (UNKNOWN_TOPIC_OR_PARTITION, -1),
        (compacted, 0): (0, 0),  # Kafka 4 deletes records of compacted topics too
    }


def _new_topic(name, config):
    from confluent_kafka.admin import NewTopic

    return NewTopic(name, 1, 1, config=config)


def test_elect_leaders_is_not_needed(broker, topic_name):
    from confluent_kafka import ElectionType, TopicPartition

    admin = _admin(broker.bootstrap)
    _topic_with_records(broker.bootstrap, topic_name, n=1)
    for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        tp = TopicPartition(topic_name, 0)
        result = admin.elect_leaders(kind, [tp]).result(TIMEOUT)
        assert [e.name() if e else None for e in result.values()] == ["ELECTION_NOT_NEEDED"], kind


def _epochs(bootstrap, topic, asks):
    from kio.schema.offset_for_leader_epoch.v4.request import OffsetForLeaderEpochRequest

    with WireClient(bootstrap) as w:
        r = w.request(
            OffsetForLeaderEpochRequest,
            {
                "replica_id": -1,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": p, "current_leader_epoch": c, "leader_epoch": e} for p, c, e in asks
                        ],
                    }
                ],
            },
        )
    return [(int(p.error_code), p.leader_epoch, p.end_offset) for p in r.topics[0].partitions]


def test_offset_for_leader_epoch(broker, topic_name):
    admin = _admin(broker.bootstrap)
    _topic_with_records(broker.bootstrap, topic_name, n=10)
    assert _delete(admin, topic_name, 3) == (3, None)
    assert _epochs(
        broker.bootstrap,
        topic_name,
        [(0, -1, 0), (0, 0, 0), (0, -1, 1), (0, -1, -1), (0, -1, -3), (0, 5, 0), (0, -5, 0), (4, -1, 0)],
    ) == [
        (0, 0, 10),  # the current epoch ends at the log end
        (0, 0, 10),
        (0, -1, -1),  # a later epoch is unknown
        (0, -1, -1),
        (0, -3, 3),  # an earlier one ends where the current one starts (the log start)
        (UNKNOWN_LEADER_EPOCH, -1, -1),
        (FENCED_LEADER_EPOCH, -1, -1),
        (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]


def test_describe_log_dirs(broker, topic_name):
    from kio.schema.describe_log_dirs.v5.request import DescribeLogDirsRequest

    _topic_with_records(broker.bootstrap, topic_name, n=10)
    with WireClient(broker.bootstrap) as w:
        r = w.request(
            DescribeLogDirsRequest,
            {
                "topics": [
                    {"topic": topic_name, "partitions": [0, 7]},
                    {"topic": topic_name + "-x", "partitions": [0]},
                ]
            },
        )
        everything = w.request(DescribeLogDirsRequest, {"topics": None})
    assert int(r.error_code) == 0 and len(r.results) == 1
    d = r.results[0]
    assert int(d.error_code) == 0 and Path(d.log_dir).is_dir()
    assert 0 < d.usable_bytes <= d.total_bytes and not d.is_cordoned
    assert [
        (t.name, [(p.partition_index, p.offset_lag, p.is_future_key) for p in t.partitions]) for t in d.topics
    ] == [(topic_name, [(0, 0, False)])]
    assert d.topics[0].partitions[0].partition_size > 10 * 10  # ten records of ten bytes, with overhead
    assert topic_name in {t.name for t in everything.results[0].topics}


def test_log_start_survives_a_restart(odradek_factory, topic_name):
    """Odradek only: the start DeleteRecords set is durable, and the segments wholly below it are gone
    from the disk (1 MiB segments, 100 KB records)."""
    od = odradek_factory()
    _topic_with_records(od.bootstrap, topic_name, n=30, size=100_000, config={"segment.bytes": "1048576"})
    directory = od.data_dir / f"{topic_name}-0"
    segments_before = sorted(directory.glob("*.log"))
    assert len(segments_before) >= 3
    admin = _admin(od.bootstrap)
    assert _delete(admin, topic_name, 25) == (25, None)
    segments_after = sorted(directory.glob("*.log"))
    assert len(segments_after) < len(segments_before)
    assert all(int(s.stem) <= 25 for s in segments_after[:1])
    od.restart()
    admin = _admin(od.bootstrap)
    assert _earliest(admin, topic_name) == 25
    assert _first_read(od.bootstrap, topic_name) == 25
    assert _first_read(od.bootstrap, topic_name, 20) == "_AUTO_OFFSET_RESET"


def test_offsets_for_times_after_delete_records(broker, topic_name):
    """A timestamp lookup never names a deleted offset, even when the new start cuts a batch in two."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic

    admin = _admin(broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(TIMEOUT)
    wait_for_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0, "linger.ms": 1000})
    for i in range(10):  # one batch of ten records, timestamps 1000..1009
        p.produce(topic_name, f"v{i}".encode(), partition=0, timestamp=1000 + i)
    assert p.flush(TIMEOUT) == 0
    assert _delete(admin, topic_name, 4) == (4, None)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "log_level": 0})
    try:
        found = [  # one query per timestamp: librdkafka keeps one entry per partition
            c.offsets_for_times([TopicPartition(topic_name, 0, ts)], timeout=TIMEOUT)[0].offset
            for ts in (0, 1006)
        ]
    finally:
        c.close()
    assert found == [4, 6]


def test_max_timestamp_below_the_log_start(broker, topic_name):
    """ListOffsets MAX_TIMESTAMP still names the record with the highest timestamp when DeleteRecords has
    moved the start past it (its segment is still there): Kafka answers it; the connection stays up."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import NewTopic, OffsetSpec

    admin = _admin(broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(TIMEOUT)
    wait_for_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0, "linger.ms": 0})
    for ts in (5000, 1000, 1001, 1002, 1003):  # one batch each
        p.produce(topic_name, b"x", partition=0, timestamp=ts)
        assert p.flush(TIMEOUT) == 0
    assert _delete(admin, topic_name, 2) == (2, None)
    tp = TopicPartition(topic_name, 0)
    found = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(TIMEOUT)
    assert (found.offset, found.timestamp) == (0, 5000)
    assert _earliest(admin, topic_name) == 2


def test_duplicates_and_an_unknown_election_type(broker, topic_name):
    """DeleteRecords answers once per partition (the last offset given wins); ElectLeaders with an
    election type other than preferred (0) or unclean (1) is INVALID_REQUEST, as a whole and per partition."""
    import datetime

    from kio.schema.delete_records.v2.request import DeleteRecordsRequest
    from kio.schema.elect_leaders.v2.request import ElectLeadersRequest

    _topic_with_records(broker.bootstrap, topic_name, n=5)
    with WireClient(broker.bootstrap) as w:
        deleted = w.request(
            DeleteRecordsRequest,
            {
                "topics": [
                    {
                        "name": topic_name,
                        "partitions": [
                            {"partition_index": 0, "offset": 1},
                            {"partition_index": 0, "offset": 2},
                        ],
                    }
                ],
                "timeout": datetime.timedelta(seconds=10),
            },
        )
        elected = w.request(
            ElectLeadersRequest,
            {
                "election_type": 5,
                "topic_partitions": [{"topic": topic_name, "partitions": [0]}],
                "timeout": datetime.timedelta(seconds=10),
            },
        )
    assert [
        (p.partition_index, int(p.error_code), p.low_watermark) for t in deleted.topics for p in t.partitions
    ] == [(0, 0, 2)]
    assert int(elected.error_code) == 42
    assert [
        (p.partition_id, int(p.error_code))
        for r in elected.replica_election_results
        for p in r.partition_result
    ] == [(0, 42)]
