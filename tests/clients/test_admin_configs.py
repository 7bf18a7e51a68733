"""Config admin APIs (IncrementalAlterConfigs, AlterConfigs, DescribeConfigs) against Odradek and Apache
Kafka 4.4 with the same assertions: confluent-kafka's AdminClient for topics and brokers, the wire client
for GROUP resources (librdkafka 2.16 sends the ACL resource type 3 for a group, not 32), the Java
AdminClient for the whole scenario, and an Odradek restart for durability.

Kafka applies an altered topic config to its logs asynchronously, so effects are polled (bounded).
Broker-level changes on the shared brokers use values that change no other test's outcome and are
deleted again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kclients import wait_for_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.java import java_main  # noqa: E402
from support.kit import wait_until  # noqa: E402
from wire import WireClient  # noqa: E402

TIMEOUT = 20.0

# What Kafka 4.4 lists for a topic created without overrides (DescribeConfigs, all keys).
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "errors.deadletterqueue.group.enable",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.decompressed.message.bytes",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
}
# What Kafka 4.4 lists for a group (KIP-848 consumer, share and streams group configs).
KAFKA_GROUP_CONFIGS = {
    "consumer.assignment.interval.ms",
    "consumer.heartbeat.interval.ms",
    "consumer.session.timeout.ms",
    "errors.deadletterqueue.copy.record.enable",
    "errors.deadletterqueue.topic.name",
    "share.assignment.interval.ms",
    "share.auto.offset.reset",
    "share.delivery.count.limit",
    "share.heartbeat.interval.ms",
    "share.isolation.level",
    "share.partition.max.record.locks",
    "share.record.lock.duration.ms",
    "share.renew.acknowledge.enable",
    "share.session.timeout.ms",
    "streams.assignment.interval.ms",
    "streams.assignor.name",
    "streams.heartbeat.interval.ms",
    "streams.initial.rebalance.delay.ms",
    "streams.num.standby.replicas",
    "streams.rack.aware.assignment.tags",
    "streams.session.timeout.ms",
}

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
TOPIC, BROKER, GROUP = 2, 4, 32
INVALID_CONFIG, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION = 40, 42, 3


def _admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def _create(bootstrap, topic, config=None):
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, config=config or {})])[topic].result(TIMEOUT)
    wait_for_topic(bootstrap, topic, 1)


def _describe(admin, rtype, name, synonyms=False):
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(rtype, name)
    return admin.describe_configs([res])[res].result(TIMEOUT)  # librdkafka always asks for synonyms


def _alter(admin, rtype, name, ops, validate_only=False):
    """IncrementalAlterConfigs through confluent-kafka; "ok" or the error's name."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    kinds = {SET: AlterConfigOpType.SET, DELETE: AlterConfigOpType.DELETE}
    kinds |= {APPEND: AlterConfigOpType.APPEND, SUBTRACT: AlterConfigOpType.SUBTRACT}
    entries = [ConfigEntry(n, v, incremental_operation=kinds[op]) for n, op, v in ops]
    res = ConfigResource(rtype, name, incremental_configs=entries)
    futures = admin.incremental_alter_configs([res], validate_only=validate_only)
    try:
        futures[res].result(TIMEOUT)
    except KafkaException as e:
        return e.args[0].name()
    return "ok"


def _wire_alter(bootstrap, rtype, name, ops, *, legacy=False):
    """(error code, message) of one resource's IncrementalAlterConfigs (or AlterConfigs) on the wire."""
    from kio.schema.alter_configs.v2.request import AlterConfigsRequest
    from kio.schema.incremental_alter_configs.v1.request import IncrementalAlterConfigsRequest

    with WireClient(bootstrap) as w:
        if legacy:
            configs = [{"name": n, "value": v} for n, _, v in ops]
            cls = AlterConfigsRequest
        else:
            configs = [{"name": n, "config_operation": op, "value": v} for n, op, v in ops]
            cls = IncrementalAlterConfigsRequest
        r = w.request(
            cls,
            {
                "resources": [{"resource_type": rtype, "resource_name": name, "configs": configs}],
                "validate_only": False,
            },
        )
    return int(r.responses[0].error_code), r.responses[0].error_message


def _twice(bootstrap, topic):
    """Error codes of an IncrementalAlterConfigs naming the same topic in two resources."""
    from kio.schema.incremental_alter_configs.v1.request import IncrementalAlterConfigsRequest

    resource = {
        "resource_type": TOPIC,
        "resource_name": topic,
        "configs": [{"name": "retention.ms", "config_operation": SET, "value": "1000"}],
    }
    with WireClient(bootstrap) as w:
        r = w.request(
            IncrementalAlterConfigsRequest, {"resources": [resource, resource], "validate_only": False}
        )
    return [int(x.error_code) for x in r.responses]


