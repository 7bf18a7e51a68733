"""Every API handler authorizes as Apache Kafka 4.4's KafkaApis does: refused principals get Kafka's
error code, allowed ones succeed, and Metadata hides what may not be described.

Handler level, without client sockets: a real broker on a temporary data directory with the
StandardAuthorizer settings (``allow.everyone.if.no.acl.found=false``), real ACLs in its authorizer,
and each request built as the wire decoder builds it (kio entities) for a given principal. Every
response is also encoded at its version, so an answer the wire could not carry fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kio.index import load_request_schema

from odradek.broker.authz import CLUSTER_NAME, OMITTED, AclOperation, ResourceType, to_bitfield
from odradek.broker.handlers import HANDLERS, CloseConnection
from odradek.broker.server import Broker, RequestContext
from odradek.config import BrokerConfig
from odradek.protocol.apis import ApiKey
from odradek.protocol.codec import RequestHeader, build, encode_response
from odradek.security.acls import AclBinding, PatternType, Permission

from .batches import make_batch

Op = AclOperation
RT = ResourceType

ADMIN = "User:admin"  # a super user
ALICE = "User:alice"  # given the ACLs each test names
BOB = "User:bob"  # given nothing

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
OPERATION_NOT_ATTEMPTED = 55
ATTR_TRANSACTIONAL = 0x10

SETTINGS = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": ADMIN,
    "allow.everyone.if.no.acl.found": "false",
    "auto.create.topics.enable": "true",
    "ssl.keystore.password": "hunter2",
    "group.initial.rebalance.delay.ms": "0",
}


def run(tmp_path: Path, scenario: Callable[[Broker], Awaitable[None]]) -> None:
    """Start a broker with an authorizer and topics ``t`` and ``secret`` (2 partitions each), run the
    scenario against it, stop it."""

    async def main() -> None:
        config = BrokerConfig.build(overrides=[f"{k}={v}" for k, v in SETTINGS.items()])
        broker = Broker(tmp_path / "data", config)
        await broker.start("127.0.0.1", 0)
        try:
            for name in ("t", "secret"):
                created = await call(
                    broker,
                    ADMIN,
                    ApiKey.CREATE_TOPICS,
                    7,
                    {
                        "topics": [{"name": name, "num_partitions": 2, "replication_factor": 1}],
                        "timeout": 5000,
                    },
                )
                assert created["topics"][0]["error_code"] == NONE
            await scenario(broker)
        finally:
            await broker.stop()

    asyncio.run(main())


async def call(broker: Broker, principal: str, api_key: int, version: int, data: dict[str, Any]) -> Any:
    """Handle one request as ``principal`` and return the handler's answer (after any wait)."""
    request = build(load_request_schema(api_key, version), data)
    header = RequestHeader(api_key, version, 7, "authz-test", 0)
    ctx = RequestContext(
        broker, header, "127.0.0.1", broker.port, "127.0.0.1:40000", principal, "127.0.0.1", "PLAINTEXT", None
    )
    result = HANDLERS[api_key](ctx, request)
    if inspect.isawaitable(result):
        result = await result
    if result is not None:
        encode_response(api_key, version, 7, result)  # the answer fits its version's schema
    return result


def allow(broker: Broker, principal: str, op: AclOperation, rtype: ResourceType, name: str) -> None:
    broker.authorizer.create(
        [AclBinding(rtype, name, PatternType.LITERAL, principal, "*", op, Permission.ALLOW)]
    )


def codes(topics: list[dict[str, Any]], parts_key: str = "partitions", code_key: str = "error_code") -> dict:
    return {
        (t["name"], p["partition_index"] if "partition_index" in p else p["index"]): p[code_key]
        for t in topics
        for p in t[parts_key]
    }


def now_batch(**kwargs: Any) -> bytes:
    return bytes(make_batch([b"v1", b"v2"], base_timestamp=int(time.time() * 1000), **kwargs))


def produce_request(
    topics: list[str], acks: int = -1, transactional_id: str | None = None, **batch: Any
) -> dict:
    return {
        "transactional_id": transactional_id,
        "acks": acks,
        "timeout": 5000,
        "topic_data": [
            {"name": name, "partition_data": [{"index": 0, "records": now_batch(**batch)}]} for name in topics
        ],
    }


# --- Produce, Fetch, ListOffsets, OffsetForLeaderEpoch -------------------------------------------------


def test_produce_needs_write_on_each_topic(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.WRITE, RT.TOPIC, "t")
        allow(b, ALICE, Op.WRITE, RT.TOPIC, "known-to-alice")
        r = await call(
            b, ALICE, ApiKey.PRODUCE, 9, produce_request(["t", "secret", "ghost", "known-to-alice"])
        )
        got = codes(r["responses"], "partition_responses")
        # An unknown topic the principal may not write is refused, not reported unknown.
        assert got == {
            ("t", 0): NONE,
            ("secret", 0): TOPIC_AUTHORIZATION_FAILED,
            ("ghost", 0): TOPIC_AUTHORIZATION_FAILED,
            ("known-to-alice", 0): UNKNOWN_TOPIC_OR_PARTITION,
        }
        assert b.state.topics["secret"].partitions[0].log_end_offset == 0
        assert b.state.topics["t"].partitions[0].log_end_offset == 2
        r = await call(b, BOB, ApiKey.PRODUCE, 9, produce_request(["t"]))
        assert codes(r["responses"], "partition_responses") == {("t", 0): TOPIC_AUTHORIZATION_FAILED}

    run(tmp_path, scenario)


