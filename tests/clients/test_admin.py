"""Admin APIs through confluent-kafka's AdminClient and kafka-python's KafkaAdminClient, against
Odradek and Apache Kafka with the same assertions.

Apache Kafka answers CreateTopics / CreatePartitions / DeleteTopics before its metadata cache shows
the change, so every check of the outcome polls metadata (bounded).
"""

from __future__ import annotations

import time

import pytest
from kclients import Confluent, Msg, wait_for_topic

TIMEOUT = 15.0

# Per-topic overrides Kafka rejects with INVALID_CONFIG (wrong type, out of range, not one of the
# allowed strings, unknown name).
INVALID_TOPIC_CONFIGS = {
    "not-a-number": {"retention.ms": "abc"},
    "retention-below-minus-one": {"retention.ms": "-5"},
    "negative-max-message-bytes": {"max.message.bytes": "-1"},
    "segment-below-1mib": {"segment.bytes": "100"},
    "unknown-cleanup-policy": {"cleanup.policy": "nope"},
    "unknown-timestamp-type": {"message.timestamp.type": "Bogus"},
    "unknown-name": {"no.such.config": "1"},
}

# Valid Kafka topic configurations that topic-creation scripts commonly pass.
COMMON_TOPIC_CONFIGS = {
    "compression.type": "gzip",
    "min.insync.replicas": "1",
    "delete.retention.ms": "1000",
}


def _poll(what, fn, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------------------------------------------
# confluent-kafka AdminClient


def _admin(broker):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": broker.bootstrap})


def _error(future):
    """The KafkaError name a future fails with, or "ok"."""
    from confluent_kafka import KafkaException

    try:
        future.result(TIMEOUT)
    except KafkaException as e:
        return e.args[0].name()
    return "ok"


def _topics(admin):
    return admin.list_topics(timeout=TIMEOUT).topics


def _partition_count(admin, topic):
    md = admin.list_topics(topic=topic, timeout=TIMEOUT).topics.get(topic)
    return 0 if md is None or md.error is not None else len(md.partitions)


def _topic_configs(admin, topic):
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(TIMEOUT)


def test_confluent_create_topic_with_configs(broker, topic_name):
    from confluent_kafka.admin import ConfigSource, NewTopic

    admin = _admin(broker)
    overrides = {"retention.ms": "86400000", "max.message.bytes": "200000", "cleanup.policy": "compact"}
    fs = admin.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1, config=overrides)])
    assert _error(fs[topic_name]) == "ok"
    wait_for_topic(broker.bootstrap, topic_name, 3)

    configs = _topic_configs(admin, topic_name)
    for name, value in overrides.items():
        entry = configs[name]
        assert (entry.value, entry.source, entry.is_default) == (
            value,
            ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
            False,
        ), name
    # Defaults both brokers report the same way (a sample of the 37 topic configs both list).
    for name, value in {
        "segment.bytes": "1073741824",
        "retention.bytes": "-1",
        "message.timestamp.type": "CreateTime",
    }.items():
        entry = configs[name]
        assert (entry.value, entry.source, entry.is_default) == (
            value,
            ConfigSource.DEFAULT_CONFIG.value,
            True,
        )


def test_confluent_create_topic_common_configs(broker, topic_name):
    """Valid Kafka topic configurations must be accepted (and reported back)."""
    from confluent_kafka.admin import NewTopic

    admin = _admin(broker)
    fs = admin.create_topics([NewTopic(topic_name, 1, 1, config=COMMON_TOPIC_CONFIGS)])
    assert _error(fs[topic_name]) == "ok"
    wait_for_topic(broker.bootstrap, topic_name, 1)
    configs = _topic_configs(admin, topic_name)
    assert {k: configs[k].value for k in COMMON_TOPIC_CONFIGS} == COMMON_TOPIC_CONFIGS


def test_confluent_create_topic_errors(broker, unique):
    from confluent_kafka.admin import NewTopic

    admin = _admin(broker)
    existing = unique("existing")
    assert _error(admin.create_topics([NewTopic(existing, 1, 1)])[existing]) == "ok"
    wait_for_topic(broker.bootstrap, existing, 1)

    cases = {
        existing: (NewTopic(existing, 2, 1), "TOPIC_ALREADY_EXISTS"),
        unique("rf3"): (None, "INVALID_REPLICATION_FACTOR"),
        unique("zero-partitions"): (None, "INVALID_PARTITIONS"),
        "bad/name": (NewTopic("bad/name", 1, 1), "TOPIC_EXCEPTION"),
        "..": (NewTopic("..", 1, 1), "TOPIC_EXCEPTION"),
    }
    rf3, zero = list(cases)[1:3]
    cases[rf3] = (NewTopic(rf3, 1, replication_factor=3), "INVALID_REPLICATION_FACTOR")
    cases[zero] = (NewTopic(zero, num_partitions=0, replication_factor=1), "INVALID_PARTITIONS")
    for label, config in INVALID_TOPIC_CONFIGS.items():
        name = unique(label)
        cases[name] = (NewTopic(name, 1, 1, config=config), "INVALID_CONFIG")

    wrong = {}
    for name, (new_topic, want) in cases.items():  # one request per topic: errors are per topic anyway
        got = _error(admin.create_topics([new_topic])[name])
        if got != want:
            wrong[name] = f"expected {want}, got {got} for {new_topic.config or new_topic}"
    assert wrong == {}

    # None of the refused topics exists; the existing one kept its single partition.
    topics = _topics(admin)
    assert [name for name in cases if name != existing and name in topics] == []
    assert _partition_count(admin, existing) == 1