def _wire_describe(bootstrap, rtype, name, *, docs=False):
    from kio.schema.describe_configs.v4.request import DescribeConfigsRequest

    with WireClient(bootstrap) as w:
        r = w.request(
            DescribeConfigsRequest,
            {
                "resources": [{"resource_type": rtype, "resource_name": name, "configuration_keys": None}],
                "include_synonyms": True,
                "include_documentation": docs,
            },
        )
    result = r.results[0]
    return int(result.error_code), {c.name: c for c in result.configs}


def _node_id(admin):
    return admin.describe_cluster().result(TIMEOUT).nodes[0].id


def _poll(what: str, fn) -> object:
    return wait_until(fn, TIMEOUT, what, interval=0.1)


def _produce_error(bootstrap, topic, size):
    """The name of the broker's answer to one keyed message of ``size`` bytes ("ok" when stored)."""
    from confluent_kafka import Producer

    outcome = []
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 0, "message.max.bytes": 10_000_000})
    p.produce(
        topic, b"x" * size, key=b"k", on_delivery=lambda err, msg: outcome.append(err.name() if err else "ok")
    )
    p.flush(TIMEOUT)
    return outcome[0] if outcome else "no answer"


# ---------------------------------------------------------------------------------------------------


def test_topic_config_names_are_kafkas(broker, topic_name):
    from confluent_kafka.admin import ConfigSource, ResourceType

    _create(broker.bootstrap, topic_name)
    configs = _describe(_admin(broker.bootstrap), ResourceType.TOPIC, topic_name, synonyms=True)
    assert set(configs) == KAFKA_TOPIC_CONFIGS
    segment = configs["segment.bytes"]
    assert (segment.value, segment.source, segment.is_read_only) == (
        "1073741824",
        ConfigSource.DEFAULT_CONFIG.value,
        False,
    )
    assert [(s.name, s.source) for s in segment.synonyms.values()] == [
        ("log.segment.bytes", ConfigSource.DEFAULT_CONFIG.value)
    ]
    code, documented = _wire_describe(broker.bootstrap, TOPIC, topic_name, docs=True)
    assert code == 0 and documented["retention.ms"].documentation
    assert _wire_describe(broker.bootstrap, TOPIC, topic_name)[1]["retention.ms"].documentation is None
    assert documented["cleanup.policy"].config_type == 7  # LIST
    assert documented["max.message.bytes"].config_type == 3  # INT
    assert documented["retention.ms"].config_type == 5  # LONG


def test_incremental_operations_on_a_topic(broker, topic_name):
    from confluent_kafka.admin import ConfigSource, ResourceType

    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name)
    assert (
        _alter(
            admin,
            TOPIC,
            topic_name,
            [("retention.ms", SET, "3600000"), ("cleanup.policy", APPEND, "compact")],
        )
        == "ok"
    )
    configs = _describe(admin, ResourceType.TOPIC, topic_name, synonyms=True)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"
    synonyms = [(s.name, s.value, s.source) for s in configs["cleanup.policy"].synonyms.values()]
    assert synonyms[0] == ("cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert synonyms[-1] == ("log.cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG.value)

    assert _alter(admin, TOPIC, topic_name, [("cleanup.policy", APPEND, "compact")]) == "ok"  # no duplicate
    assert _describe(admin, ResourceType.TOPIC, topic_name)["cleanup.policy"].value == "delete,compact"
    assert _alter(admin, TOPIC, topic_name, [("cleanup.policy", SUBTRACT, "delete")]) == "ok"
    assert _describe(admin, ResourceType.TOPIC, topic_name)["cleanup.policy"].value == "compact"
    assert _alter(admin, TOPIC, topic_name, [("retention.ms", DELETE, None)]) == "ok"
    after = _describe(admin, ResourceType.TOPIC, topic_name)
    assert after["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after["cleanup.policy"].value == "compact"

    assert _alter(admin, TOPIC, topic_name, [("retention.ms", SET, "5000")], validate_only=True) == "ok"
    assert _describe(admin, ResourceType.TOPIC, topic_name)["retention.ms"].value == "604800000"


def test_alter_configs_replaces_the_whole_set(broker, topic_name):
    from confluent_kafka.admin import ConfigSource, ResourceType

    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name, {"retention.ms": "3600000", "max.message.bytes": "50000"})
    assert _wire_alter(broker.bootstrap, TOPIC, topic_name, [("segment.ms", SET, "100000")], legacy=True) == (
        0,
        None,
    )
    configs = _describe(admin, ResourceType.TOPIC, topic_name)
    assert (configs["segment.ms"].value, configs["segment.ms"].source) == (
        "100000",
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
    )
    for gone in ("retention.ms", "max.message.bytes"):
        assert configs[gone].source == ConfigSource.DEFAULT_CONFIG.value, gone
    assert configs["max.message.bytes"].value == "1048588"


