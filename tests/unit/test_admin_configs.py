"""Pure logic behind the config admin APIs: KIP-339 incremental operations, topic / dynamic broker / group
config validation, the broker's config layers and their sources, and OffsetForLeaderEpoch's answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.broker.handlers.describe_configs import broker_name_problem, group_config_entries
from odradek.broker.handlers.offset_for_leader_epoch import (
    FENCED_LEADER_EPOCH,
    UNKNOWN_LEADER_EPOCH,
    epoch_end,
)
from odradek.config import (
    APPEND,
    DEFAULT_CONFIG,
    DELETE,
    DYNAMIC_BROKER_CONFIG,
    DYNAMIC_DEFAULT_BROKER_CONFIG,
    GROUP_KEYS,
    SET,
    STATIC_BROKER_CONFIG,
    SUBTRACT,
    TOPIC_KEYS,
    BrokerConfig,
    ConfigError,
    ConfigRequestError,
    NotDynamic,
    UnknownOperation,
    apply_incremental,
    dynamic_broker_value,
    group_config_value,
    topic_config,
)


def _apply(current, ops, effective=None):
    defaults = {"cleanup.policy": "delete", **(effective or {})}
    return apply_incremental(
        current,
        ops,
        is_list=lambda n: n == "cleanup.policy",
        effective=lambda n: defaults.get(n, ""),
    )


def test_set_and_delete():
    assert _apply({"a": "1", "b": "2"}, [("a", SET, "3"), ("b", DELETE, None), ("c", DELETE, None)]) == {
        "a": "3"
    }


def test_append_starts_from_the_value_in_force_and_adds_no_duplicates():
    assert _apply({}, [("cleanup.policy", APPEND, "compact")]) == {"cleanup.policy": "delete,compact"}
    assert _apply({"cleanup.policy": "compact"}, [("cleanup.policy", APPEND, "compact,delete")]) == {
        "cleanup.policy": "compact,delete"
    }


def test_subtract_can_empty_a_list():
    assert _apply({"cleanup.policy": "delete,compact"}, [("cleanup.policy", SUBTRACT, "delete")]) == {
        "cleanup.policy": "compact"
    }
    assert _apply({}, [("cleanup.policy", SUBTRACT, "delete")]) == {"cleanup.policy": ""}


@pytest.mark.parametrize(
    ("ops", "error"),
    [
        ([("a", SET, "1"), ("a", DELETE, None)], ConfigRequestError),  # duplicate names
        ([("a", SET, None)], ConfigRequestError),  # null SET
        ([("cleanup.policy", APPEND, None)], ConfigRequestError),
        ([("retention.ms", APPEND, "1")], ConfigError),  # not a list
        ([("retention.ms", SUBTRACT, "1")], ConfigError),
        ([("a", 9, "1")], UnknownOperation),
    ],
)
def test_refused_operations(ops, error):
    with pytest.raises(error):
        _apply({}, ops)


@given(
    st.lists(st.sampled_from(["compact", "delete", "x"]), max_size=4),
    st.lists(st.sampled_from(["compact", "delete", "x"]), min_size=1, max_size=3),
)
def test_append_then_subtract_leaves_none_of_the_items(base, items):
    current = {"cleanup.policy": ",".join(base)}
    value = ",".join(items)
    appended = _apply(current, [("cleanup.policy", APPEND, value)])["cleanup.policy"].split(",")
    assert set(items) <= set(appended)
    assert len(appended) - len(set(appended)) <= len(base) - len(set(base))  # APPEND adds no duplicate
    removed = _apply({"cleanup.policy": ",".join(appended)}, [("cleanup.policy", SUBTRACT, value)])
    assert not set(items) & set(filter(None, removed["cleanup.policy"].split(",")))


def test_topic_config_validation_messages():
    assert topic_config("retention.ms", "1000") == 1000
    assert topic_config("cleanup.policy", " compact , delete") == "compact,delete"
    assert topic_config("cleanup.policy", "") == ""
    with pytest.raises(ConfigError, match="Not a number of type LONG"):
        topic_config("retention.ms", "soon")
    with pytest.raises(ConfigError, match="at least 1048576"):
        topic_config("segment.bytes", "100")
    with pytest.raises(ConfigError, match="Unknown topic config name"):
        topic_config("no.such", "1")
    with pytest.raises(ConfigError, match="Tiered Storage"):
        topic_config("remote.storage.enable", "true")


def test_every_topic_key_default_validates():
    config = BrokerConfig.build()
    for name, value in config.topic_defaults().items():
        topic_config(name, value)
    assert len(TOPIC_KEYS) == 37


def test_dynamic_broker_values():
    assert dynamic_broker_value("log.retention.ms", "5000") == 5000
    assert dynamic_broker_value("some.custom.key", "x") == "x"  # unknown names are kept, as Kafka keeps them
    with pytest.raises(NotDynamic):
        dynamic_broker_value("num.partitions", "3")
    with pytest.raises(NotDynamic):
        dynamic_broker_value("log.dirs", "/elsewhere")  # Kafka's, not Odradek's, and start-up only
    with pytest.raises(ConfigError, match="configuration message.max.bytes"):
        dynamic_broker_value("message.max.bytes", "-5")
    with pytest.raises(ConfigError, match="Not a number"):
        dynamic_broker_value("log.retention.ms", "soon")


def test_layers_and_sources():
    config = BrokerConfig.build(overrides=["log.retention.ms=1000"])
    assert config.source("log.retention.ms") == STATIC_BROKER_CONFIG
    assert config.source("log.retention.bytes") == DEFAULT_CONFIG
    config.apply_dynamic({"log.retention.ms": 2000}, {"log.retention.ms": 3000, "log.retention.bytes": 7})
    assert (config["log.retention.ms"], config.source("log.retention.ms")) == (2000, DYNAMIC_BROKER_CONFIG)
    assert (config["log.retention.bytes"], config.source("log.retention.bytes")) == (
        7,
        DYNAMIC_DEFAULT_BROKER_CONFIG,
    )
    assert config.topic_defaults()["retention.ms"] == 2000
    config.apply_dynamic({}, {})
    assert (config["log.retention.ms"], config.source("log.retention.ms")) == (1000, STATIC_BROKER_CONFIG)
    assert config["log.retention.bytes"] == -1


def test_group_configs_are_bounded_by_the_broker():
    config = BrokerConfig.build(overrides=["group.consumer.max.session.timeout.ms=90000"])
    assert group_config_value("consumer.session.timeout.ms", "90000", config) == 90000
    with pytest.raises(ConfigError, match="range 45000 to 90000"):
        group_config_value("consumer.session.timeout.ms", "1000", config)
    with pytest.raises(ConfigError, match="range 5000 to 15000"):
        group_config_value("consumer.heartbeat.interval.ms", "20000", config)
    with pytest.raises(ConfigError, match="Unknown group config name"):
        group_config_value("nope", "1", config)
    with pytest.raises(ConfigError, match="String must be one of"):
        group_config_value("share.isolation.level", "dirty", config)
    entries = {
        e["name"]: e
        for e in group_config_entries(config, {"consumer.session.timeout.ms": 50000}, None, False, True)
    }
    assert set(entries) == set(GROUP_KEYS)
    assert entries["consumer.session.timeout.ms"]["value"] == "50000"
    assert entries["consumer.session.timeout.ms"]["config_source"] == 8
    assert entries["consumer.heartbeat.interval.ms"]["config_source"] == DEFAULT_CONFIG


def test_broker_resource_names():
    assert broker_name_problem("", 1, describe=False) is None
    assert broker_name_problem("1", 1, describe=True) is None
    assert broker_name_problem("2", 1, describe=False) == "Unexpected broker id, expected 1, but received 2"
    assert "must be an integer" in broker_name_problem("x", 1, describe=False)


def test_epoch_end():
    assert epoch_end(-1, 0, 3, 10) == (0, 0, 10)
    assert epoch_end(0, 0, 3, 10) == (0, 0, 10)
    assert epoch_end(-1, 1, 3, 10) == (0, -1, -1)
    assert epoch_end(-1, -1, 3, 10) == (0, -1, -1)
    assert epoch_end(-1, -4, 3, 10) == (0, -4, 3)
    assert epoch_end(1, 0, 3, 10)[0] == UNKNOWN_LEADER_EPOCH
    assert epoch_end(-2, 0, 3, 10)[0] == FENCED_LEADER_EPOCH


def test_a_group_config_sets_that_groups_session_timeout_and_heartbeat_interval():
    import uuid

    from odradek.coordinator.consumer_groups import (
        ConsumerGroupConfig,
        ConsumerGroupCoordinator,
        HeartbeatRequest,
    )

    topic = uuid.UUID(int=1)
    coordinator = ConsumerGroupCoordinator(
        ConsumerGroupConfig(session_timeout_ms=45000, heartbeat_interval_ms=5000)
    )
    coordinator.set_group_config("tuned", 55000, 7000)

    def join(group):
        req = HeartbeatRequest(group, f"{group}-m", 0, None, None, 30000, ("t",), None, None, {})
        return coordinator.heartbeat(0, req, lambda n: (topic, 1) if n == "t" else None, lambda: ["t"])

    assert join("tuned").heartbeat_interval_ms == 7000
    assert join("plain").heartbeat_interval_ms == 5000
    expired = {group for group, _ in coordinator.tick(50000)}
    assert expired == {"plain"}  # 45 s passed: only the broker-default session has ended
    assert {group for group, _ in coordinator.tick(55001)} == {"tuned"}
    coordinator.set_group_config("tuned", None, None)
    assert coordinator.config_for("tuned") == coordinator.config


# --------------------------------------------------------------------------------------------------
# PartitionLog.advance_log_start (DeleteRecords) and reconfigure (altered topic configs)


def test_advance_log_start_deletes_whole_segments_only(tmp_path):
    from odradek.log.partition import OffsetOutOfRange

    from .batches import append_n, open_log, segment_files

    log = open_log(tmp_path / "t-0")
    stored = append_n(log, 40)  # two records per batch, 1 KiB segments: several segments
    segments = segment_files(tmp_path / "t-0")
    assert len(segments) > 3
    second_base = int(segments[2].stem)
    target = second_base + 3  # inside the third segment
    assert log.advance_log_start(target) == target
    remaining = segment_files(tmp_path / "t-0")
    assert int(remaining[0].stem) == second_base  # the segment holding the new start stays
    assert log.log_start_offset == target
    assert log.size_bytes == sum(s.stat().st_size for s in remaining)
    with pytest.raises(OffsetOutOfRange):
        log.read(target - 1, 1 << 20)
    served = [bytes(b) for b in log.read(target, 1 << 30)]
    assert served[0] in stored and served[-1] == stored[-1]  # from the batch holding the start on
    assert log.advance_log_start(1) == target  # never backwards
    assert log.advance_log_start(10**9) == log.log_end_offset  # never past the log end
    log.close(clean=True)


def test_reconfigure_applies_retention_at_the_next_run(tmp_path):
    from dataclasses import replace

    from .batches import SMALL, append_n, open_log

    log = open_log(tmp_path / "t-0")
    append_n(log, 80)
    assert log.enforce_retention(now_ms=0) == 0  # no size limit yet
    log.reconfigure(replace(SMALL, retention_bytes=3000))
    assert log.enforce_retention(now_ms=0) > 0
    assert log.size_bytes >= 3000
    log.close(clean=True)