def test_refused_acks_0_produce_closes_the_connection(tmp_path):
    async def scenario(b: Broker) -> None:
        with pytest.raises(CloseConnection):
            await call(b, BOB, ApiKey.PRODUCE, 9, produce_request(["t"], acks=0))
        assert b.state.topics["t"].partitions[0].log_end_offset == 0

    run(tmp_path, scenario)


def test_transactional_produce_needs_write_on_the_transactional_id(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.WRITE, RT.TOPIC, "t")
        request = produce_request(
            ["t", "secret"],
            transactional_id="tx",
            producer_id=1,
            producer_epoch=0,
            base_sequence=0,
            attributes=ATTR_TRANSACTIONAL,
        )
        r = await call(b, ALICE, ApiKey.PRODUCE, 9, request)
        assert set(codes(r["responses"], "partition_responses").values()) == {
            TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        }
        with pytest.raises(CloseConnection):
            await call(b, ALICE, ApiKey.PRODUCE, 9, {**request, "acks": 0})
        # With WRITE on the id the refusal is the topic's (and then the transaction's own checks).
        allow(b, ALICE, Op.WRITE, RT.TRANSACTIONAL_ID, "tx")
        r = await call(b, ALICE, ApiKey.PRODUCE, 9, request)
        got = codes(r["responses"], "partition_responses")
        assert got[("secret", 0)] == TOPIC_AUTHORIZATION_FAILED
        assert got[("t", 0)] not in (NONE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED)

    run(tmp_path, scenario)


