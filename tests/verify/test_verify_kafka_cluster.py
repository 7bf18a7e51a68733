"""``odradek verify --bootstrap`` against a 3-broker Apache Kafka 4.4 KRaft cluster (replication factor 3,
``min.insync.replicas=2``): the library and the verifier carry over unchanged.

Brokers are SIGKILLed and restarted through ``--broker-kill-cmd`` / ``--broker-start-cmd`` (one broker
per fault, chosen by ``ODRADEK_FAULT_INDEX``); each broker advertises a port on which the verifier runs
its fault proxy (``--proxy``), so the partition fault runs here too. At-least-once and exactly-once must
lose nothing.
"""

from __future__ import annotations

import pytest
from verifykit import run_verify

from support.kafka_cluster import KafkaCluster
from support.net import LOOPBACK, free_port

pytestmark = pytest.mark.slow


def test_verify_on_a_three_broker_kafka_cluster_with_broker_kills(tmp_path, kafka_jars):
    ports = {i: free_port() for i in (1, 2, 3)}
    cluster = KafkaCluster(tmp_path / "cluster", advertised={i: f"{LOOPBACK}:{p}" for i, p in ports.items()})
    cluster.start()
    try:
        proxies = [f"--proxy={LOOPBACK}:{ports[i]}={cluster.node(i).address}" for i in (1, 2, 3)]
        out = run_verify(
            tmp_path,
            "--bootstrap", cluster.bootstrap,
            *proxies,
            "--broker-kill-cmd", cluster.kill_cmd(),
            "--broker-start-cmd", cluster.start_cmd(),
            "--faults", "broker-crash,consumer-crash,broker-crash,partition",
            "--messages", "12000",
            "--rate", "400",
            "--throughput-messages", "5000",
            "--seed", "5",
            timeout=900,
        )  # fmt: skip
        assert cluster.running(1) and cluster.running(2) and cluster.running(3)
    finally:
        cluster.stop(timeout=20)
    assert out.code == 0, out.explain()
    r = out.result
    assert r["target"] == "external cluster"
    crashes = [f for f in r["faults"] if f["kind"] == "broker-crash"]
    assert len(crashes) == 2 and all(f["ran"] for f in crashes), r["faults"]
    assert all(f["ran"] for f in r["faults"]), r["faults"]
    for name in ("at-least-once", "exactly-once", "exactly-once → SQL"):
        assert out.verdict(name)["lost"] == 0, (name, out.verdict(name))
        assert out.verdict(name)["kept"], (name, out.verdict(name))
    for name in ("exactly-once", "exactly-once → SQL"):
        assert out.verdict(name)["duplicated"] == 0
    assert out.verdict("at-most-once")["duplicated"] == 0
    assert next(c for c in r["producer"] if c["acks"] == "all")["acked_then_missing"] == 0
