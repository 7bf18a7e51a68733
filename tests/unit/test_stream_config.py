"""Each guarantee's client settings, and the settings that would break it refused in one line."""

from __future__ import annotations

import pytest

from odradek.stream import App, ErrorPolicy, GuaranteeConfigError
from odradek.stream.config import Guarantee, client_configs


def configs(g: str, consumer=None, producer=None, instance_id=None):
    return client_configs(
        Guarantee.parse(g),
        bootstrap_servers="127.0.0.1:1",
        group_id="g",
        instance_id=instance_id,
        transactional_id="g-w1" if g == "exactly-once" else None,
        consumer_config=consumer,
        producer_config=producer,
    )


def test_at_most_once_settings():
    c, p = configs("at-most-once")
    assert c["enable.auto.commit"] is False  # the library commits synchronously before processing
    assert p["acks"] == 0 and p["enable.idempotence"] is False
    _, p = configs("at-most-once", producer={"acks": 1})
    assert p["acks"] == 1


def test_at_least_once_settings():
    c, p = configs("at-least-once", instance_id="w1")
    assert c["enable.auto.commit"] is False
    assert c["group.instance.id"] == "w1"
    assert p["acks"] == "all" and p["enable.idempotence"] is True
    assert "transactional.id" not in p


def test_exactly_once_settings():
    c, p = configs("exactly-once")
    assert c["isolation.level"] == "read_committed" and c["enable.auto.commit"] is False
    assert p["transactional.id"] == "g-w1" and p["enable.idempotence"] is True and p["acks"] == "all"
    assert p["transaction.timeout.ms"] == 10000
    assert p["metadata.recovery.strategy"] == "none"  # see config.py: librdkafka hang after re-bootstrap


def test_user_settings_pass_through():
    c, p = configs("at-least-once", consumer={"fetch.wait.max.ms": 10}, producer={"linger.ms": 50})
    assert c["fetch.wait.max.ms"] == 10 and p["linger.ms"] == 50


@pytest.mark.parametrize(
    "guarantee, side, key, value, words",
    [
        ("at-most-once", "consumer", "enable.auto.commit", True, "auto-commit"),
        ("at-least-once", "consumer", "enable.auto.commit", "true", "auto-commit"),
        ("at-least-once", "producer", "acks", 1, "leader alone"),
        ("at-least-once", "producer", "acks", "0", "leader alone"),
        ("at-least-once", "producer", "transactional.id", "x", "exactly-once"),
        ("exactly-once", "consumer", "isolation.level", "read_uncommitted", "aborted"),
        ("exactly-once", "consumer", "enable.auto.commit", True, "inside the transaction"),
        ("exactly-once", "producer", "enable.idempotence", False, "idempotent"),
        ("exactly-once", "producer", "acks", 1, "acks=all"),
        ("exactly-once", "producer", "transactional.id", "mine", "instance_id"),
    ],
)
def test_a_setting_that_breaks_the_guarantee_is_refused_in_one_line(guarantee, side, key, value, words):
    kw = {f"{side}_config": {key: value}}
    with pytest.raises(GuaranteeConfigError) as e:
        App("127.0.0.1:1", "g", guarantee, **kw)
    text = str(e.value)
    assert "\n" not in text
    assert key in text and guarantee in text and words in text


@pytest.mark.parametrize("key", ["group.id", "bootstrap.servers", "group.instance.id"])
def test_settings_the_app_owns_are_refused(key):
    with pytest.raises(GuaranteeConfigError, match=key):
        App("127.0.0.1:1", "g", consumer_config={key: "x"})


def test_unknown_guarantee_and_missing_arguments():
    with pytest.raises(GuaranteeConfigError, match="'exactly-twice' is not one of"):
        App("127.0.0.1:1", "g", "exactly-twice")
    with pytest.raises(GuaranteeConfigError, match="group_id"):
        App("127.0.0.1:1", "")


def test_stable_transactional_id_per_named_instance():
    assert App("127.0.0.1:1", "billing", "exactly-once", instance_id="w3").transactional_id == "billing-w3"
    a = App("127.0.0.1:1", "billing", "exactly-once")
    b = App("127.0.0.1:1", "billing", "exactly-once")
    assert a.transactional_id != b.transactional_id  # unnamed: random, documented as slower to recover
    assert App("127.0.0.1:1", "billing", "at-least-once", instance_id="w3").transactional_id is None


def test_exactly_once_refuses_kafka_and_sql_sinks_in_one_app(tmp_path):
    import sqlalchemy as sa

    from odradek.stream.sql import SqlSink

    app = App("127.0.0.1:1", "g", "exactly-once")
    app.processor(source="a", sink="out")(lambda m: m.value)
    sink = SqlSink(
        f"sqlite:///{tmp_path / 'x.db'}",
        "t",
        key=["id"],
        columns=[sa.Column("id", sa.String(64), primary_key=True)],
    )
    with pytest.raises(GuaranteeConfigError, match="both to Kafka and to SQL"):
        app.processor(source="b", sink=sink)(lambda m: {"id": "x"})


def test_processor_arguments_are_checked():
    app = App("127.0.0.1:1", "g")
    with pytest.raises(TypeError, match="sink must be"):
        app.processor(source="a", sink=42)
    with pytest.raises(ValueError, match="source"):
        app.processor(source=[])
    app.processor(source="a", sink="b", name="p")(lambda m: None)
    with pytest.raises(ValueError, match="named 'p'"):
        app.processor(source="c", sink="d", name="p")(lambda m: None)


def test_error_policy_backoff_and_validation():
    p = ErrorPolicy(retries=5, backoff_ms=100, backoff_max_ms=350)
    assert [p.backoff_s(i) for i in (1, 2, 3, 4)] == [0.1, 0.2, 0.35, 0.35]
    assert p.dead_letter_topic_for("orders") == "orders.dead-letter"
    with pytest.raises(ValueError):
        ErrorPolicy(on_failure="ignore")
    with pytest.raises(ValueError):
        ErrorPolicy(retries=-1)


def test_run_without_processors_is_an_error():
    from odradek.stream import StreamError

    with pytest.raises(StreamError, match="no processors"):
        App("127.0.0.1:1", "g").run(exit_on_error=False)
