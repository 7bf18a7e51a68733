"""The ACL matrix: for each API a client uses, a principal without the ACL is refused with Kafka's code and
one with it succeeds, on Odradek and on Apache Kafka 4.4 configured the same way (StandardAuthorizer,
``allow.everyone.if.no.acl.found=false``).

Principals ``User:alice`` and ``User:bob`` authenticate over the SASL listener; ACLs are granted through the
PLAINTEXT admin listener, whose principal (``User:ANONYMOUS``) is a super user. Every test uses resources of
its own and deletes the ACLs it created (cluster ACLs would otherwise leak into the next test). Where a
client hides the code or has no call for the API (InitProducerId, Fetch, ListOffsets, Metadata by name,
FindCoordinator, JoinGroup, OffsetCommit/OffsetFetch, DescribeAcls, AddPartitionsToTxn, OffsetDelete,
DescribeTransactions, DescribeProducers, DescribeLogDirs, ElectLeaders, ConsumerGroupHeartbeat), a raw
request (tests/wire.py) checks the exact one.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kio.index import load_request_schema

from support.kit import wait_until
from support.secure import USERS, SecuredBroker
from wire import WireClient, fetch_body

# Kafka's error codes the matrix expects.
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MEMBER_ID_REQUIRED = 79

TIMEOUT_S = 20.0
LITERAL = ResourcePatternType.LITERAL
PREFIXED = ResourcePatternType.PREFIXED
ALLOW = AclPermissionType.ALLOW
DENY = AclPermissionType.DENY
Op = AclOperation
Res = ResourceType


# --------------------------------------------------------------------------------------------------
# The broker under test, its principals, and raw SASL connections


@dataclass
class Side:
    """One secured broker (support.secure): ``admin_bootstrap`` is its PLAINTEXT listener, whose
    principal User:ANONYMOUS is a super user; alice, bob and admin log in on ``sasl_bootstrap``."""

    broker: SecuredBroker
    mechanism: str
    _user_admins: dict[str, AdminClient] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.broker.kind

    @property
    def admin_bootstrap(self) -> str:
        return self.broker.bootstrap("PLAINTEXT")

    @property
    def sasl_bootstrap(self) -> str:
        return self.broker.bootstrap("SASL_PLAINTEXT")

    def conf(self, user: str, **extra: Any) -> dict[str, Any]:
        """confluent-kafka settings of a SASL_PLAINTEXT client logged in as ``user``."""
        return self.broker.confluent_config("SASL_PLAINTEXT", self.mechanism, user, **extra)

    @property
    def admin(self) -> AdminClient:
        return self.broker.admin()

    def user_admin(self, user: str) -> AdminClient:
        """One per user and test (kept: a collected client fails the futures it leaves)."""
        if user not in self._user_admins:
            self._user_admins[user] = AdminClient(self.conf(user))
        return self._user_admins[user]

    def wire(self, user: str) -> WireClient:
        """A raw connection authenticated as ``user`` (SaslHandshake v1 + SaslAuthenticate v2)."""
        w = WireClient(self.sasl_bootstrap)
        try:
            sasl_login(w, self.mechanism, user, USERS[user])
        except BaseException:
            w.close()
            raise
        return w


def _request(w: WireClient, key: int, version: int, body: dict[str, Any]) -> Any:
    return w.request(load_request_schema(key, version), body)


def sasl_login(w: WireClient, mechanism: str, user: str, password: str) -> None:
    """PLAIN, or a SCRAM-SHA-256/512 client exchange (RFC 5802) checked to the server's signature."""
    r = _request(w, 17, 1, {"mechanism": mechanism})
    assert r.error_code == 0, r
    if mechanism == "PLAIN":
        r = _request(w, 36, 2, {"auth_bytes": f"\0{user}\0{password}".encode()})
        assert r.error_code == 0, r
        return
    h = hashlib.sha512 if mechanism == "SCRAM-SHA-512" else hashlib.sha256
    bare = f"n={user},r={base64.b64encode(os.urandom(18)).decode()}"
    r = _request(w, 36, 2, {"auth_bytes": f"n,,{bare}".encode()})
    assert r.error_code == 0, r
    first = r.auth_bytes.decode()
    fields = dict(part.split("=", 1) for part in first.split(","))
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", h).digest()
    final = f"c=biws,r={fields['r']}"
    signature = hmac.new(h(client_key).digest(), f"{bare},{first},{final}".encode(), h).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    r = _request(w, 36, 2, {"auth_bytes": f"{final},p={proof}".encode()})
    assert r.error_code == 0, r
    server_key = hmac.new(salted, b"Server Key", h).digest()
    server_signature = hmac.new(server_key, f"{bare},{first},{final}".encode(), h).digest()
    assert r.auth_bytes == b"v=" + base64.b64encode(server_signature), r


@pytest.fixture
def side(secured: SecuredBroker) -> Side:
    """The secured broker of the test's kind. SCRAM-SHA-512 logins; PLAIN where the SCRAM users could
    not be created (``secured.scram_error``, which the SCRAM tests of test_connect_* report)."""
    return Side(secured, "PLAIN" if secured.scram_error else "SCRAM-SHA-512")


# --------------------------------------------------------------------------------------------------
# ACLs granted for one test, deleted at its end


