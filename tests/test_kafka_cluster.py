"""The three-broker Apache Kafka 4.4 KRaft cluster of ``support.kafka_cluster``.

Each broker advertises a pass-through proxy in front of it, so clients go through the proxies while
replication does not. Topics get replication factor 3 and an ISR of 3. The leader of a partition is
SIGKILLed and started again by the shell commands another process (``odradek verify
--broker-kill-cmd/--broker-start-cmd``) runs, with ``ODRADEK_FAULT_INDEX`` set, while an idempotent
acks=all producer keeps producing: every acknowledged record is read back exactly once, at the offset
its acknowledgement named, the restarted broker rejoins the ISR, and stopping the cluster leaves none of
its JVMs behind (the restarted one was started by the command, not by this process).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from odradek.verify.proxy import ChaosProxy
from support.kafka_cluster import KafkaCluster, pid_alive
from support.kit import admin, read_to_end, wait_until
from support.net import LOOPBACK

pytestmark = pytest.mark.slow


@pytest.fixture
def proxies() -> Iterator[dict[int, ChaosProxy]]:
    """A pass-through proxy in front of each broker (no faults): what the cluster advertises."""
    started = {i: ChaosProxy().start() for i in (1, 2, 3)}
    yield started
    for p in started.values():
        p.stop()


@pytest.fixture
def cluster(tmp_path: Path, kafka_jars: Path, proxies: dict[int, ChaosProxy]) -> Iterator[KafkaCluster]:
    c = KafkaCluster(tmp_path / "cluster", advertised={i: p.address for i, p in proxies.items()})
    c.start()
    for i, p in proxies.items():
        p.target = (LOOPBACK, c.node(i).port)
    try:
        yield c
    finally:
        c.stop(timeout=20)


def _partition(bootstrap: str, topic: str) -> tuple[int, list[int], set[int]]:
    """Leader, replicas and ISR of partition 0 of ``topic``."""
    md = admin(bootstrap).list_topics(topic=topic, timeout=5).topics[topic]
    if md.error is not None or 0 not in md.partitions:
        return -1, [], set()
    p = md.partitions[0]
    return p.leader, list(p.replicas), set(p.isrs)


def _processes_under(root: Path) -> list[int]:
    """Live pids whose command line mentions ``root`` (this cluster's JVMs)."""
    needle = os.fsencode(str(root))
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _run(cmd: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=150)
    return proc, time.monotonic() - t0


def test_leader_crash_by_commands(cluster: KafkaCluster, proxies: dict[int, ChaosProxy]) -> None:
    t_start = time.monotonic()
    everyone = {1, 2, 3}
    brokers = admin(cluster.bootstrap).list_topics(timeout=10).brokers
    assert {i: f"{b.host}:{b.port}" for i, b in brokers.items()} == {i: p.address for i, p in proxies.items()}
    assert cluster.bootstrap == ",".join(p.address for p in proxies.values())

    # Broker defaults: replication factor 3, all in sync.
    a = admin(cluster.bootstrap)
    a.create_topics([NewTopic("rf-default", 1)])["rf-default"].result(30)
    wait_until(lambda: _partition(cluster.bootstrap, "rf-default")[2] == everyone, 30, "ISR of 3")
    assert len(_partition(cluster.bootstrap, "rf-default")[1]) == 3

    # The produced topic is led by the node the first broker-crash fault hits.
    victim = cluster.node_for_fault_index(0)
    topic = "crash"
    others = sorted(everyone - {victim})
    a.create_topics([NewTopic(topic, 1, replica_assignment=[[victim, *others]])])[topic].result(30)
    wait_until(
        lambda: _partition(cluster.bootstrap, topic)[::2] == (victim, everyone),
        30,
        lambda: f"node {victim} leading {topic} with an ISR of 3: {_partition(cluster.bootstrap, topic)}",
    )
    victim_pid = cluster.pid(victim)
    assert victim_pid is not None
    assert "--node-from-fault-index" in cluster.kill_cmd() and "--node 3" in cluster.start_cmd(3)

    acked: dict[bytes, int] = {}  # value -> offset
    failed: dict[bytes, str] = {}

    def on_delivery(err, msg) -> None:
        if err is None:
            acked[msg.value()] = msg.offset()
        else:
            failed[msg.value()] = err.name()

    env = dict(os.environ, ODRADEK_FAULT_INDEX="0")
    faults: dict[str, object] = {}

    def crash_and_restart() -> None:
        try:
            wait_until(lambda: len(acked) >= 2000, 30, "2000 acknowledgements before the kill")
            faults["kill"] = _run(cluster.kill_cmd(), env)
            faults["acked_at_kill"] = len(acked)
            at_kill = len(acked)
            wait_until(lambda: len(acked) >= at_kill + 2000, 60, "2000 acknowledgements from the new leader")
            faults["start"] = _run(cluster.start_cmd(), env)
        except BaseException as e:  # reported by the main thread
            faults["error"] = e

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "log_level": 0,
        }
    )
    fault_thread = threading.Thread(target=crash_and_restart, daemon=True)
    fault_thread.start()
    seq = 0
    after = None  # keep producing for a while after the restart
    deadline = time.monotonic() + 120
    while after is None or time.monotonic() < after:
        assert time.monotonic() < deadline, f"producing took too long: {faults}"
        if after is None and not fault_thread.is_alive():
            after = time.monotonic() + 1.0
        if len(producer) > 2000:
            producer.poll(0.01)
            continue
        for _ in range(100):
            producer.produce(topic, f"{seq:09d}".encode(), on_delivery=on_delivery)
            seq += 1
        producer.poll(0.005)
    assert producer.flush(90) == 0, "delivery reports still outstanding"
    fault_thread.join()
    assert "error" not in faults, faults["error"]

    kill, kill_s = faults["kill"]
    assert kill.returncode == 0, kill.stderr
    assert kill_s < 10, f"kill command took {kill_s:.1f}s"
    assert not pid_alive(victim_pid)
    start, start_s = faults["start"]
    assert start.returncode == 0, start.stderr
    restarted_pid = cluster.pid(victim)
    assert restarted_pid is not None and restarted_pid != victim_pid
    assert victim in admin(cluster.bootstrap).list_topics(timeout=10).brokers

    wait_until(
        lambda: _partition(cluster.bootstrap, topic)[2] == everyone,
        30,
        lambda: f"ISR of {topic} back to 3: {_partition(cluster.bootstrap, topic)}",
    )

    # Every acknowledged record exactly once, at its acknowledged offset; nothing twice at all.
    assert not failed, f"{len(failed)} deliveries failed: {Counter(failed.values()).most_common(3)}"
    assert len(acked) == seq
    records = read_to_end(cluster.bootstrap, topic, 1, committed=False, group="check", timeout=60)
    counts = Counter(m.value() for m in records)
    twice = [v for v, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} values stored more than once, e.g. {twice[:3]}"
    offset_of = {m.value(): m.offset() for m in records}
    missing = [v for v in acked if v not in offset_of]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged records missing, e.g. {missing[:3]}"
    moved = [v for v, off in acked.items() if offset_of[v] != off]
    assert not moved, f"{len(moved)} acknowledged records at another offset, e.g. {moved[:3]}"
    assert len(records) == len(acked)

    assert all(p.connections > 0 for p in proxies.values())

    # Stopping leaves no JVM of this cluster, the one the start command detached included.
    pids = cluster.pids()
    assert set(pids) == everyone and restarted_pid in pids.values()
    cluster.stop(timeout=20)
    assert cluster.pids() == {}
    assert not [p for p in pids.values() if pid_alive(p)]
    assert _processes_under(cluster.work_dir) == []
    print(
        f"{len(acked)} records acknowledged ({faults['acked_at_kill']} when node {victim} was killed); "
        f"kill {kill_s:.1f}s, start {start_s:.1f}s; cluster started in {cluster.start_seconds:.1f}s; "
        f"test body {time.monotonic() - t_start:.1f}s"
    )