def test_bad_input_gets_kafkas_error_codes(broker, topic_name):
    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name)
    b = broker.bootstrap
    assert _alter(admin, TOPIC, topic_name, [("no.such.config", SET, "1")]) == "INVALID_CONFIG"
    assert _alter(admin, TOPIC, topic_name, [("retention.ms", SET, "soon")]) == "INVALID_CONFIG"
    assert _alter(admin, TOPIC, topic_name, [("segment.bytes", SET, "100")]) == "INVALID_CONFIG"
    assert _alter(admin, TOPIC, topic_name, [("retention.ms", APPEND, "5")]) == "INVALID_CONFIG"
    assert (
        _alter(admin, TOPIC, topic_name + "-missing", [("retention.ms", SET, "1")]) == "UNKNOWN_TOPIC_OR_PART"
    )
    assert _wire_alter(b, TOPIC, topic_name, [("retention.ms", SET, None)])[0] == INVALID_REQUEST
    assert _wire_alter(b, TOPIC, topic_name, [("retention.ms", SET, "1"), ("retention.ms", SET, "2")])[0] == (
        INVALID_REQUEST
    )
    assert _wire_alter(b, 99, topic_name, [("retention.ms", SET, "1")])[0] == INVALID_REQUEST
    assert _wire_alter(b, TOPIC, topic_name, [("cleanup.policy", APPEND, None)])[0] == INVALID_REQUEST
    assert _wire_alter(b, TOPIC, topic_name, [("cleanup.policy", APPEND, "foo")])[0] == INVALID_CONFIG
    assert _twice(b, topic_name) == [INVALID_REQUEST, INVALID_REQUEST]  # one resource named twice
    assert _wire_alter(b, TOPIC, topic_name, [("no.such.config", SET, "1")], legacy=True)[0] == INVALID_CONFIG
    node = str(_node_id(admin))
    assert _alter(admin, BROKER, node, [("num.partitions", SET, "3")]) == "INVALID_REQUEST"  # not dynamic
    assert _alter(admin, BROKER, node, [("log.dirs", SET, "/elsewhere")]) == "INVALID_REQUEST"
    assert _alter(admin, BROKER, node, [("num.partitions", DELETE, None)]) == "ok"  # nothing to delete
    assert _alter(admin, BROKER, node, [("log.retention.ms", SET, "soon")]) == "INVALID_REQUEST"
    assert _wire_alter(b, BROKER, "12345", [("log.retention.ms", SET, "1")])[0] == INVALID_REQUEST
    assert _wire_alter(b, BROKER, "abc", [("log.retention.ms", SET, "1")])[0] == INVALID_REQUEST
    assert _wire_describe(b, BROKER, "12345")[0] == INVALID_REQUEST
    # nothing above changed the topic
    assert _wire_describe(b, TOPIC, topic_name)[1]["retention.ms"].config_source == 5


def test_max_message_bytes_applies_live(broker, topic_name):
    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name)
    assert _produce_error(broker.bootstrap, topic_name, 5000) == "ok"
    assert _alter(admin, TOPIC, topic_name, [("max.message.bytes", SET, "2000")]) == "ok"
    _poll(
        "a 5000-byte batch refused",
        lambda: _produce_error(broker.bootstrap, topic_name, 5000) == "MSG_SIZE_TOO_LARGE",
    )
    assert _produce_error(broker.bootstrap, topic_name, 100) == "ok"