class Grants:
    def __init__(self, side: Side) -> None:
        self.side = side
        self.bindings: list[AclBinding] = []

    def add(
        self,
        permission: AclPermissionType,
        principal: str,
        rtype: ResourceType,
        name: str,
        *ops: AclOperation,
        pattern: ResourcePatternType = LITERAL,
        host: str = "*",
    ) -> None:
        new = [AclBinding(rtype, name, pattern, principal, host, op, permission) for op in ops]
        for f in self.side.admin.create_acls(new).values():
            f.result(TIMEOUT_S)
        self.bindings += new
        # DescribeAcls answers from the authorizer the requests are checked against: once it lists the
        # bindings, they are in force.
        filt = AclBindingFilter(rtype, name, pattern, principal, None, Op.ANY, AclPermissionType.ANY)
        deadline = time.monotonic() + TIMEOUT_S
        while not set(new) <= set(self.side.admin.describe_acls(filt).result(TIMEOUT_S)):
            assert time.monotonic() < deadline, f"ACLs {new} not in force after {TIMEOUT_S}s"
            time.sleep(0.05)

    def allow(self, principal: str, rtype: ResourceType, name: str, *ops: AclOperation, **kw: Any) -> None:
        self.add(ALLOW, principal, rtype, name, *ops, **kw)

    def deny(self, principal: str, rtype: ResourceType, name: str, *ops: AclOperation, **kw: Any) -> None:
        self.add(DENY, principal, rtype, name, *ops, **kw)

    def revoke_all(self) -> None:
        if not self.bindings:
            return
        filters = [
            AclBindingFilter(
                b.restype,
                b.name,
                b.resource_pattern_type,
                b.principal,
                b.host,
                b.operation,
                b.permission_type,
            )
            for b in self.bindings
        ]
        for f in self.side.admin.delete_acls(filters).values():
            f.result(TIMEOUT_S)
        self.bindings = []


@pytest.fixture
def acls(side: Side) -> Iterator[Grants]:
    grants = Grants(side)
    yield grants
    grants.revoke_all()


ALICE, BOB = "User:alice", "User:bob"


# --------------------------------------------------------------------------------------------------
# Client helpers


def code_of(e: BaseException | KafkaError | None) -> int | None:
    if e is None:
        return None
    if isinstance(e, KafkaException):
        e = e.args[0]
    assert isinstance(e, KafkaError), repr(e)
    return e.code()


def make_topic(side: Side, name: str, partitions: int = 1, value: bytes | None = b"v0") -> str:
    """Created by the super user, with one record in it unless ``value`` is None."""
    side.admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)
    if value is not None:
        p = Producer({"bootstrap.servers": side.admin_bootstrap, "log_level": 0})
        err: list[KafkaError | None] = []
        p.produce(name, value, partition=0, on_delivery=lambda e, _m: err.append(e))
        assert p.flush(TIMEOUT_S) == 0 and err == [None], err
    return name


def deliver(side: Side, user: str, topic: str, *, idempotent: bool = False) -> int | None:
    """Produce one record as ``user``; the delivery report's error code (None: delivered)."""
    p = Producer(side.conf(user, **{"enable.idempotence": idempotent, "message.timeout.ms": 10000}))
    got: list[KafkaError | None] = []
    p.produce(topic, b"x", partition=0, on_delivery=lambda e, _m: got.append(e))
    p.flush(TIMEOUT_S)
    assert got, f"no delivery report for {user} on {topic}"
    return code_of(got[0])


def first_message_or_error(c: Consumer) -> tuple[bytes | None, int | None]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            return None, m.error().code()
        return m.value(), None
    raise AssertionError("neither a record nor an error within the timeout")


def fetch_code(w: WireClient, topic: str) -> int:
    r = _request(w, 1, 12, fetch_body({(topic, 0): 0}))
    top = r.responses[0]
    return int(r.error_code) or int(top.partitions[0].error_code)


def list_offsets_code(w: WireClient, topic: str) -> int:
    body = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [
            {
                "name": topic,
                "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}],
            }
        ],
    }
    return int(_request(w, 2, 7, body).topics[0].partitions[0].error_code)


def metadata(w: WireClient, topics: list[str] | None, *, auto_create: bool = False) -> dict[str, int]:
    body = {
        "topics": None if topics is None else [{"name": t, "topic_id": None} for t in topics],
        "allow_auto_topic_creation": auto_create,
        "include_topic_authorized_operations": False,
    }
    return {t.name: int(t.error_code) for t in _request(w, 3, 12, body).topics}


# A coordinator that is still loading (Kafka creates its internal topics on first use) or busy.
RETRIABLE = {14, 15, 16, 51}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TXNS


def _settled(ask: Callable[[], int]) -> int:
    """``ask()`` again while it answers a retriable coordinator error, for a bounded time."""
    deadline = time.monotonic() + TIMEOUT_S
    while (code := ask()) in RETRIABLE and time.monotonic() < deadline:
        time.sleep(0.1)
    return code


def init_producer_id_code(w: WireClient, transactional_id: str | None) -> int:
    body = {
        "transactional_id": transactional_id,
        "transaction_timeout": datetime.timedelta(seconds=60),
        "producer_id": -1,
        "producer_epoch": -1,
    }
    return _settled(lambda: int(_request(w, 22, 4, body).error_code))