def fetch_request(topics: list[str], session_id: int = 0, session_epoch: int = -1) -> dict:
    return {
        "replica_id": -1,
        "max_wait": 0,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": session_id,
        "session_epoch": session_epoch,
        "topics": [
            {
                "topic": name,
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
            for name in topics
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


def fetched(response: dict) -> dict[str, tuple[int, bool]]:
    return {
        t["topic"]: (p["error_code"], bool(p["records"]))
        for t in response["responses"]
        for p in t["partitions"]
    }


def test_fetch_needs_read_and_a_session_never_serves_a_refused_partition(tmp_path):
    async def scenario(b: Broker) -> None:
        r = await call(b, ADMIN, ApiKey.PRODUCE, 9, produce_request(["t", "secret"]))
        assert set(codes(r["responses"], "partition_responses").values()) == {NONE}
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.FETCH, 12, fetch_request(["t", "secret"]))
        assert fetched(r) == {"t": (NONE, True), "secret": (TOPIC_AUTHORIZATION_FAILED, False)}
        secret = [p for t in r["responses"] if t["topic"] == "secret" for p in t["partitions"]][0]
        assert secret["high_watermark"] == -1 and secret["log_start_offset"] == -1
        assert secret["aborted_transactions"] == []  # as Kafka 4.4 answers it, even read_uncommitted
        # A session (epoch 0 opens one) holds both partitions; the refused one is answered 29 each time,
        # with no records, in the incremental fetches that name no partition too.
        r = await call(b, ALICE, ApiKey.FETCH, 12, fetch_request(["t", "secret"], session_epoch=0))
        session = r["session_id"]
        assert session > 0 and fetched(r) == {
            "t": (NONE, True),
            "secret": (TOPIC_AUTHORIZATION_FAILED, False),
        }
        for epoch in (1, 2):
            r = await call(b, ALICE, ApiKey.FETCH, 12, fetch_request([], session, epoch))
            assert r["error_code"] == NONE
            assert fetched(r)["secret"] == (TOPIC_AUTHORIZATION_FAILED, False)
        r = await call(b, BOB, ApiKey.FETCH, 12, fetch_request(["t"]))
        assert fetched(r) == {"t": (TOPIC_AUTHORIZATION_FAILED, False)}
        # A follower's fetch (replica id >= 0) needs CLUSTER_ACTION on the cluster.
        r = await call(b, ALICE, ApiKey.FETCH, 12, {**fetch_request(["t"]), "replica_id": 1})
        assert fetched(r) == {"t": (TOPIC_AUTHORIZATION_FAILED, False)}

    run(tmp_path, scenario)


def test_list_offsets_and_offset_for_leader_epoch_need_describe(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.DESCRIBE, RT.TOPIC, "t")
        topics = [
            {"name": n, "partitions": [{"partition_index": 0, "timestamp": -1}]} for n in ("t", "secret")
        ]
        r = await call(
            b, ALICE, ApiKey.LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": topics}
        )
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}
        epochs = {
            "replica_id": -1,
            "topics": [
                {"topic": n, "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}
                for n in ("t", "secret")
            ],
        }
        r = await call(b, ALICE, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, epochs)
        got = {t["topic"]: t["partitions"][0]["error_code"] for t in r["topics"]}
        assert got == {"t": NONE, "secret": TOPIC_AUTHORIZATION_FAILED}
        allow(b, ALICE, Op.CLUSTER_ACTION, RT.CLUSTER, CLUSTER_NAME)  # brokers' permission covers all
        r = await call(b, ALICE, ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, epochs)
        assert {t["topic"]: t["partitions"][0]["error_code"] for t in r["topics"]} == {
            "t": NONE,
            "secret": NONE,
        }

    run(tmp_path, scenario)


# --- Metadata and the admin APIs ----------------------------------------------------------------------


def test_metadata_hides_topics_and_auto_creation_needs_create(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")  # READ implies DESCRIBE
        all_topics = {
            "topics": None,
            "allow_auto_topic_creation": True,
            "include_topic_authorized_operations": True,
        }
        r = await call(b, ALICE, ApiKey.METADATA, 12, all_topics)
        assert [t["name"] for t in r["topics"]] == ["t"]
        assert r["topics"][0]["topic_authorized_operations"] == to_bitfield({Op.READ, Op.DESCRIBE})
        assert (await call(b, BOB, ApiKey.METADATA, 12, all_topics))["topics"] == []
        assert len((await call(b, ADMIN, ApiKey.METADATA, 12, all_topics))["topics"]) == 2
        named = {**all_topics, "topics": [{"name": n} for n in ("t", "secret", "ghost")]}
        r = await call(b, ALICE, ApiKey.METADATA, 12, named)
        got = {t["name"]: (t["error_code"], t["topic_authorized_operations"]) for t in r["topics"]}
        assert got["t"][0] == NONE
        # Refused, known or not (and not auto-created): nothing tells the principal which exists.
        assert got["secret"] == got["ghost"] == (TOPIC_AUTHORIZATION_FAILED, OMITTED)
        assert "ghost" not in b.state.topics
        # DESCRIBE without CREATE: still refused, not created; CREATE on the topic creates it.
        allow(b, ALICE, Op.DESCRIBE, RT.TOPIC, "ghost")
        r = await call(b, ALICE, ApiKey.METADATA, 12, {**all_topics, "topics": [{"name": "ghost"}]})
        assert r["topics"][0]["error_code"] == TOPIC_AUTHORIZATION_FAILED and "ghost" not in b.state.topics
        allow(b, ALICE, Op.CREATE, RT.TOPIC, "ghost")
        r = await call(b, ALICE, ApiKey.METADATA, 12, {**all_topics, "topics": [{"name": "ghost"}]})
        assert r["topics"][0]["error_code"] == NONE and "ghost" in b.state.topics
        # By topic id (v10+), a refusal names the id only.
        secret_id = b.state.topics["secret"].topic_id
        r = await call(
            b, ALICE, ApiKey.METADATA, 12, {**all_topics, "topics": [{"name": None, "topic_id": secret_id}]}
        )
        assert (r["topics"][0]["error_code"], r["topics"][0]["name"]) == (TOPIC_AUTHORIZATION_FAILED, None)

    run(tmp_path, scenario)


def test_cluster_authorized_operations_need_describe_on_the_cluster(tmp_path):
    async def scenario(b: Broker) -> None:
        asked = {"topics": [], "include_cluster_authorized_operations": True}
        allow(b, ALICE, Op.CREATE, RT.CLUSTER, CLUSTER_NAME)
        assert (await call(b, ALICE, ApiKey.METADATA, 10, asked))["cluster_authorized_operations"] == 0
        cluster = await call(
            b, ALICE, ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": True}
        )
        assert cluster["error_code"] == NONE and cluster["cluster_authorized_operations"] == 0
        allow(b, ALICE, Op.DESCRIBE, RT.CLUSTER, CLUSTER_NAME)
        r = await call(b, ALICE, ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": True})
        assert r["cluster_authorized_operations"] == to_bitfield({Op.CREATE, Op.DESCRIBE})
        full = await call(b, ADMIN, ApiKey.METADATA, 10, asked)
        assert full["cluster_authorized_operations"] == to_bitfield(
            {
                Op.CREATE,
                Op.CLUSTER_ACTION,
                Op.DESCRIBE_CONFIGS,
                Op.ALTER_CONFIGS,
                Op.IDEMPOTENT_WRITE,
                Op.ALTER,
                Op.DESCRIBE,
            }
        )

    run(tmp_path, scenario)


def test_create_topics_needs_create_and_configs_need_describe_configs(tmp_path):
    async def scenario(b: Broker) -> None:
        def req(*names: str) -> dict:
            return {
                "topics": [{"name": n, "num_partitions": 1, "replication_factor": 1} for n in names],
                "timeout": 5000,
            }

        r = await call(b, BOB, ApiKey.CREATE_TOPICS, 7, req("bobs"))
        assert (r["topics"][0]["error_code"], r["topics"][0]["error_message"]) == (
            TOPIC_AUTHORIZATION_FAILED,
            "Authorization failed.",
        )
        assert r["topics"][0]["configs"] == [] and "bobs" not in b.state.topics
        allow(b, ALICE, Op.CREATE, RT.TOPIC, "a1")
        r = await call(b, ALICE, ApiKey.CREATE_TOPICS, 7, req("a1"))
        t = r["topics"][0]
        assert t["error_code"] == NONE and "a1" in b.state.topics
        assert (t["topic_config_error_code"], t["num_partitions"], t["configs"]) == (
            TOPIC_AUTHORIZATION_FAILED,
            -1,
            [],
        )
        allow(b, ALICE, Op.CREATE, RT.CLUSTER, CLUSTER_NAME)
        allow(b, ALICE, Op.DESCRIBE_CONFIGS, RT.TOPIC, "a2")
        r = await call(b, ALICE, ApiKey.CREATE_TOPICS, 7, req("a2"))
        t = r["topics"][0]
        assert (t["error_code"], t.get("topic_config_error_code", NONE), t["num_partitions"]) == (
            NONE,
            NONE,
            1,
        )
        assert t["configs"]

    run(tmp_path, scenario)


def test_delete_topics_needs_describe_then_delete(tmp_path):
    async def scenario(b: Broker) -> None:
        def by_name(*names: str) -> dict:
            return {"topics": [{"name": n, "topic_id": None} for n in names], "timeout": 5000}

        r = await call(b, BOB, ApiKey.DELETE_TOPICS, 6, by_name("t", "ghost"))
        assert [x["error_code"] for x in r["responses"]] == [TOPIC_AUTHORIZATION_FAILED] * 2
        allow(b, ALICE, Op.DESCRIBE, RT.TOPIC, "t")
        allow(b, ALICE, Op.DESCRIBE, RT.TOPIC, "ghost")
        r = await call(b, ALICE, ApiKey.DELETE_TOPICS, 6, by_name("t", "ghost"))
        assert [x["error_code"] for x in r["responses"]] == [
            TOPIC_AUTHORIZATION_FAILED,
            UNKNOWN_TOPIC_OR_PARTITION,
        ]
        secret_id = b.state.topics["secret"].topic_id
        r = await call(b, BOB, ApiKey.DELETE_TOPICS, 6, {"topics": [{"name": None, "topic_id": secret_id}]})
        assert (r["responses"][0]["error_code"], r["responses"][0]["name"]) == (
            TOPIC_AUTHORIZATION_FAILED,
            None,
        )
        allow(b, ALICE, Op.DELETE, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.DELETE_TOPICS, 6, by_name("t"))
        assert r["responses"][0]["error_code"] == NONE and "t" not in b.state.topics
        assert "secret" in b.state.topics

    run(tmp_path, scenario)


def test_create_partitions_needs_alter_and_delete_records_needs_delete(tmp_path):
    async def scenario(b: Broker) -> None:
        grow = {
            "topics": [{"name": n, "count": 3, "assignments": None} for n in ("t", "secret")],
            "timeout": 5000,
            "validate_only": False,
        }
        allow(b, ALICE, Op.ALTER, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.CREATE_PARTITIONS, 3, grow)
        assert {x["name"]: x["error_code"] for x in r["results"]} == {
            "t": NONE,
            "secret": TOPIC_AUTHORIZATION_FAILED,
        }
        assert len(b.state.topics["t"].partitions) == 3 and len(b.state.topics["secret"].partitions) == 2
        cut = {
            "topics": [
                {"name": n, "partitions": [{"partition_index": 0, "offset": -1}]} for n in ("t", "secret")
            ],
            "timeout": 5000,
        }
        allow(b, ALICE, Op.DELETE, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.DELETE_RECORDS, 2, cut)
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}

    run(tmp_path, scenario)


def config_resources(*resources: tuple[int, str]) -> list[dict]:
    return [
        {"resource_type": rt, "resource_name": name, "configuration_keys": None} for rt, name in resources
    ]


def test_describe_configs_needs_describe_configs_and_hides_sensitive_values(tmp_path):
    async def scenario(b: Broker) -> None:
        node = str(b.node_id)
        resources = config_resources((2, "t"), (4, node), (32, "g"))
        request = {"resources": resources, "include_synonyms": True, "include_documentation": False}
        r = await call(b, BOB, ApiKey.DESCRIBE_CONFIGS, 4, request)
        got = {x["resource_name"]: (x["error_code"], x["error_message"], x["configs"]) for x in r["results"]}
        assert got == {
            "t": (TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.", []),
            node: (CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.", []),
            "g": (GROUP_AUTHORIZATION_FAILED, "Group authorization failed.", []),
        }
        allow(b, ALICE, Op.DESCRIBE_CONFIGS, RT.TOPIC, "t")
        allow(b, ALICE, Op.DESCRIBE_CONFIGS, RT.CLUSTER, CLUSTER_NAME)
        r = await call(b, ALICE, ApiKey.DESCRIBE_CONFIGS, 4, request)
        got = {x["resource_name"]: x for x in r["results"]}
        assert got["t"]["error_code"] == NONE and got["t"]["configs"]
        assert got["g"]["error_code"] == GROUP_AUTHORIZATION_FAILED
        assert r["results"][-1]["resource_name"] == "g"  # refused resources come last, as in Kafka
        secret = [c for c in got[node]["configs"] if c["name"] == "ssl.keystore.password"][0]
        assert secret["value"] is None and secret["is_sensitive"] is True
        assert secret["synonyms"] and all(s["value"] is None for s in secret["synonyms"])

    run(tmp_path, scenario)


def test_alter_configs_need_alter_configs(tmp_path):
    async def scenario(b: Broker) -> None:
        node = str(b.node_id)
        incremental = {
            "resources": [
                {
                    "resource_type": rt,
                    "resource_name": name,
                    "configs": [{"name": key, "config_operation": 0, "value": value}],
                }
                for rt, name, key, value in (
                    (2, "t", "retention.ms", "60000"),
                    (4, node, "log.retention.ms", "60000"),
                    (32, "g", "consumer.session.timeout.ms", "50000"),
                )
            ],
            "validate_only": True,
        }
        r = await call(b, BOB, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, incremental)
        assert [(x["error_code"], x["error_message"]) for x in r["responses"]] == [
            (TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed."),
            (CLUSTER_AUTHORIZATION_FAILED, None),  # Kafka 4.4 gives the broker's refusal no message
            (GROUP_AUTHORIZATION_FAILED, "Group authorization failed."),
        ]
        legacy = {
            "resources": [
                {
                    "resource_type": x["resource_type"],
                    "resource_name": x["resource_name"],
                    "configs": [{"name": c["name"], "value": c["value"]} for c in x["configs"]],
                }
                for x in incremental["resources"]
            ],
            "validate_only": True,
        }
        r = await call(b, BOB, ApiKey.ALTER_CONFIGS, 2, legacy)
        assert [x["error_code"] for x in r["responses"]] == [
            TOPIC_AUTHORIZATION_FAILED,
            CLUSTER_AUTHORIZATION_FAILED,
            GROUP_AUTHORIZATION_FAILED,
        ]
        allow(b, ALICE, Op.ALTER_CONFIGS, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {**incremental, "validate_only": False})
        assert r["responses"][0]["error_code"] == NONE
        assert b.state.topics["t"].configs["retention.ms"] == 60000

    run(tmp_path, scenario)


def test_log_dirs_and_elect_leaders_need_the_cluster(tmp_path):
    async def scenario(b: Broker) -> None:
        r = await call(b, BOB, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None})
        assert (r["error_code"], r["results"]) == (CLUSTER_AUTHORIZATION_FAILED, [])
        allow(b, ALICE, Op.DESCRIBE, RT.CLUSTER, CLUSTER_NAME)
        r = await call(b, ALICE, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None})
        assert r["error_code"] == NONE and len(r["results"]) == 1
        elect = {"election_type": 0, "topic_partitions": [{"topic": "t", "partitions": [0]}], "timeout": 5000}
        r = await call(b, ALICE, ApiKey.ELECT_LEADERS, 2, elect)
        assert r["error_code"] == CLUSTER_AUTHORIZATION_FAILED
        assert (
            r["replica_election_results"][0]["partition_result"][0]["error_code"]
            == CLUSTER_AUTHORIZATION_FAILED
        )
        allow(b, ALICE, Op.ALTER, RT.CLUSTER, CLUSTER_NAME)
        assert (await call(b, ALICE, ApiKey.ELECT_LEADERS, 2, elect))["error_code"] == NONE

    run(tmp_path, scenario)


# --- groups --------------------------------------------------------------------------------------------


def test_find_coordinator_needs_describe_per_key(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.DESCRIBE, RT.GROUP, "g")
        r = await call(
            b, ALICE, ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["g", "other"]}
        )
        got = {c["key"]: (c["error_code"], c["node_id"]) for c in r["coordinators"]}
        assert got == {"g": (NONE, b.node_id), "other": (GROUP_AUTHORIZATION_FAILED, -1)}
        assert [c["error_message"] for c in r["coordinators"] if c["key"] == "other"] == [""]  # as Kafka v4
        r = await call(b, ALICE, ApiKey.FIND_COORDINATOR, 3, {"key_type": 0, "key": "other"})
        assert (r["error_code"], r["error_message"]) == (
            GROUP_AUTHORIZATION_FAILED,
            "Group authorization failed.",
        )
        r = await call(b, ALICE, ApiKey.FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": ["tx"]})
        assert r["coordinators"][0]["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        allow(b, ALICE, Op.WRITE, RT.TRANSACTIONAL_ID, "tx")  # WRITE implies DESCRIBE
        r = await call(b, ALICE, ApiKey.FIND_COORDINATOR, 3, {"key_type": 1, "key": "tx"})
        assert r["error_code"] == NONE

    run(tmp_path, scenario)


def test_classic_group_calls_need_read_on_the_group(tmp_path):
    async def scenario(b: Broker) -> None:
        join = {
            "group_id": "g",
            "session_timeout": 10000,
            "rebalance_timeout": 10000,
            "member_id": "",
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
            "reason": None,
        }
        r = await call(b, BOB, ApiKey.JOIN_GROUP, 9, join)
        assert (r["error_code"], r["member_id"], r["generation_id"]) == (GROUP_AUTHORIZATION_FAILED, "", -1)
        member = {"group_id": "g", "generation_id": 1, "member_id": "m", "group_instance_id": None}
        r = await call(
            b,
            BOB,
            ApiKey.SYNC_GROUP,
            5,
            {**member, "protocol_type": "consumer", "protocol_name": "range", "assignments": []},
        )
        assert r["error_code"] == GROUP_AUTHORIZATION_FAILED
        assert (await call(b, BOB, ApiKey.HEARTBEAT, 4, member))["error_code"] == GROUP_AUTHORIZATION_FAILED
        leave = {"group_id": "g", "members": [{"member_id": "m", "group_instance_id": None, "reason": None}]}
        r = await call(b, BOB, ApiKey.LEAVE_GROUP, 5, leave)
        assert (r["error_code"], r["members"]) == (GROUP_AUTHORIZATION_FAILED, [])
        allow(b, ALICE, Op.READ, RT.GROUP, "g")
        r = await call(b, ALICE, ApiKey.JOIN_GROUP, 9, join)
        assert r["error_code"] == 79 and r["member_id"]  # MEMBER_ID_REQUIRED: admitted, rejoin with the id
        assert (await call(b, ALICE, ApiKey.HEARTBEAT, 4, member))["error_code"] not in (
            GROUP_AUTHORIZATION_FAILED,
            NONE,
        )

    run(tmp_path, scenario)


def commit_request(group: str, topics: list[str]) -> dict:
    return {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [
            {
                "name": n,
                "partitions": [
                    {
                        "partition_index": 0,
                        "committed_offset": 1,
                        "committed_leader_epoch": -1,
                        "committed_metadata": "",
                    }
                ],
            }
            for n in topics
        ],
    }


def test_offset_commit_and_fetch(tmp_path):
    async def scenario(b: Broker) -> None:
        r = await call(b, ADMIN, ApiKey.OFFSET_COMMIT, 9, commit_request("g", ["t", "secret"]))
        assert set(codes(r["topics"]).values()) == {NONE}
        r = await call(b, BOB, ApiKey.OFFSET_COMMIT, 9, commit_request("g", ["t"]))
        assert codes(r["topics"]) == {("t", 0): GROUP_AUTHORIZATION_FAILED}
        allow(b, ALICE, Op.READ, RT.GROUP, "g")
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.OFFSET_COMMIT, 9, commit_request("g", ["t", "secret"]))
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}

        def fetch(topics: list[str] | None) -> dict:
            named = None if topics is None else [{"name": n, "partition_indexes": [0]} for n in topics]
            return {
                "groups": [{"group_id": "g", "member_id": None, "member_epoch": -1, "topics": named}],
                "require_stable": False,
            }

        r = await call(b, BOB, ApiKey.OFFSET_FETCH, 9, fetch(None))
        assert (r["groups"][0]["error_code"], r["groups"][0]["topics"]) == (GROUP_AUTHORIZATION_FAILED, [])
        r = await call(b, ALICE, ApiKey.OFFSET_FETCH, 9, fetch(None))  # READ on the group implies DESCRIBE
        assert [t["name"] for t in r["groups"][0]["topics"]] == ["t"]  # secret's offset is not shown
        r = await call(b, ALICE, ApiKey.OFFSET_FETCH, 9, fetch(["secret", "t"]))
        topics = r["groups"][0]["topics"]
        assert [t["name"] for t in topics] == ["t", "secret"]  # refused topics after the others, as Kafka
        assert codes(topics) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}
        assert topics[1]["partitions"][0]["committed_offset"] == -1
        # v1 has no top-level error: each partition says it.
        r = await call(
            b,
            BOB,
            ApiKey.OFFSET_FETCH,
            1,
            {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0]}]},
        )
        assert codes(r["topics"]) == {("t", 0): GROUP_AUTHORIZATION_FAILED}
        r = await call(
            b, BOB, ApiKey.OFFSET_FETCH, 5, {"group_id": "g", "topics": None, "require_stable": False}
        )
        assert (r["error_code"], r["topics"]) == (GROUP_AUTHORIZATION_FAILED, [])
        # OffsetDelete: DELETE on the group.
        delete = {"group_id": "g", "topics": [{"name": "t", "partitions": [{"partition_index": 0}]}]}
        assert (await call(b, ALICE, ApiKey.OFFSET_DELETE, 0, delete))[
            "error_code"
        ] == GROUP_AUTHORIZATION_FAILED
        allow(b, ALICE, Op.DELETE, RT.GROUP, "g")
        assert (await call(b, ALICE, ApiKey.OFFSET_DELETE, 0, delete))[
            "error_code"
        ] != GROUP_AUTHORIZATION_FAILED

    run(tmp_path, scenario)