def test_confluent_create_topic_validate_only(broker, topic_name):
    from confluent_kafka.admin import NewTopic

    admin = _admin(broker)
    assert _error(admin.create_topics([NewTopic(topic_name, 2, 1)], validate_only=True)[topic_name]) == "ok"
    bad = topic_name + "-rf3"
    assert (
        _error(admin.create_topics([NewTopic(bad, 1, 3)], validate_only=True)[bad])
        == "INVALID_REPLICATION_FACTOR"
    )
    # validate_only creates nothing: a real create right after succeeds (no TOPIC_ALREADY_EXISTS).
    assert topic_name not in _topics(admin)
    assert _error(admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name]) == "ok"


def test_confluent_create_partitions(broker, topic_name):
    from confluent_kafka.admin import NewPartitions

    admin = _admin(broker)
    Confluent.create_topic(broker.bootstrap, topic_name, 2)
    assert _error(admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name]) == "ok"
    wait_for_topic(broker.bootstrap, topic_name, 5)

    assert _error(admin.create_partitions([NewPartitions(topic_name, 2)])[topic_name]) == "INVALID_PARTITIONS"
    assert _error(admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name]) == "INVALID_PARTITIONS"
    missing = topic_name + "-missing"
    assert _error(admin.create_partitions([NewPartitions(missing, 5)])[missing]) == "UNKNOWN_TOPIC_OR_PART"
    assert _partition_count(admin, topic_name) == 5

    # The new partitions are usable at once.
    placed = Confluent.produce(broker.bootstrap, topic_name, [Msg(p, b"k", b"v") for p in range(5)])
    assert placed == [(p, 0) for p in range(5)]


def test_confluent_describe_configs(broker, topic_name):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = _admin(broker)
    Confluent.create_topic(broker.bootstrap, topic_name, 1)
    configs = _topic_configs(admin, topic_name)
    assert configs["cleanup.policy"].value == "delete" and configs["cleanup.policy"].is_default
    assert configs["max.message.bytes"].value == "1048588"
    assert all(name == entry.name for name, entry in configs.items())

    cluster = admin.describe_cluster().result(TIMEOUT)
    (node,) = cluster.nodes
    res = ConfigResource(ResourceType.BROKER, str(node.id))
    broker_configs = admin.describe_configs([res])[res].result(TIMEOUT)
    # Values only: Kafka's test broker sets num.partitions / auto.create.topics.enable / node.id in
    # server.properties (source STATIC_BROKER_CONFIG), Odradek runs on its defaults (DEFAULT_CONFIG).
    assert {
        k: broker_configs[k].value
        for k in (
            "node.id",
            "num.partitions",
            "auto.create.topics.enable",
            "message.max.bytes",
            "log.segment.bytes",
        )
    } == {
        "node.id": str(node.id),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "message.max.bytes": "1048588",
        "log.segment.bytes": "1073741824",
    }

    missing = ConfigResource(ResourceType.TOPIC, topic_name + "-missing")
    with pytest.raises(KafkaException) as info:
        admin.describe_configs([missing])[missing].result(TIMEOUT)
    assert info.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_confluent_delete_topics(broker, topic_name):
    from confluent_kafka.admin import NewTopic

    admin = _admin(broker)
    Confluent.create_topic(broker.bootstrap, topic_name, 2)
    Confluent.produce(broker.bootstrap, topic_name, [Msg(0, b"k", b"before-delete")] * 3)
    assert _error(admin.delete_topics([topic_name])[topic_name]) == "ok"
    _poll("topic gone from metadata", lambda: topic_name not in _topics(admin))
    missing = topic_name + "-missing"
    assert _error(admin.delete_topics([missing])[missing]) == "UNKNOWN_TOPIC_OR_PART"

    # The name can be reused, and the new topic starts empty.
    assert _error(admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name]) == "ok"
    wait_for_topic(broker.bootstrap, topic_name, 1)
    assert Confluent.watermarks(broker.bootstrap, topic_name, [0]) == {0: (0, 0)}
    assert Confluent.produce(broker.bootstrap, topic_name, [Msg(0, b"k", b"after")]) == [(0, 0)]