def find_group_coordinator_code(w: WireClient, group: str) -> int:
    body = {"key_type": 0, "coordinator_keys": [group]}
    return _settled(lambda: int(_request(w, 10, 4, body).coordinators[0].error_code))


def describe_acls_code(w: WireClient) -> int:
    body = {
        "resource_type_filter": 1,  # ANY
        "resource_name_filter": None,
        "pattern_type_filter": 1,
        "principal_filter": None,
        "host_filter": None,
        "operation": 1,
        "permission_type": 1,
    }
    return int(_request(w, 29, 3, body).error_code)


def describe_transactions_code(w: WireClient, txn: str) -> int:
    """The error code of one DescribeTransactions v0 answer, read by hand: kio cannot decode the
    transaction_start_time -1 of a transaction that has not started."""
    corr = w.next_correlation_id()
    w.send_raw(w.encode_request(load_request_schema(65, 0), {"transactional_ids": [txn]}, corr))
    frame = w.read_frame()
    assert struct.unpack(">i", frame[:4])[0] == corr and frame[4] == 0  # no tagged header fields
    at = 4 + 1 + 4  # correlation id, tagged fields, throttle_time_ms
    assert frame[at] == 2, frame[:16]  # a compact array of one state (length + 1, one varint byte)
    return struct.unpack(">h", frame[at + 1 : at + 3])[0]


def alter_scram_user_code(w: WireClient, user: str) -> int:
    """AlterUserScramCredentials' error for one SCRAM-SHA-256 upsertion of ``user``."""
    salt = os.urandom(16)
    upsert = {
        "name": user,
        "mechanism": 1,  # SCRAM-SHA-256
        "iterations": 4096,
        "salt": salt,
        "salted_password": hashlib.pbkdf2_hmac("sha256", b"pw", salt, 4096),
    }
    [result] = _request(w, 51, 0, {"deletions": [], "upsertions": [upsert]}).results
    return int(result.error_code)


# --------------------------------------------------------------------------------------------------
# Produce


def test_produce_needs_write_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"))
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE)
    assert deliver(side, "bob", topic) == TOPIC_AUTHORIZATION_FAILED
    assert deliver(side, "alice", topic) is None


def test_idempotent_produce_needs_idempotent_write_on_the_cluster_or_write_on_a_topic(
    side: Side, acls: Grants, unique
) -> None:
    topic = make_topic(side, unique("topic"))
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE)
    with side.wire("bob") as w:  # nothing granted: InitProducerId is refused on the cluster
        assert init_producer_id_code(w, None) == CLUSTER_AUTHORIZATION_FAILED
    with side.wire("alice") as w:  # WRITE on a topic is enough since Kafka 3
        assert init_producer_id_code(w, None) == 0
    assert deliver(side, "alice", topic, idempotent=True) is None

    acls.allow(BOB, Res.BROKER, "kafka-cluster", Op.IDEMPOTENT_WRITE)
    with side.wire("bob") as w:  # IDEMPOTENT_WRITE on the cluster: a producer id, still no topic
        assert init_producer_id_code(w, None) == 0
    assert deliver(side, "bob", topic, idempotent=True) == TOPIC_AUTHORIZATION_FAILED


# --------------------------------------------------------------------------------------------------
# Fetch, ListOffsets, Metadata


def test_fetch_needs_read_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=b"hello")
    group = unique("group")  # librdkafka looks its group's coordinator up even for assign()
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)  # bob may see the topic, not read it
    for principal in (ALICE, BOB):
        acls.allow(principal, Res.GROUP, group, Op.READ)
    with side.wire("bob") as w:
        assert fetch_code(w, topic) == TOPIC_AUTHORIZATION_FAILED
    with side.wire("alice") as w:
        assert fetch_code(w, topic) == 0
    for user, expected in (("bob", (None, TOPIC_AUTHORIZATION_FAILED)), ("alice", (b"hello", None))):
        c = Consumer(side.conf(user, **{"group.id": group, "enable.auto.commit": False}))
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            assert first_message_or_error(c) == expected, user
        finally:
            c.close()


def test_list_offsets_and_metadata_need_describe_on_the_topic(side: Side, acls: Grants, unique) -> None:
    seen, hidden = make_topic(side, unique("seen")), make_topic(side, unique("hidden"))
    acls.allow(BOB, Res.TOPIC, seen, Op.DESCRIBE)
    with side.wire("bob") as w:
        assert list_offsets_code(w, seen) == 0
        assert list_offsets_code(w, hidden) == TOPIC_AUTHORIZATION_FAILED
        assert metadata(w, [seen, hidden]) == {seen: 0, hidden: TOPIC_AUTHORIZATION_FAILED}
        everything = metadata(w, None)  # all topics: the ones bob may not describe are left out
        assert seen in everything and hidden not in everything
    listed = side.user_admin("bob").list_topics(timeout=TIMEOUT_S).topics
    assert seen in listed and hidden not in listed


def test_write_implies_describe_and_all_implies_everything(side: Side, acls: Grants, unique) -> None:
    written, owned = make_topic(side, unique("written")), make_topic(side, unique("owned"))
    acls.allow(BOB, Res.TOPIC, written, Op.WRITE)
    acls.allow(BOB, Res.TOPIC, owned, Op.ALL)
    with side.wire("bob") as w:
        assert list_offsets_code(w, written) == 0  # WRITE implies DESCRIBE
        assert fetch_code(w, written) == TOPIC_AUTHORIZATION_FAILED  # but not READ
        assert fetch_code(w, owned) == 0
    assert deliver(side, "bob", owned) is None