def test_offset_delete_needs_delete_on_the_group_and_read_on_each_topic(tmp_path):
    async def scenario(b: Broker) -> None:
        join = {
            "group_id": "g",
            "session_timeout": 10000,
            "rebalance_timeout": 10000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        }
        r = await call(b, ADMIN, ApiKey.OFFSET_COMMIT, 9, commit_request("g", ["t", "secret"]))
        assert set(codes(r["topics"]).values()) == {NONE}
        joined = await call(b, ADMIN, ApiKey.JOIN_GROUP, 3, join)  # then a classic group, so they may go
        assert joined["error_code"] == NONE
        delete = {
            "group_id": "g",
            "topics": [{"name": n, "partitions": [{"partition_index": 0}]} for n in ("t", "secret")],
        }
        r = await call(b, ALICE, ApiKey.OFFSET_DELETE, 0, delete)
        assert (r["error_code"], r["topics"]) == (GROUP_AUTHORIZATION_FAILED, [])
        allow(b, ALICE, Op.DELETE, RT.GROUP, "g")
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.OFFSET_DELETE, 0, delete)
        assert r["error_code"] == NONE
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}
        assert b.groups.offsets.fetch("g", ("t", 0)) is None
        assert b.groups.offsets.fetch("g", ("secret", 0)) is not None  # a refused topic's offset stays

    run(tmp_path, scenario)