def test_dynamic_broker_configs_per_broker_and_cluster_default(broker, topic_name):
    """A per-broker value and a cluster-wide default, seen with their sources in the broker's and a
    topic's configs, then deleted (values chosen to change nothing else on the shared broker)."""
    from confluent_kafka.admin import ConfigSource, ResourceType

    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name)
    node = str(_node_id(admin))
    try:
        assert _alter(admin, BROKER, node, [("log.retention.ms", SET, "604800001")]) == "ok"
        assert _wire_alter(broker.bootstrap, BROKER, "", [("log.segment.delete.delay.ms", SET, "60001")]) == (
            0,
            None,
        )
        configs = _describe(admin, ResourceType.BROKER, node, synonyms=True)
        retention = configs["log.retention.ms"]
        assert (retention.value, retention.source, retention.is_read_only) == (
            "604800001",
            ConfigSource.DYNAMIC_BROKER_CONFIG.value,
            False,
        )
        assert configs["num.partitions"].is_read_only

        def broker_sees_default():  # Kafka shows a new cluster-wide default on a broker within a second
            delay = _describe(admin, ResourceType.BROKER, node)["log.segment.delete.delay.ms"]
            return (delay.value, delay.source) == ("60001", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)

        _poll("the cluster-wide default on the broker", broker_sees_default)

        def topic_sees_it():
            t = _describe(admin, ResourceType.TOPIC, topic_name)
            return (t["retention.ms"].value, t["retention.ms"].source, t["file.delete.delay.ms"].source) == (
                "604800001",
                ConfigSource.DYNAMIC_BROKER_CONFIG.value,
                ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
            )

        _poll("the topic's retention.ms from the broker's dynamic config", topic_sees_it)
    finally:
        assert _alter(admin, BROKER, node, [("log.retention.ms", DELETE, None)]) == "ok"
        assert _wire_alter(broker.bootstrap, BROKER, "", [("log.segment.delete.delay.ms", DELETE, None)]) == (
            0,
            None,
        )
    configs = _describe(admin, ResourceType.BROKER, node)
    assert configs["log.retention.ms"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value


def test_group_configs_altered_and_described(broker, group_name):
    b = broker.bootstrap
    code, configs = _wire_describe(b, GROUP, group_name)
    assert code == 0 and set(configs) == KAFKA_GROUP_CONFIGS
    assert (
        configs["consumer.session.timeout.ms"].value,
        configs["consumer.session.timeout.ms"].config_source,
    ) == (
        "45000",
        5,
    )
    assert _wire_alter(b, GROUP, group_name, [("consumer.session.timeout.ms", SET, "50000")]) == (0, None)
    _, configs = _wire_describe(b, GROUP, group_name)
    session = configs["consumer.session.timeout.ms"]
    assert (session.value, session.config_source) == ("50000", 8)  # GROUP_CONFIG
    assert [(s.name, s.source) for s in session.synonyms] == [
        ("consumer.session.timeout.ms", 8),
        ("group.consumer.session.timeout.ms", 5),
    ]
    assert (
        _wire_alter(b, GROUP, group_name, [("consumer.session.timeout.ms", SET, "1000")])[0] == INVALID_CONFIG
    )
    assert (
        _wire_alter(b, GROUP, group_name, [("consumer.heartbeat.interval.ms", SET, "100000")])[0]
        == INVALID_CONFIG
    )
    assert _wire_alter(b, GROUP, group_name, [("no.such.group.config", SET, "1")])[0] == INVALID_CONFIG
    assert _wire_alter(b, GROUP, "", [("consumer.session.timeout.ms", SET, "50000")])[0] == INVALID_REQUEST
    assert _wire_describe(b, GROUP, group_name)[1]["consumer.session.timeout.ms"].value == "50000"


def test_group_heartbeat_interval_used_by_the_coordinator(broker, group_name, topic_name):
    """The heartbeat interval a KIP-848 member is given comes from its group's config."""
    import datetime
    import itertools

    from kio.schema.consumer_group_heartbeat.v1.request import ConsumerGroupHeartbeatRequest
    from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest

    b = broker.bootstrap
    assert _wire_alter(b, GROUP, group_name, [("consumer.heartbeat.interval.ms", SET, "7000")]) == (0, None)
    members = itertools.count()

    def interval_ms():
        with WireClient(b) as w:
            # Kafka creates __consumer_offsets on the first FindCoordinator; until it is loaded, heartbeats
            # answer NOT_COORDINATOR
            w.request(FindCoordinatorRequest, {"key_type": 0, "coordinator_keys": (group_name,)})
            r = w.request(
                ConsumerGroupHeartbeatRequest,
                {
                    "group_id": group_name,
                    "member_id": f"member-{next(members)}",
                    "member_epoch": 0,
                    "rebalance_timeout": datetime.timedelta(seconds=30),
                    "subscribed_topic_names": (topic_name,),
                    "topic_partitions": (),
                },
            )
        if int(r.error_code) != 0:
            return None
        return int(r.heartbeat_interval.total_seconds() * 1000)

    _poll("a member given the group's heartbeat interval", lambda: interval_ms() == 7000)


def test_configs_survive_a_restart(odradek_factory, topic_name, group_name):
    """Topic, broker (per node and cluster-wide) and group configs are durable and applied after a
    restart (a batch over the altered max.message.bytes is still refused)."""
    from confluent_kafka.admin import ConfigSource, ResourceType

    od = odradek_factory()
    admin = _admin(od.bootstrap)
    _create(od.bootstrap, topic_name)
    node = str(_node_id(admin))
    assert (
        _alter(
            admin,
            TOPIC,
            topic_name,
            [("max.message.bytes", SET, "2000"), ("cleanup.policy", APPEND, "compact")],
        )
        == "ok"
    )
    assert _alter(admin, BROKER, node, [("log.retention.ms", SET, "3600000")]) == "ok"
    assert _wire_alter(od.bootstrap, BROKER, "", [("log.retention.bytes", SET, "1000000000")]) == (0, None)
    assert _wire_alter(od.bootstrap, GROUP, group_name, [("consumer.session.timeout.ms", SET, "55000")]) == (
        0,
        None,
    )
    od.restart()
    admin = _admin(od.bootstrap)
    configs = _describe(admin, ResourceType.TOPIC, topic_name)
    assert configs["max.message.bytes"].value == "2000"
    assert configs["cleanup.policy"].value == "delete,compact"
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "3600000",
        ConfigSource.DYNAMIC_BROKER_CONFIG.value,
    )
    assert (configs["retention.bytes"].value, configs["retention.bytes"].source) == (
        "1000000000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
    )
    assert _wire_describe(od.bootstrap, GROUP, group_name)[1]["consumer.session.timeout.ms"].value == "55000"
    assert _produce_error(od.bootstrap, topic_name, 5000) == "MSG_SIZE_TOO_LARGE"
    assert _produce_error(od.bootstrap, topic_name, 100) == "ok"


