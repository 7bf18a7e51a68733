"""``odradek.testing``: the in-process EmbeddedBroker and the pytest plugin users get with the package."""

from __future__ import annotations

import re
import socket
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from odradek.testing import EmbeddedBroker
from support.kit import read_values

pytest_plugins = ["pytester"]


def produce(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    offsets: list[int] = []

    def on_delivery(err, msg) -> None:
        assert err is None, err
        offsets.append(msg.offset())

    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=on_delivery)
    assert p.flush(20) == 0
    return offsets


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    return read_values(bootstrap, topic, "embedded-tests")


def accepts(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_round_trip_in_a_with_block(unique):
    topic = unique("emb")
    values = [b"value-%d" % i for i in range(20)]
    with EmbeddedBroker() as broker:
        assert produce(broker.bootstrap_servers, topic, values) == list(range(20))
        assert read_all(broker.bootstrap_servers, topic) == values


def test_bootstrap_servers_format_and_lifecycle():
    broker = EmbeddedBroker()
    with pytest.raises(RuntimeError):
        _ = broker.bootstrap_servers  # not started yet
    with broker:
        bootstrap = broker.bootstrap_servers
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", bootstrap)
        assert m, bootstrap
        assert 0 < int(m.group(1)) < 65536
        assert accepts(bootstrap)
        data_dir = broker.data_dir
        assert data_dir.is_dir()
    assert not accepts(bootstrap), "the port still accepts connections after the with block"
    assert not data_dir.exists(), "the temporary data directory was not removed on exit"


def test_exception_in_the_block_still_stops_and_cleans_up():
    with pytest.raises(ZeroDivisionError), EmbeddedBroker() as broker:
        bootstrap, data_dir = broker.bootstrap_servers, broker.data_dir
        1 / 0  # noqa: B018
    assert not accepts(bootstrap)
    assert not data_dir.exists()


def test_two_brokers_at_once_are_independent(unique):
    topic = unique("two")
    with EmbeddedBroker() as a, EmbeddedBroker() as b:
        assert a.bootstrap_servers != b.bootstrap_servers
        assert a.data_dir != b.data_dir
        produce(a.bootstrap_servers, topic, [b"only-in-a"])
        produce(b.bootstrap_servers, topic, [b"b1", b"b2"])
        assert read_all(a.bootstrap_servers, topic) == [b"only-in-a"]
        assert read_all(b.bootstrap_servers, topic) == [b"b1", b"b2"]
        dirs = (a.data_dir, b.data_dir)
    assert not any(d.exists() for d in dirs)


def test_settings_are_applied(unique):
    topic = unique("settings")
    with EmbeddedBroker(settings={"num.partitions": 3}) as broker:
        produce(broker.bootstrap_servers, topic, [b"x"])
        md = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(topic, timeout=10)
        assert len(md.topics[topic].partitions) == 3


def test_given_data_dir_is_kept_and_reopened(tmp_path: Path, unique):
    topic = unique("keep")
    data_dir = tmp_path / "embedded-data"
    with EmbeddedBroker(data_dir=data_dir) as broker:
        produce(broker.bootstrap_servers, topic, [b"a", b"b"])
    assert data_dir.is_dir() and (data_dir / f"{topic}-0").is_dir(), "a caller's data dir must be kept"
    with EmbeddedBroker(data_dir=data_dir) as broker:
        assert read_all(broker.bootstrap_servers, topic) == [b"a", b"b"]
        assert produce(broker.bootstrap_servers, topic, [b"c"]) == [2]


def test_data_dir_in_use_raises_and_the_first_keeps_working(tmp_path: Path, unique):
    topic = unique("locked")
    data_dir = tmp_path / "shared"
    with EmbeddedBroker(data_dir=data_dir) as first:
        second = EmbeddedBroker(data_dir=data_dir)
        with pytest.raises(Exception, match="in use"):
            second.start()
        produce(first.bootstrap_servers, topic, [b"still", b"fine"])
        assert read_all(first.bootstrap_servers, topic) == [b"still", b"fine"]


def test_start_failure_is_raised_promptly(monkeypatch: pytest.MonkeyPatch):
    """A broker that cannot be built must make start() raise that error at once, not return after a
    30 s wait as if it had started (the caller then only sees "not running" on first use)."""
    import odradek.broker.server as server

    def broken_init(self, *args, **kwargs):
        raise OSError("simulated: the broker cannot be constructed")

    monkeypatch.setattr(server.Broker, "__init__", broken_init)
    broker = EmbeddedBroker()
    t0 = time.monotonic()
    try:
        with pytest.raises(OSError, match="simulated"):
            broker.start()
    finally:
        monkeypatch.undo()
        broker.stop()
    assert time.monotonic() - t0 < 10


# --------------------------------------------------------------------------------------------------
# The pytest plugin


def test_pytest11_entry_point_is_registered():
    eps = [ep for ep in entry_points(group="pytest11") if ep.name == "odradek"]
    assert eps, "no `pytest11` entry point named `odradek`: is the package installed (pip install -e .)?"
    assert eps[0].value == "odradek.testing"


INNER_TESTS = """
import re
from confluent_kafka import Consumer, Producer, TopicPartition

SEEN = []


def test_round_trip(odradek_broker):
    bootstrap = odradek_broker.bootstrap_servers
    assert re.fullmatch(r"127\\.0\\.0\\.1:\\d+", bootstrap)
    SEEN.append(bootstrap)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(3):
        p.produce("inner-topic", value=b"m%d" % i, partition=0)
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "inner", "enable.auto.commit": False})
    c.assign([TopicPartition("inner-topic", 0, 0)])
    got = []
    for _ in range(100):
        got += [m.value() for m in c.consume(3, 0.2) if m.error() is None]
        if len(got) >= 3:
            break
    c.close()
    assert got == [b"m0", b"m1", b"m2"]


def test_same_broker_for_the_session(odradek_broker):
    assert SEEN == [odradek_broker.bootstrap_servers]
"""


def test_plugin_fixture_without_a_conftest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """The fixture must come from the installed package's entry point alone: no conftest, no -p."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_inner=INNER_TESTS)
    assert not list(pytester.path.glob("conftest.py"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)


def test_plugin_fixture_is_missing_when_the_plugin_is_disabled(pytester: pytest.Pytester):
    """Control: with the `odradek` entry point blocked, the fixture is unknown (so it came from there)."""
    pytester.makepyfile(test_inner="def test_x(odradek_broker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:odradek", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'odradek_broker' not found*"])
