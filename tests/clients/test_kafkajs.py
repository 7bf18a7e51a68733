"""kafkajs against both brokers: producing with its built-in codecs, and its admin client.

kafkajs's consumer has no manual assignment: it only consumes through a consumer group. These tests
stay independent of groups, so kafkajs-produced data is read back with confluent-kafka by assignment,
and kafkajs reads offsets through its admin client (test_seek.py::test_kafkajs_offsets). Consuming with
kafkajs (through a group) is left for the consumer-group issue.
"""

from __future__ import annotations

import pytest
from kclients import Confluent, assert_partition_order

from support.node import json_lines, run_node

PARTITIONS = 3
N = 120


def _unhex(v):
    return None if v is None else bytes.fromhex(v)


# kafkajs ships GZIP only; snappy / lz4 / zstd need codec plugin packages not installed here.
@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_kafkajs_produce_confluent_consume(broker, kafkajs, topic_name, codec):
    Confluent.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    proc = run_node("clients_roundtrip.js", broker.bootstrap, topic_name, codec, N, PARTITIONS)
    (out,) = json_lines(proc.stdout)
    sent = out["messages"]
    assert len(sent) == N
    want = sorted(
        (
            m["partition"],
            m["offset"],
            _unhex(m["key"]),
            _unhex(m["value"]),
            tuple((k, _unhex(v)) for k, v in m["headers"]),
        )
        for m in sent
    )
    ends = {p: sum(1 for m in sent if m["partition"] == p) for p in range(PARTITIONS)}
    assert sorted(w[:2] for w in want) == [(p, o) for p in range(PARTITIONS) for o in range(ends[p])]

    recs = Confluent.consume(broker.bootstrap, topic_name, {p: 0 for p in range(PARTITIONS)}, ends)
    assert_partition_order(recs)
    assert sorted(r.ident() for r in recs) == want
    for r in recs:
        assert r.timestamp_type == "create"
        assert out["t0"] - 1000 <= r.timestamp <= out["t1"] + 1000, (r, out["t0"], out["t1"])


def test_kafkajs_admin(broker, kafkajs, topic_name):
    proc = run_node("clients_admin.js", broker.bootstrap, topic_name)
    (out,) = json_lines(proc.stdout)

    assert out["created"] is True
    assert out["createdAgain"] is False  # kafkajs maps TOPIC_ALREADY_EXISTS to `false`
    assert out["badReplication"]["error"] == "INVALID_REPLICATION_FACTOR", out["badReplication"]
    assert out["listed"] is True

    (node,) = out["cluster"]["brokers"]
    node_id = node["nodeId"]
    assert f"{node['host']}:{node['port']}" == broker.bootstrap
    assert out["cluster"]["controller"] in (node_id, None)  # Kafka 4 (KRaft) reports a random broker id
    assert isinstance(out["cluster"]["clusterId"], str) and out["cluster"]["clusterId"]

    def replicas(n):
        return [
            {
                "partitionId": p,
                "leader": node_id,
                "replicas": [node_id],
                "isr": [node_id],
                "partitionErrorCode": 0,
            }
            for p in range(n)
        ]

    assert out["metadata"] == replicas(2)
    assert out["grown"] == replicas(4)
    assert out["shrink"]["error"] == "INVALID_PARTITIONS", out["shrink"]

    (configs,) = out["configs"]
    assert configs["errorCode"] == 0 and configs["resourceName"] == topic_name
    assert configs["entries"] == {
        "retention.ms": {"value": "3600000", "isDefault": False},
        "max.message.bytes": {"value": "200000", "isDefault": False},
        "cleanup.policy": {"value": "delete", "isDefault": True},
    }

    assert out["listedAfterDelete"] is False