# ---------------------------------------------------------------------------------------------------
# Java AdminClient (Kafka 4.4 client): tests/java/src/main/java/odradek/admin/AdminScenario.java


@pytest.fixture(scope="session")
def java_admin() -> list[str]:
    """The ``java -cp ...`` argv prefix for odradek.admin.AdminScenario (built with Maven unless current)."""
    return java_main("odradek.admin.AdminScenario")


def test_java_admin_client(broker, java_admin, topic_name, group_name):
    from confluent_kafka import Producer

    _create(broker.bootstrap, topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    for i in range(10):
        p.produce(topic_name, f"v{i}".encode(), partition=0)
    assert p.flush(TIMEOUT) == 0
    proc = subprocess.run(
        [*java_admin, broker.bootstrap, topic_name, group_name],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "bad_value": "InvalidConfigurationException",
        "cleanup_policy": "delete,compact",
        "delete_beyond_end": "OffsetOutOfRangeException",
        "elect_preferred": "ElectionNotNeededException",
        "group_heartbeat": "6000 DYNAMIC_GROUP_CONFIG",
        "group_session": "45000",
        "log_dirs": 1,
        "low_watermark": 4,
        "replica": "lag=0 future=false sized=true",
        "retention_ms": "3600000 DYNAMIC_TOPIC_CONFIG",
        "segment_bytes_source": "DEFAULT_CONFIG",
        "topic_config_count": len(KAFKA_TOPIC_CONFIGS),
        "total_bytes_known": True,
        "unknown_config": "InvalidConfigurationException",
        "unknown_topic": "UnknownTopicOrPartitionException",
    }


def test_broker_message_max_bytes_applies_live(broker, topic_name):
    """A per-broker message.max.bytes reaches every topic without its own max.message.bytes at once
    (Kafka: within moments), and deleting it restores the default."""
    admin = _admin(broker.bootstrap)
    _create(broker.bootstrap, topic_name)
    node = str(_node_id(admin))
    try:
        assert _alter(admin, BROKER, node, [("message.max.bytes", SET, "3000")]) == "ok"
        _poll(
            "a 5000-byte batch refused by the broker-wide limit",
            lambda: _produce_error(broker.bootstrap, topic_name, 5000) == "MSG_SIZE_TOO_LARGE",
        )
    finally:
        assert _alter(admin, BROKER, node, [("message.max.bytes", DELETE, None)]) == "ok"
    _poll("the default limit back", lambda: _produce_error(broker.bootstrap, topic_name, 5000) == "ok")