# --------------------------------------------------------------------------------------------------
# Consumer groups


def test_consumer_group_needs_read_on_the_group_and_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=b"hello")
    group = unique("group")
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)
    acls.allow(BOB, Res.TOPIC, topic, Op.READ)
    acls.allow(ALICE, Res.GROUP, group, Op.READ)
    with side.wire("bob") as w:  # bob may read the topic, not use the group
        assert find_group_coordinator_code(w, group) == GROUP_AUTHORIZATION_FAILED
    with side.wire("alice") as w:
        assert find_group_coordinator_code(w, group) == 0

    for user, expected in (("bob", (None, GROUP_AUTHORIZATION_FAILED)), ("alice", (b"hello", None))):
        conf = {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        c = Consumer(side.conf(user, **conf))
        try:
            c.subscribe([topic])
            assert first_message_or_error(c) == expected, user
            if user == "alice":
                c.commit(asynchronous=False)
                [tp] = c.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
                assert tp.error is None and tp.offset == 1
        finally:
            c.close()


def test_offset_commit_and_fetch_need_read_on_the_group_and_the_topic(
    side: Side, acls: Grants, unique
) -> None:
    topic, other = make_topic(side, unique("topic")), make_topic(side, unique("other"))
    group, foreign = unique("group"), unique("foreign")
    acls.allow(ALICE, Res.GROUP, group, Op.READ)
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)

    def commit(w: WireClient, g: str) -> tuple[int, dict[str, int]]:
        body = {
            "group_id": g,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [
                {
                    "name": t,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": 1,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "",
                        }
                    ],
                }
                for t in (topic, other)
            ],
        }
        r = _request(w, 8, 8, body)
        return 0, {t.name: int(t.partitions[0].error_code) for t in r.topics}

    def fetch(w: WireClient, g: str) -> tuple[int, dict[str, int]]:
        body = {
            "groups": [
                {"group_id": g, "topics": [{"name": t, "partition_indexes": [0]} for t in (topic, other)]}
            ],
            "require_stable": False,
        }
        [out] = _request(w, 9, 8, body).groups
        return int(out.error_code), {t.name: int(t.partitions[0].error_code) for t in out.topics}

    with side.wire("alice") as w:
        assert commit(w, group) == (0, {topic: 0, other: TOPIC_AUTHORIZATION_FAILED})
        code, parts = fetch(w, group)
        assert code == 0 and parts[topic] == 0
        assert commit(w, foreign)[1] == {topic: GROUP_AUTHORIZATION_FAILED, other: GROUP_AUTHORIZATION_FAILED}
        assert fetch(w, foreign)[0] == GROUP_AUTHORIZATION_FAILED


# --------------------------------------------------------------------------------------------------
# Transactions


def test_transactions_need_write_on_the_transactional_id(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    txn = unique("txn")
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE)
    acls.allow(BOB, Res.TOPIC, topic, Op.WRITE)
    acls.allow(ALICE, Res.TRANSACTIONAL_ID, txn, Op.WRITE)
    with side.wire("bob") as w:
        assert init_producer_id_code(w, txn) == TRANSACTIONAL_ID_AUTHORIZATION_FAILED

    bob = Producer(side.conf("bob", **{"transactional.id": txn}))
    with pytest.raises(KafkaException) as refused:
        bob.init_transactions(TIMEOUT_S)
    assert code_of(refused.value) == TRANSACTIONAL_ID_AUTHORIZATION_FAILED

    alice = Producer(side.conf("alice", **{"transactional.id": txn}))
    alice.init_transactions(TIMEOUT_S)
    alice.begin_transaction()
    alice.produce(topic, b"in a transaction", partition=0)
    alice.commit_transaction(TIMEOUT_S)


def test_send_offsets_to_transaction_needs_read_on_the_group(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    source = make_topic(side, unique("source"))
    txn, group, granted = unique("txn"), unique("group"), unique("granted")
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE)
    acls.allow(ALICE, Res.TOPIC, source, Op.READ)
    acls.allow(ALICE, Res.TRANSACTIONAL_ID, txn, Op.WRITE)
    acls.allow(ALICE, Res.GROUP, granted, Op.READ)
    p = Producer(side.conf("alice", **{"transactional.id": txn}))
    p.init_transactions(TIMEOUT_S)

    def send_offsets(g: str) -> int | None:
        p.begin_transaction()
        p.produce(topic, b"x", partition=0)
        c = Consumer(side.conf("alice", **{"group.id": g}))
        try:
            p.send_offsets_to_transaction(
                [TopicPartition(source, 0, 1)], c.consumer_group_metadata(), TIMEOUT_S
            )
        except KafkaException as e:
            p.abort_transaction(TIMEOUT_S)
            return code_of(e)
        finally:
            c.close()
        p.commit_transaction(TIMEOUT_S)
        return None

    assert send_offsets(group) == GROUP_AUTHORIZATION_FAILED
    assert send_offsets(granted) is None


# --------------------------------------------------------------------------------------------------
# Admin