def heartbeat_request(group: str, topics: list[str]) -> dict:
    return {
        "group_id": group,
        "member_id": "",
        "member_epoch": 0,
        "instance_id": None,
        "rack_id": None,
        "rebalance_timeout": 30000,
        "subscribed_topic_names": topics,
        "subscribed_topic_regex": None,
        "server_assignor": None,
        "topic_partitions": [],
    }


def test_consumer_groups_describe_list_delete(tmp_path):
    async def scenario(b: Broker) -> None:
        r = await call(b, BOB, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, heartbeat_request("cg", ["t"]))
        assert r["error_code"] == GROUP_AUTHORIZATION_FAILED and "cg" not in b.groups.consumer.groups
        allow(b, ALICE, Op.READ, RT.GROUP, "cg")
        r = await call(b, ALICE, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, heartbeat_request("cg", ["t", "secret"]))
        assert r["error_code"] == TOPIC_AUTHORIZATION_FAILED  # DESCRIBE on every subscribed topic
        allow(b, ALICE, Op.DESCRIBE, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, heartbeat_request("cg", ["t"]))
        assert r["error_code"] == NONE and r["member_id"]
        await call(b, ADMIN, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, heartbeat_request("other", ["secret"]))

        describe = {"group_ids": ["cg", "other"], "include_authorized_operations": True}
        r = await call(b, BOB, ApiKey.CONSUMER_GROUP_DESCRIBE, 0, describe)
        assert [(g["group_id"], g["error_code"]) for g in r["groups"]] == [
            ("cg", GROUP_AUTHORIZATION_FAILED),
            ("other", GROUP_AUTHORIZATION_FAILED),
        ]
        r = await call(b, ALICE, ApiKey.CONSUMER_GROUP_DESCRIBE, 0, describe)
        got = {g["group_id"]: g for g in r["groups"]}
        assert [g["group_id"] for g in r["groups"]] == ["other", "cg"]  # refused first, as Kafka
        assert got["other"]["error_code"] == GROUP_AUTHORIZATION_FAILED
        assert got["cg"]["error_code"] == NONE and len(got["cg"]["members"]) == 1
        assert got["cg"]["authorized_operations"] == to_bitfield({Op.READ, Op.DESCRIBE})
        # A describable group whose assignment names a topic the principal may not describe: refused whole.
        allow(b, ALICE, Op.DESCRIBE, RT.GROUP, "other")
        r = await call(
            b,
            ALICE,
            ApiKey.CONSUMER_GROUP_DESCRIBE,
            0,
            {"group_ids": ["other"], "include_authorized_operations": False},
        )
        assert (r["groups"][0]["error_code"], r["groups"][0]["members"]) == (TOPIC_AUTHORIZATION_FAILED, [])

        listed = await call(b, BOB, ApiKey.LIST_GROUPS, 5, {"states_filter": [], "types_filter": []})
        assert listed["groups"] == []
        listed = await call(b, ALICE, ApiKey.LIST_GROUPS, 5, {"states_filter": [], "types_filter": []})
        assert sorted(g["group_id"] for g in listed["groups"]) == ["cg", "other"]
        allow(b, BOB, Op.DESCRIBE, RT.CLUSTER, CLUSTER_NAME)
        listed = await call(b, BOB, ApiKey.LIST_GROUPS, 5, {"states_filter": [], "types_filter": []})
        assert sorted(g["group_id"] for g in listed["groups"]) == ["cg", "other"]

        r = await call(b, ALICE, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["cg"]})
        assert r["results"] == [{"group_id": "cg", "error_code": GROUP_AUTHORIZATION_FAILED}]
        assert "cg" in b.groups.consumer.groups

    run(tmp_path, scenario)