def test_confluent_describe_cluster_and_list_topics(broker, unique):
    admin = _admin(broker)
    names = {unique("a"): 1, unique("b"): 3}
    for name, n in names.items():
        Confluent.create_topic(broker.bootstrap, name, n)

    cluster = admin.describe_cluster().result(TIMEOUT)
    (node,) = cluster.nodes
    assert f"{node.host}:{node.port}" == broker.bootstrap
    assert isinstance(cluster.cluster_id, str) and cluster.cluster_id
    assert cluster.controller is not None and cluster.controller.id == node.id

    md = admin.list_topics(timeout=TIMEOUT)
    assert md.cluster_id == cluster.cluster_id
    assert [(b.id, f"{b.host}:{b.port}") for b in md.brokers.values()] == [(node.id, broker.bootstrap)]
    for name, n in names.items():
        t = md.topics[name]
        assert t.error is None
        assert sorted(t.partitions) == list(range(n))
        for p in t.partitions.values():
            assert (p.leader, p.replicas, p.isrs) == (node.id, [node.id], [node.id])


# ---------------------------------------------------------------------------------------------------
# kafka-python KafkaAdminClient


@pytest.fixture
def kp_admin(broker):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(TIMEOUT * 1000))
    yield admin
    admin.close()


def test_kafka_python_topics(broker, kp_admin, unique):
    from kafka import errors

    name = unique("topic")
    kp_admin.create_topics(
        {name: {"num_partitions": 2, "replication_factor": 1, "configs": {"retention.ms": "3600000"}}}
    )
    wait_for_topic(broker.bootstrap, name, 2)
    assert name in kp_admin.list_topics()

    failures = {
        "existing": ({name: {"num_partitions": 1, "replication_factor": 1}}, errors.TopicAlreadyExistsError),
        "rf3": (
            {unique("rf3"): {"num_partitions": 1, "replication_factor": 3}},
            errors.InvalidReplicationFactorError,
        ),
        "bad-config": (
            {
                unique("badcfg"): {
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "configs": {"retention.ms": "abc"},
                }
            },
            errors.InvalidConfigurationError,
        ),
        "bad-name": ({"bad/name": {"num_partitions": 1, "replication_factor": 1}}, errors.InvalidTopicError),
    }
    for label, (request, error) in failures.items():
        with pytest.raises(error):
            kp_admin.create_topics(request)
        raised = kp_admin.create_topics(request, raise_errors=False)
        assert [t["error_code"] for t in raised["topics"]] == [error.errno], label

    kp_admin.create_partitions({name: 4})
    wait_for_topic(broker.bootstrap, name, 4)
    with pytest.raises(errors.InvalidPartitionsError):
        kp_admin.create_partitions({name: 3})

    kp_admin.delete_topics([name])
    _poll("topic gone from list_topics", lambda: name not in kp_admin.list_topics())
    with pytest.raises(errors.UnknownTopicOrPartitionError):
        kp_admin.delete_topics([name])


def test_kafka_python_describe_configs_and_cluster(broker, kp_admin, topic_name):
    from kafka.admin import ConfigResource, ConfigResourceType

    Confluent.create_topic(broker.bootstrap, topic_name, 1)  # seen here through a second library

    cluster = kp_admin.describe_cluster()
    (node,) = cluster["brokers"]
    assert f"{node['host']}:{node['port']}" == broker.bootstrap
    assert cluster["cluster_id"] and cluster["controller_id"] == node["broker_id"]

    described = kp_admin.describe_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, topic_name),
            ConfigResource(ConfigResourceType.BROKER, str(node["broker_id"])),
        ],
        config_filter="all",
    )
    topic_cfg = _find_configs(described, "topic", topic_name)
    broker_cfg = _find_configs(described, "broker", str(node["broker_id"]))
    assert _value(topic_cfg["retention.ms"]) == "604800000"
    assert _value(topic_cfg["cleanup.policy"]) == "delete"
    assert _value(broker_cfg["num.partitions"]) == "1"
    assert _value(broker_cfg["message.max.bytes"]) == "1048588"


def _find_configs(described, kind, name):
    for key, by_name in described.items():
        if str(key).lower().endswith(kind):
            return by_name[name]
    raise AssertionError(f"no {kind} configs in {described!r}"[:2000])


def _value(entry):
    return entry["value"] if isinstance(entry, dict) else entry


def test_deleting_a_topic_drops_its_committed_offsets(broker, kp_admin, unique):
    from confluent_kafka import Consumer, TopicPartition

    doomed, kept, group = unique("doomed"), unique("kept"), unique("group")
    for name in (doomed, kept):
        Confluent.create_topic(broker.bootstrap, name, 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(doomed, 0, 3), TopicPartition(kept, 0, 5)], asynchronous=False)
    finally:
        c.close()

    def committed() -> dict[str, int]:
        return {tp.topic: m.offset for tp, m in kp_admin.list_group_offsets(group)[group].items()}

    assert committed() == {doomed: 3, kept: 5}
    admin = _admin(broker)  # kept referenced: a collected AdminClient fails its pending requests
    assert _error(admin.delete_topics([doomed])[doomed]) == "ok"
    _poll("the deleted topic's offsets gone", lambda: committed() == {kept: 5})
