"""Tests of the test harness itself: Apache Kafka from Maven Central, kafkajs, Odradek processes."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support import deps
from support.kafka import KafkaBroker, run_kafka_tool
from support.node import json_lines, run_node
from support.odradek import OdradekBroker


def _confluent_roundtrip(
    bootstrap: str, topic: str, group: str, n: int = 10
) -> list[tuple[bytes, bytes, int]]:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    delivered: list[tuple[int, int]] = []
    errors: list[object] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.partition(), msg.offset()))

    for i in range(n):
        producer.produce(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == []
    assert sorted(o for _, o in delivered) == list(range(n))

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value(), msg.offset()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


# --------------------------------------------------------------------------------------------------
# Apache Kafka


def test_kafka_confluent_roundtrip(kafka: KafkaBroker, topic_name: str, group_name: str) -> None:
    assert kafka.bootstrap.startswith("127.0.0.1:")
    got = _confluent_roundtrip(kafka.bootstrap, topic_name, group_name, n=10)
    assert got == [(f"k-{i}".encode(), f"v-{i}".encode(), i) for i in range(10)]


def test_kafka_listens_on_loopback_only(kafka: KafkaBroker) -> None:
    props = kafka.properties_path.read_text()
    for line in props.splitlines():
        if line.startswith(("listeners=", "advertised.listeners=", "controller.quorum.voters=")):
            hosts = [
                part.split("//")[-1].rsplit(":", 1)[0].split("@")[-1]
                for part in line.split("=", 1)[1].split(",")
            ]
            assert set(hosts) == {"127.0.0.1"}, line


def test_kafka_tool_runs(kafka: KafkaBroker, topic_name: str) -> None:
    """A Kafka tool class on the shared classpath: VerifiableProducer prints JSON lines."""
    proc = run_kafka_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        "--bootstrap-server",
        kafka.bootstrap,
        "--topic",
        topic_name,
        "--max-messages",
        "5",
        "--acks",
        "-1",
        timeout=90,
    )
    events = json_lines(proc.stdout)
    names = [e.get("name") for e in events]
    assert names.count("producer_send_success") == 5, proc.stdout
    assert "shutdown_complete" in names


def test_kafka_private_broker_kill_restart_keeps_acked_data(
    kafka_factory, topic_name: str, group_name: str
) -> None:
    """A private Kafka (fsync per batch) survives SIGKILL + restart on the same port with its data."""
    from confluent_kafka import Consumer, Producer

    broker = kafka_factory({"log.flush.interval.messages": "1"})
    port = broker.port
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(3):
        p.produce(topic_name, value=f"durable-{i}".encode())
    assert p.flush(30) == 0
    assert broker.kill() == -signal.SIGKILL
    broker.start()
    assert broker.port == port
    c = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group_name, "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic_name])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < 3 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            values.append(m.value())
    c.close()
    assert values == [b"durable-0", b"durable-1", b"durable-2"]


# --------------------------------------------------------------------------------------------------
# kafkajs


def test_kafkajs_roundtrip_against_kafka(kafka: KafkaBroker, kafkajs: Path, topic_name: str) -> None:
    assert (kafkajs / "node_modules" / "kafkajs").is_dir()
    proc = run_node("roundtrip.js", kafka.bootstrap, topic_name, 10, timeout=90)
    (result,) = json_lines(proc.stdout)
    assert result["outcome"] == "done"
    assert [(m["key"], m["value"], m["offset"]) for m in result["consumed"]] == [
        (f"k-{i}", f"v-{i}", i) for i in range(10)
    ]


# --------------------------------------------------------------------------------------------------
# The missing-dependency rule


def test_missing_dependency_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="MISSING DEPENDENCY: `frobnicator`"):
        deps.missing_dependency("`frobnicator`")


def test_missing_dependency_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="MISSING DEPENDENCY: `frobnicator`"):
        deps.missing_dependency("`frobnicator`")


def test_require_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool = tmp_path / "frobnicator"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    assert deps.require_executable("frobnicator") == str(tool)
    with pytest.raises(pytest.skip.Exception, match="MISSING DEPENDENCY: `no-such-binary-xyz`"):
        deps.require_executable("no-such-binary-xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-binary-xyz"):
        deps.require_executable("no-such-binary-xyz")


def test_unique_names_differ(unique) -> None:
    names = {unique("topic") for _ in range(5)}
    assert len(names) == 5
    for name in names:
        assert len(name) < 200 and all(ch.isalnum() or ch == "-" for ch in name)


# --------------------------------------------------------------------------------------------------
# Odradek processes


def _accepts(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def test_odradek_start_stop_kill_restart(tmp_path: Path) -> None:
    broker = OdradekBroker(tmp_path / "data")
    with broker:
        assert broker.host == "127.0.0.1" and broker.port and broker.port > 0
        assert broker.running and broker.pid
        assert _accepts(broker.bootstrap)
        port = broker.port

        assert broker.kill() == -signal.SIGKILL
        assert not broker.running
        assert not _accepts(broker.bootstrap)

        broker.restart()  # same data dir, same port
        assert broker.port == port and broker.running
        assert _accepts(broker.bootstrap)

        assert broker.stop() == 0, f"SIGTERM should be a clean shutdown; log:\n{broker.log_path.read_text()}"
        broker.restart(hard=True)
        assert broker.port == port and _accepts(broker.bootstrap)
    assert not broker.running
    assert broker.returncode == 0
    assert (tmp_path / "data.log").is_file()


def test_odradek_start_failure_reports_stderr(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port = blocker.getsockname()[1]
        broker = OdradekBroker(tmp_path / "data", listen=f"127.0.0.1:{port}", start_timeout=20)
        with pytest.raises(RuntimeError, match="odradek"):
            broker.start()
        assert not broker.running
    finally:
        blocker.close()


def test_fresh_odradek_fixture_is_private(fresh_odradek: OdradekBroker, odradek_factory) -> None:
    other = odradek_factory()
    assert fresh_odradek.port != other.port
    assert fresh_odradek.data_dir != other.data_dir
    assert _accepts(fresh_odradek.bootstrap) and _accepts(other.bootstrap)


def test_broker_target(broker) -> None:
    assert broker.kind in ("odradek", "kafka")
    assert broker.bootstrap.startswith("127.0.0.1:")
    assert _accepts(broker.bootstrap)


def test_scripts_are_executable() -> None:
    root = Path(__file__).resolve().parents[1]
    for rel in ("scripts/test", ".ci/run"):
        path = root / rel
        assert path.is_file(), rel
        assert path.stat().st_mode & 0o111, f"{rel} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), rel
        if shutil.which("bash"):
            out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