def test_create_topics_needs_create_on_the_topic_or_the_cluster(side: Side, acls: Grants, unique) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    acls.allow(ALICE, Res.TOPIC, mine, Op.CREATE)
    for user, name, expected in (("bob", theirs, TOPIC_AUTHORIZATION_FAILED), ("alice", mine, None)):
        f = side.user_admin(user).create_topics([NewTopic(name, 1, 1)])[name]
        assert code_of(f.exception(TIMEOUT_S)) == expected, user
    acls.allow(BOB, Res.BROKER, "kafka-cluster", Op.CREATE)
    f = side.user_admin("bob").create_topics([NewTopic(theirs, 1, 1)])[theirs]
    assert f.exception(TIMEOUT_S) is None


def test_delete_topics_needs_delete_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.DELETE)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)
    f = side.user_admin("bob").delete_topics([topic])[topic]
    assert code_of(f.exception(TIMEOUT_S)) == TOPIC_AUTHORIZATION_FAILED
    f = side.user_admin("alice").delete_topics([topic])[topic]
    assert f.exception(TIMEOUT_S) is None


def test_create_partitions_needs_alter_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.ALTER)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)
    f = side.user_admin("bob").create_partitions([NewPartitions(topic, 2)])[topic]
    assert code_of(f.exception(TIMEOUT_S)) == TOPIC_AUTHORIZATION_FAILED
    f = side.user_admin("alice").create_partitions([NewPartitions(topic, 2)])[topic]
    assert f.exception(TIMEOUT_S) is None


def test_describe_and_alter_configs_need_describe_configs_and_alter_configs(
    side: Side, acls: Grants, unique
) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    change = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    bob, alice = side.user_admin("bob"), side.user_admin("alice")
    for f in bob.describe_configs([resource]).values():
        assert code_of(f.exception(TIMEOUT_S)) == TOPIC_AUTHORIZATION_FAILED
    for f in bob.incremental_alter_configs([change]).values():
        assert code_of(f.exception(TIMEOUT_S)) == TOPIC_AUTHORIZATION_FAILED
    for f in alice.incremental_alter_configs([change]).values():
        assert f.exception(TIMEOUT_S) is None
    for f in alice.describe_configs([resource]).values():
        assert f.result(TIMEOUT_S)["retention.ms"].value == "3600000"
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    for f in bob.describe_configs([broker]).values():  # a broker's configs: DESCRIBE_CONFIGS on the cluster
        assert code_of(f.exception(TIMEOUT_S)) == CLUSTER_AUTHORIZATION_FAILED


def _make_group(side: Side, topics: list[str], group: str) -> None:
    """A group with committed offsets, made by the super user (again while the coordinator loads)."""
    c = Consumer({"bootstrap.servers": side.admin_bootstrap, "group.id": group, "log_level": 0})
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                c.commit(offsets=[TopicPartition(t, 0, 1) for t in topics], asynchronous=False)
                return
            except KafkaException as e:
                if code_of(e) not in RETRIABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        c.close()


def test_describe_list_and_delete_groups_need_describe_and_delete_on_the_group(
    side: Side, acls: Grants, unique
) -> None:
    topic = make_topic(side, unique("topic"))
    group, hidden = unique("group"), unique("hidden")
    _make_group(side, [topic], group)
    _make_group(side, [topic], hidden)
    acls.allow(ALICE, Res.GROUP, group, Op.DESCRIBE, Op.DELETE)
    bob, alice = side.user_admin("bob"), side.user_admin("alice")

    [f] = bob.describe_consumer_groups([group]).values()
    assert code_of(f.exception(TIMEOUT_S)) == GROUP_AUTHORIZATION_FAILED
    [f] = alice.describe_consumer_groups([group]).values()
    assert f.result(TIMEOUT_S).group_id == group

    listed = {g.group_id for g in alice.list_consumer_groups().result(TIMEOUT_S).valid}
    assert group in listed and hidden not in listed
    assert group not in {g.group_id for g in bob.list_consumer_groups().result(TIMEOUT_S).valid}

    [f] = bob.delete_consumer_groups([group]).values()
    assert code_of(f.exception(TIMEOUT_S)) == GROUP_AUTHORIZATION_FAILED
    [f] = alice.delete_consumer_groups([group]).values()
    assert f.exception(TIMEOUT_S) is None


def test_acl_apis_need_alter_and_describe_on_the_cluster(side: Side, acls: Grants, unique) -> None:
    topic = unique("topic")
    binding = AclBinding(Res.TOPIC, topic, LITERAL, BOB, "*", Op.READ, ALLOW)
    everything = AclBindingFilter(
        Res.ANY, None, ResourcePatternType.ANY, None, None, Op.ANY, AclPermissionType.ANY
    )
    bob = side.user_admin("bob")
    [f] = bob.create_acls([binding]).values()
    assert code_of(f.exception(TIMEOUT_S)) == CLUSTER_AUTHORIZATION_FAILED
    with side.wire("bob") as w:  # confluent-kafka answers [] where Kafka refuses: the raw code
        assert describe_acls_code(w) == CLUSTER_AUTHORIZATION_FAILED
    [f] = bob.delete_acls([everything]).values()
    assert code_of(f.exception(TIMEOUT_S)) == CLUSTER_AUTHORIZATION_FAILED

    acls.allow(ALICE, Res.BROKER, "kafka-cluster", Op.ALTER, Op.DESCRIBE)
    alice = side.user_admin("alice")
    [f] = alice.create_acls([binding]).values()
    assert f.exception(TIMEOUT_S) is None
    acls.bindings.append(binding)  # deleted at the end like the others
    with side.wire("alice") as w:
        assert describe_acls_code(w) == 0
    mine = AclBindingFilter(Res.TOPIC, topic, LITERAL, None, None, Op.ANY, AclPermissionType.ANY)
    assert alice.describe_acls(mine).result(TIMEOUT_S) == [binding]