def test_describe_groups_needs_describe(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.DESCRIBE, RT.GROUP, "g")
        r = await call(
            b, ALICE, ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g", "h"], "include_authorized_operations": True}
        )
        got = [(g["group_id"], g["error_code"], g["authorized_operations"]) for g in r["groups"]]
        assert got == [("h", GROUP_AUTHORIZATION_FAILED, OMITTED), ("g", NONE, to_bitfield({Op.DESCRIBE}))]

    run(tmp_path, scenario)


# --- producers and transactions -----------------------------------------------------------------------


def test_init_producer_id(tmp_path):
    async def scenario(b: Broker) -> None:
        idempotent = {
            "transactional_id": None,
            "transaction_timeout": 60000,
            "producer_id": -1,
            "producer_epoch": -1,
        }
        r = await call(b, BOB, ApiKey.INIT_PRODUCER_ID, 5, idempotent)
        assert (r["error_code"], r["producer_id"]) == (CLUSTER_AUTHORIZATION_FAILED, -1)
        allow(b, ALICE, Op.WRITE, RT.TOPIC, "t")  # WRITE on any topic is enough (Kafka 3+)
        r = await call(b, ALICE, ApiKey.INIT_PRODUCER_ID, 5, idempotent)
        assert r["error_code"] == NONE and r["producer_id"] >= 0
        allow(b, BOB, Op.IDEMPOTENT_WRITE, RT.CLUSTER, CLUSTER_NAME)
        assert (await call(b, BOB, ApiKey.INIT_PRODUCER_ID, 5, idempotent))["error_code"] == NONE
        transactional = {**idempotent, "transactional_id": "tx"}
        r = await call(b, ALICE, ApiKey.INIT_PRODUCER_ID, 5, transactional)
        assert r["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        allow(b, ALICE, Op.WRITE, RT.TRANSACTIONAL_ID, "tx")
        assert (await call(b, ALICE, ApiKey.INIT_PRODUCER_ID, 5, transactional))["error_code"] == NONE

    run(tmp_path, scenario)


def test_transactions(tmp_path):
    async def scenario(b: Broker) -> None:
        init = await call(
            b,
            ADMIN,
            ApiKey.INIT_PRODUCER_ID,
            5,
            {"transactional_id": "tx", "transaction_timeout": 60000, "producer_id": -1, "producer_epoch": -1},
        )
        pid, epoch = init["producer_id"], init["producer_epoch"]

        def add(topics: list[str]) -> dict:
            return {
                "v3_and_below_transactional_id": "tx",
                "v3_and_below_producer_id": pid,
                "v3_and_below_producer_epoch": epoch,
                "v3_and_below_topics": [{"name": n, "partitions": [0]} for n in topics],
            }

        def add_codes(r: dict) -> dict:
            return codes(r["results_by_topic_v3_and_below"], "results_by_partition", "partition_error_code")

        r = await call(b, BOB, ApiKey.ADD_PARTITIONS_TO_TXN, 3, add(["t"]))
        assert add_codes(r) == {("t", 0): TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
        allow(b, ALICE, Op.WRITE, RT.TRANSACTIONAL_ID, "tx")
        allow(b, ALICE, Op.WRITE, RT.TOPIC, "t")
        r = await call(b, ALICE, ApiKey.ADD_PARTITIONS_TO_TXN, 3, add(["t", "secret"]))
        assert add_codes(r) == {("t", 0): OPERATION_NOT_ATTEMPTED, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}
        r = await call(b, ADMIN, ApiKey.ADD_PARTITIONS_TO_TXN, 3, add(["t", "secret"]))
        assert set(add_codes(r).values()) == {NONE}

        offsets = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "group_id": "g"}
        r = await call(b, BOB, ApiKey.ADD_OFFSETS_TO_TXN, 3, offsets)
        assert r["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert (await call(b, ALICE, ApiKey.ADD_OFFSETS_TO_TXN, 3, offsets))[
            "error_code"
        ] == GROUP_AUTHORIZATION_FAILED
        txn_commit = {
            **offsets,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [
                {
                    "name": n,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": 1,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "",
                        }
                    ],
                }
                for n in ("t", "secret")
            ],
        }
        r = await call(b, BOB, ApiKey.TXN_OFFSET_COMMIT, 3, txn_commit)
        assert set(codes(r["topics"]).values()) == {TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
        r = await call(b, ALICE, ApiKey.TXN_OFFSET_COMMIT, 3, txn_commit)
        assert set(codes(r["topics"]).values()) == {GROUP_AUTHORIZATION_FAILED}
        allow(b, ALICE, Op.READ, RT.GROUP, "g")
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")
        assert (await call(b, ALICE, ApiKey.ADD_OFFSETS_TO_TXN, 3, offsets))["error_code"] == NONE
        r = await call(b, ALICE, ApiKey.TXN_OFFSET_COMMIT, 3, txn_commit)
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}

        describe = {"transactional_ids": ["tx"]}
        r = await call(b, BOB, ApiKey.DESCRIBE_TRANSACTIONS, 0, describe)
        assert r["transaction_states"][0]["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        r = await call(b, ALICE, ApiKey.DESCRIBE_TRANSACTIONS, 0, describe)
        state = r["transaction_states"][0]
        assert state["error_code"] == NONE and [t["topic"] for t in state["topics"]] == ["t"]  # not secret
        listing = {"state_filters": [], "producer_id_filters": [], "duration_filter": -1}
        assert (await call(b, BOB, ApiKey.LIST_TRANSACTIONS, 1, listing))["transaction_states"] == []
        r = await call(b, ALICE, ApiKey.LIST_TRANSACTIONS, 1, listing)
        assert [s["transactional_id"] for s in r["transaction_states"]] == ["tx"]

        end = {"transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "committed": False}
        assert (await call(b, BOB, ApiKey.END_TXN, 3, end))[
            "error_code"
        ] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert (await call(b, ALICE, ApiKey.END_TXN, 3, end))["error_code"] == NONE

    run(tmp_path, scenario)


def test_describe_producers_needs_read(tmp_path):
    async def scenario(b: Broker) -> None:
        allow(b, ALICE, Op.READ, RT.TOPIC, "t")
        request = {"topics": [{"name": n, "partition_indexes": [0]} for n in ("t", "secret")]}
        r = await call(b, ALICE, ApiKey.DESCRIBE_PRODUCERS, 0, request)
        assert codes(r["topics"]) == {("t", 0): NONE, ("secret", 0): TOPIC_AUTHORIZATION_FAILED}

    run(tmp_path, scenario)


def test_without_an_authorizer_everyone_may_do_everything(tmp_path):
    """The default (no authorizer.class.name): no check anywhere, and every bitfield is the full one."""

    async def main() -> None:
        broker = Broker(tmp_path / "data", BrokerConfig.build(overrides=["ssl.keystore.password=hunter2"]))
        await broker.start("127.0.0.1", 0)
        try:
            assert broker.authorizer is None
            r = await call(
                broker,
                BOB,
                ApiKey.METADATA,
                10,
                {
                    "topics": [{"name": "auto"}],
                    "allow_auto_topic_creation": True,
                    "include_cluster_authorized_operations": True,
                    "include_topic_authorized_operations": True,
                },
            )
            assert r["topics"][0]["error_code"] == NONE and r["cluster_authorized_operations"] > 0
            r = await call(broker, BOB, ApiKey.PRODUCE, 9, produce_request(["auto"]))
            assert codes(r["responses"], "partition_responses") == {("auto", 0): NONE}
            r = await call(broker, BOB, ApiKey.FETCH, 12, fetch_request(["auto"]))
            assert fetched(r) == {"auto": (NONE, True)}
            r = await call(broker, BOB, ApiKey.DESCRIBE_LOG_DIRS, 4, {"topics": None})
            assert r["error_code"] == NONE
            # Sensitive configs are answered without their value, authorizer or not.
            resources = config_resources((4, str(broker.node_id)))
            r = await call(
                broker, BOB, ApiKey.DESCRIBE_CONFIGS, 4, {"resources": resources, "include_synonyms": True}
            )
            secret = [c for c in r["results"][0]["configs"] if c["name"] == "ssl.keystore.password"][0]
            assert (secret["value"], secret["is_sensitive"]) == (None, True)
            assert all(s["value"] is None for s in secret["synonyms"])
        finally:
            await broker.stop()

    asyncio.run(main())