def test_describe_cluster_reports_the_authorized_operations(side: Side, acls: Grants) -> None:
    acls.allow(ALICE, Res.BROKER, "kafka-cluster", Op.DESCRIBE, Op.ALTER)
    for user, expected in (("bob", set()), ("alice", {Op.DESCRIBE, Op.ALTER})):
        r = side.user_admin(user).describe_cluster(include_authorized_operations=True).result(TIMEOUT_S)
        assert set(r.authorized_operations or []) == expected, user
    r = side.admin.describe_cluster(include_authorized_operations=True).result(TIMEOUT_S)
    assert {Op.DESCRIBE, Op.ALTER, Op.CREATE, Op.IDEMPOTENT_WRITE} <= set(r.authorized_operations)


# --------------------------------------------------------------------------------------------------
# How ACLs combine


def test_deny_wins_over_allow(side: Side, acls: Grants, unique) -> None:
    prefix = unique("pfx") + "-"
    topic = make_topic(side, prefix + "t", value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.ALL)
    assert deliver(side, "alice", topic) is None
    acls.deny(ALICE, Res.TOPIC, topic, Op.WRITE)
    assert deliver(side, "alice", topic) == TOPIC_AUTHORIZATION_FAILED
    acls.allow(BOB, Res.TOPIC, topic, Op.WRITE)
    assert deliver(side, "bob", topic) is None
    acls.deny(BOB, Res.TOPIC, prefix, Op.ALL, pattern=PREFIXED)  # a prefixed DENY beats a literal ALLOW
    assert deliver(side, "bob", topic) == TOPIC_AUTHORIZATION_FAILED


def test_prefixed_acls_cover_every_name_with_the_prefix(side: Side, acls: Grants, unique) -> None:
    prefix = unique("team") + "."
    inside, outside = (
        make_topic(side, prefix + "orders", value=None),
        make_topic(side, unique("x"), value=None),
    )
    acls.allow(ALICE, Res.TOPIC, prefix, Op.WRITE, pattern=PREFIXED)
    assert deliver(side, "alice", inside) is None
    assert deliver(side, "alice", outside) == TOPIC_AUTHORIZATION_FAILED
    acls.deny(ALICE, Res.TOPIC, prefix + "ord", Op.WRITE, pattern=PREFIXED)  # a DENY on a longer prefix too
    assert deliver(side, "alice", inside) == TOPIC_AUTHORIZATION_FAILED


def test_wildcard_principal_and_wildcard_resource(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow("User:*", Res.TOPIC, topic, Op.WRITE)
    assert deliver(side, "bob", topic) is None
    assert deliver(side, "alice", topic) is None
    acls.deny(BOB, Res.TOPIC, topic, Op.WRITE)
    assert deliver(side, "bob", topic) == TOPIC_AUTHORIZATION_FAILED
    fresh = make_topic(side, unique("fresh"), value=None)
    with side.wire("alice") as w:
        assert list_offsets_code(w, fresh) == TOPIC_AUTHORIZATION_FAILED
        acls.allow(ALICE, Res.TOPIC, "*", Op.DESCRIBE)  # the literal name "*": every topic
        assert list_offsets_code(w, fresh) == 0


def test_acls_for_another_host_do_not_apply(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE, host="192.0.2.1")
    assert deliver(side, "alice", topic) == TOPIC_AUTHORIZATION_FAILED
    acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE, host="127.0.0.1")
    assert deliver(side, "alice", topic) is None


def test_the_super_user_needs_no_acl(side: Side, unique) -> None:
    topic = unique("topic")
    f = side.admin.create_topics([NewTopic(topic, 1, 1)])[topic]
    assert f.exception(TIMEOUT_S) is None
    p = Producer({"bootstrap.servers": side.admin_bootstrap, "log_level": 0, "enable.idempotence": True})
    got: list[KafkaError | None] = []
    p.produce(topic, b"x", on_delivery=lambda e, _m: got.append(e))
    p.flush(TIMEOUT_S)
    assert got == [None]
    with WireClient(side.admin_bootstrap) as w:
        assert fetch_code(w, topic) == 0
        assert init_producer_id_code(w, None) == 0
    # User:admin, the other super user, over SASL.
    assert deliver(side, "admin", topic, idempotent=True) is None
    with side.wire("admin") as w:
        assert fetch_code(w, topic) == 0
        assert describe_acls_code(w) == 0


def test_auto_creation_by_metadata_needs_create(side: Side, acls: Grants, unique) -> None:
    refused, created = unique("refused"), unique("created")
    acls.allow(BOB, Res.TOPIC, refused, Op.DESCRIBE)  # may see it, not create it
    acls.allow(ALICE, Res.TOPIC, created, Op.DESCRIBE, Op.CREATE)
    with side.wire("bob") as w:
        assert metadata(w, [refused], auto_create=True) == {refused: TOPIC_AUTHORIZATION_FAILED}
    with side.wire("alice") as w:
        # Kafka 4.4 answers UNKNOWN_TOPIC_OR_PARTITION while the controller creates it, Odradek the topic.
        code = metadata(w, [created], auto_create=True)[created]
        assert code in (0, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION), code
    wait_until(lambda: created in side.admin.list_topics(timeout=TIMEOUT_S).topics, TIMEOUT_S, created)
    assert refused not in side.admin.list_topics(timeout=TIMEOUT_S).topics


def test_metadata_reports_the_topic_authorized_operations(side: Side, acls: Grants, unique) -> None:
    described, written = make_topic(side, unique("described")), make_topic(side, unique("written"))
    acls.allow(BOB, Res.TOPIC, described, Op.DESCRIBE)
    acls.allow(BOB, Res.TOPIC, written, Op.WRITE, Op.DESCRIBE_CONFIGS)
    body = {
        "topics": [{"name": t, "topic_id": None} for t in (described, written)],
        "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": True,
    }
    with side.wire("bob") as w:
        got = {t.name: int(t.topic_authorized_operations) for t in _request(w, 3, 12, body).topics}
    bits = lambda *ops: sum(1 << int(op.value) for op in ops)  # noqa: E731
    assert got == {described: bits(Op.DESCRIBE), written: bits(Op.WRITE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS)}


def test_join_group_needs_read_on_the_group(side: Side, acls: Grants, unique) -> None:
    group = unique("group")
    acls.allow(ALICE, Res.GROUP, group, Op.READ)
    body = {
        "group_id": group,
        "session_timeout": datetime.timedelta(seconds=10),
        "rebalance_timeout": datetime.timedelta(seconds=10),
        "member_id": "",
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}],
        "reason": None,
    }
    with side.wire("bob") as w:
        assert int(_request(w, 11, 9, body).error_code) == GROUP_AUTHORIZATION_FAILED
    with side.wire("alice") as w:  # allowed: the first JoinGroup asks the member to come back with an id
        assert _settled(lambda: int(_request(w, 11, 9, body).error_code)) == MEMBER_ID_REQUIRED


# --------------------------------------------------------------------------------------------------
# More APIs: transactional produce, records and offsets deletion, SCRAM users, transactions, producers,
# log dirs, leader elections, KIP-848 heartbeats, group authorized operations


def test_transactional_produce_needs_write_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic, txn = make_topic(side, unique("topic"), value=None), unique("txn")
    acls.allow(ALICE, Res.TRANSACTIONAL_ID, txn, Op.WRITE)
    with side.wire("alice") as w:
        body = {
            "transactional_id": txn,
            "transaction_timeout": datetime.timedelta(seconds=60),
            "producer_id": -1,
            "producer_epoch": -1,
        }
        find = {"key_type": 1, "coordinator_keys": [txn]}  # Kafka makes __transaction_state on this
        assert _settled(lambda: int(_request(w, 10, 4, find).coordinators[0].error_code)) == 0
        answers: list[Any] = []
        assert _settled(lambda: int(answers.append(_request(w, 22, 4, body)) or answers[-1].error_code)) == 0
        r = answers[-1]
        add = {
            "v3_and_below_transactional_id": txn,
            "v3_and_below_producer_id": int(r.producer_id),
            "v3_and_below_producer_epoch": int(r.producer_epoch),
            "v3_and_below_topics": [{"name": topic, "partitions": [0]}],
        }
        [result] = _request(w, 24, 3, add).results_by_topic_v3_and_below
        assert int(result.results_by_partition[0].partition_error_code) == TOPIC_AUTHORIZATION_FAILED
        acls.allow(ALICE, Res.TOPIC, topic, Op.WRITE)
        [result] = _request(w, 24, 3, add).results_by_topic_v3_and_below
        assert int(result.results_by_partition[0].partition_error_code) == 0


def test_delete_records_needs_delete_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"))
    acls.allow(ALICE, Res.TOPIC, topic, Op.DELETE)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)
    [f] = side.user_admin("bob").delete_records([TopicPartition(topic, 0, 1)]).values()
    assert code_of(f.exception(TIMEOUT_S)) == TOPIC_AUTHORIZATION_FAILED
    [f] = side.user_admin("alice").delete_records([TopicPartition(topic, 0, 1)]).values()
    assert f.result(TIMEOUT_S).low_watermark == 1


def test_offset_delete_needs_delete_on_the_group_and_read_on_the_topic(
    side: Side, acls: Grants, unique
) -> None:
    topic, other = make_topic(side, unique("topic")), make_topic(side, unique("other"))
    group = unique("group")
    _make_group(side, [topic, other], group)
    acls.allow(ALICE, Res.GROUP, group, Op.DELETE)
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)
    body = {
        "group_id": group,
        "topics": [{"name": t, "partitions": [{"partition_index": 0}]} for t in (topic, other)],
    }
    with side.wire("bob") as w:
        assert _settled(lambda: int(_request(w, 47, 0, body).error_code)) == GROUP_AUTHORIZATION_FAILED
    with side.wire("alice") as w:
        r = _request(w, 47, 0, body)
        assert int(r.error_code) == 0, r
        assert {t.name: int(t.partitions[0].error_code) for t in r.topics} == {
            topic: 0,
            other: TOPIC_AUTHORIZATION_FAILED,
        }


def test_scram_credential_apis_need_alter_and_describe_on_the_cluster(
    side: Side, acls: Grants, unique
) -> None:
    user = unique("carol")
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw"
    )
    # Refusals checked raw, and only for AlterUserScramCredentials: Kafka 4.4 leaves a refused
    # DescribeUserScramCredentials unanswered, and librdkafka 2.16 aborts the process on a refused one.
    with side.wire("bob") as w:
        assert alter_scram_user_code(w, user) == CLUSTER_AUTHORIZATION_FAILED

    acls.allow(ALICE, Res.BROKER, "kafka-cluster", Op.ALTER, Op.DESCRIBE)
    alice = side.user_admin("alice")
    [f] = alice.alter_user_scram_credentials([upsert]).values()
    try:
        assert f.exception(TIMEOUT_S) is None
        described = wait_until(
            lambda: alice.describe_user_scram_credentials().result(TIMEOUT_S).get(user), TIMEOUT_S, user
        )
        assert [i.mechanism for i in described.scram_credential_infos] == [ScramMechanism.SCRAM_SHA_256]
    finally:
        gone = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)
        for f in side.admin.alter_user_scram_credentials([gone]).values():
            f.exception(TIMEOUT_S)


def test_describe_and_list_transactions_need_describe_on_the_transactional_id(
    side: Side, acls: Grants, unique
) -> None:
    txn = unique("txn")
    acls.allow(ALICE, Res.TRANSACTIONAL_ID, txn, Op.WRITE)  # WRITE implies DESCRIBE
    Producer(side.conf("alice", **{"transactional.id": txn})).init_transactions(TIMEOUT_S)
    listing = {"state_filters": [], "producer_id_filters": [], "duration_filter": -1}
    for user, expected in (("bob", TRANSACTIONAL_ID_AUTHORIZATION_FAILED), ("alice", 0)):
        with side.wire(user) as w:
            assert describe_transactions_code(w, txn) == expected, user
            listed = {t.transactional_id for t in _request(w, 66, 1, listing).transaction_states}
            assert (txn in listed) == (user == "alice"), user


def test_describe_producers_needs_read_on_the_topic(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"))
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)
    acls.allow(BOB, Res.TOPIC, topic, Op.DESCRIBE)
    body = {"topics": [{"name": topic, "partition_indexes": [0]}]}
    for user, expected in (("bob", TOPIC_AUTHORIZATION_FAILED), ("alice", 0)):
        with side.wire(user) as w:
            [answer] = _request(w, 61, 0, body).topics
            assert int(answer.partitions[0].error_code) == expected, user


def test_log_dirs_and_leader_elections_need_the_cluster(side: Side, acls: Grants, unique) -> None:
    topic = make_topic(side, unique("topic"), value=None)
    acls.allow(ALICE, Res.TOPIC, topic, Op.ALL)  # topic rights do not stand in for the cluster's
    log_dirs = {"topics": None}
    elect = {
        "election_type": 0,
        "topic_partitions": [{"topic": topic, "partitions": [0]}],
        "timeout": datetime.timedelta(seconds=10),
    }
    with side.wire("alice") as w:
        assert int(_request(w, 35, 4, log_dirs).error_code) == CLUSTER_AUTHORIZATION_FAILED
        assert int(_request(w, 43, 2, elect).error_code) == CLUSTER_AUTHORIZATION_FAILED
    acls.allow(ALICE, Res.BROKER, "kafka-cluster", Op.DESCRIBE, Op.ALTER)
    with side.wire("alice") as w:
        assert int(_request(w, 35, 4, log_dirs).error_code) == 0
        assert int(_request(w, 43, 2, elect).error_code) == 0


def test_consumer_group_heartbeat_needs_read_on_the_group(side: Side, acls: Grants, unique) -> None:
    topic, group = make_topic(side, unique("topic")), unique("group")
    acls.allow(ALICE, Res.GROUP, group, Op.READ)
    acls.allow(ALICE, Res.TOPIC, topic, Op.READ)
    acls.allow(BOB, Res.TOPIC, topic, Op.READ)

    def heartbeat(member_id: str, epoch: int) -> dict[str, Any]:
        return {
            "group_id": group,
            "member_id": member_id,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": datetime.timedelta(seconds=10),
            "subscribed_topic_names": [topic] if epoch == 0 else None,
            "server_assignor": None,
            "topic_partitions": [] if epoch == 0 else None,
        }

    with side.wire("bob") as w:
        r = _request(w, 68, 0, heartbeat("", 0))
        assert int(r.error_code) == GROUP_AUTHORIZATION_FAILED, r
    with side.wire("alice") as w:
        r = _request(w, 68, 0, heartbeat("", 0))
        assert _settled(lambda: int(r.error_code)) == 0, r
        _request(w, 68, 0, heartbeat(r.member_id, -1))  # leave


def test_describe_groups_reports_the_authorized_operations(side: Side, acls: Grants, unique) -> None:
    topic, group = make_topic(side, unique("topic")), unique("group")
    _make_group(side, [topic], group)
    acls.allow(ALICE, Res.GROUP, group, Op.READ, Op.DELETE)
    [f] = (
        side.user_admin("alice")
        .describe_consumer_groups([group], include_authorized_operations=True)
        .values()
    )
    assert set(f.result(TIMEOUT_S).authorized_operations) == {Op.READ, Op.DESCRIBE, Op.DELETE}
