"""CreateAcls / DescribeAcls / DeleteAcls through real admin clients, on Odradek and on Apache Kafka 4.4
configured alike (StandardAuthorizer; the PLAINTEXT test client, User:ANONYMOUS, is a super user because
Kafka's controller listener needs one). Both must give the same answers.

Kafka applies ACL changes through its metadata log, so its DescribeAcls may trail a CreateAcls by a moment:
reads poll (``support.kit.wait_until``) until the expected set shows, then assert it exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.kit import wait_until  # noqa: E402
from wire import WireClient  # noqa: E402

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ACL_SETTINGS = {"authorizer.class.name": AUTHORIZER, "super.users": "User:ANONYMOUS"}
TIMEOUT_S = 30.0

INVALID_REQUEST = 42
CLUSTER_AUTHORIZATION_FAILED = 31
SECURITY_DISABLED = 54

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER  # librdkafka calls CLUSTER "BROKER"
LIT, PRE = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
ANY_PATTERN, MATCH = ResourcePatternType.ANY, ResourcePatternType.MATCH
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
Op = AclOperation

BINDINGS = [
    AclBinding(T, "orders", LIT, "User:alice", "*", Op.READ, ALLOW),
    AclBinding(T, "orders", LIT, "User:alice", "*", Op.WRITE, ALLOW),
    AclBinding(T, "orders", LIT, "User:bob", "10.0.0.7", Op.READ, DENY),
    AclBinding(T, "ord", PRE, "User:*", "*", Op.DESCRIBE, ALLOW),
    AclBinding(T, "*", LIT, "User:carol", "*", Op.ALL, ALLOW),
    AclBinding(T, "payments", LIT, "User:alice", "10.0.0.0/8", Op.READ, ALLOW),
    AclBinding(G, "billing", LIT, "User:alice", "*", Op.READ, ALLOW),
    AclBinding(G, "bill", PRE, "User:bob", "*", Op.DELETE, DENY),
    AclBinding(C, "kafka-cluster", LIT, "User:alice", "*", Op.IDEMPOTENT_WRITE, ALLOW),
]


def key(b: AclBinding) -> tuple[Any, ...]:
    """A binding as comparable plain values (confluent-kafka's objects from two answers compare by enum)."""
    return (
        b.restype.name,
        b.name,
        b.resource_pattern_type.name,
        b.principal,
        b.host,
        b.operation.name,
        b.permission_type.name,
    )


def keys(bindings: list[AclBinding]) -> set[tuple[Any, ...]]:
    return {key(b) for b in bindings}


def flt(
    restype: ResourceType = ResourceType.ANY,
    name: str | None = None,
    pattern: ResourcePatternType = ANY_PATTERN,
    principal: str | None = None,
    host: str | None = None,
    op: AclOperation = Op.ANY,
    perm: AclPermissionType = AclPermissionType.ANY,
) -> AclBindingFilter:
    return AclBindingFilter(restype, name, pattern, principal, host, op, perm)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def describe(client: AdminClient, f: AclBindingFilter) -> set[tuple[Any, ...]]:
    return keys(client.describe_acls(f, request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S))


def describe_settled(client: AdminClient, f: AclBindingFilter, expected: set[tuple[Any, ...]]) -> set:
    """DescribeAcls once it shows ``expected`` (or the last answer, for the assertion to report)."""
    seen: list[set[tuple[Any, ...]]] = [set()]

    def settled() -> bool:
        seen[0] = describe(client, f)
        return seen[0] == expected

    try:
        wait_until(
            settled, TIMEOUT_S, lambda: f"DescribeAcls {f} to show {sorted(expected)}; saw {sorted(seen[0])}"
        )
    except AssertionError:
        pass
    return seen[0]


def create(client: AdminClient, bindings: list[AclBinding]) -> list[int | None]:
    """CreateAcls: per binding None (created) or the Kafka error code it failed with."""
    out: list[int | None] = []
    futures = client.create_acls(bindings, request_timeout=TIMEOUT_S)
    for b in bindings:
        try:
            futures[b].result(timeout=TIMEOUT_S)
            out.append(None)
        except KafkaException as e:
            out.append(e.args[0].code())
    return out


ANY_FILTER = dict(
    resource_type_filter=1,
    resource_name_filter=None,
    pattern_type_filter=1,
    principal_filter=None,
    host_filter=None,
    operation=1,
    permission_type=1,
)


def wire_codes(bootstrap: str) -> tuple[int, list[int]]:
    """The error codes of a DescribeAcls of everything and of a DeleteAcls of two filters (topics, groups)."""
    from kio.schema.delete_acls.v3.request import DeleteAclsRequest
    from kio.schema.describe_acls.v3.request import DescribeAclsRequest

    with WireClient(bootstrap) as w:
        described = w.request(DescribeAclsRequest, ANY_FILTER)
        deleted = w.request(
            DeleteAclsRequest,
            {"filters": [ANY_FILTER | {"resource_type_filter": 2}, ANY_FILTER | {"resource_type_filter": 3}]},
        )
    return described.error_code, [r.error_code for r in deleted.filter_results]


def delete(client: AdminClient, filters: list[AclBindingFilter]) -> list[set[tuple[Any, ...]]]:
    futures = client.delete_acls(filters, request_timeout=TIMEOUT_S)
    return [keys(futures[f].result(timeout=TIMEOUT_S)) for f in filters]


@pytest.fixture(params=["odradek", "kafka"])
def acl_broker(request: pytest.FixtureRequest) -> Any:
    """A private broker of each kind with the authorizer on and User:ANONYMOUS a super user."""
    factory = request.getfixturevalue(f"{request.param}_factory")
    return factory(settings=dict(ACL_SETTINGS))


def test_create_describe_delete_and_restart(acl_broker: Any) -> None:
    client = admin(acl_broker.bootstrap)
    assert create(client, BINDINGS) == [None] * len(BINDINGS)
    assert create(client, BINDINGS[:1]) == [None]  # an ACL that exists: success, no copy
    everything = keys(BINDINGS)
    assert describe_settled(client, flt(), everything) == everything

    # Filters, as Kafka matches them.
    expected = {
        # MATCH: the ACLs that apply to the topic "orders": its literal name, the literal "*", prefix "ord".
        (T, "orders", MATCH): {key(b) for b in BINDINGS[:5]},
        # ANY with a name: that exact name, whatever the pattern type.
        (T, "orders", ANY_PATTERN): {key(b) for b in BINDINGS[:3]},
        (T, "ord", ANY_PATTERN): {key(BINDINGS[3])},
        (T, "*", LIT): {key(BINDINGS[4])},
        (G, None, PRE): {key(BINDINGS[7])},
        (G, "billing", MATCH): {key(BINDINGS[6]), key(BINDINGS[7])},
        (C, None, ANY_PATTERN): {key(BINDINGS[8])},
    }
    for (restype, name, pattern), want in expected.items():
        assert describe(client, flt(restype, name, pattern)) == want, (restype, name, pattern)
    assert describe(client, flt(principal="User:bob")) == {key(BINDINGS[2]), key(BINDINGS[7])}
    assert describe(client, flt(principal="User:*")) == {key(BINDINGS[3])}
    assert describe(client, flt(host="10.0.0.0/8")) == {key(BINDINGS[5])}
    assert describe(client, flt(host="10.1.1.1")) == set()  # hosts in filters are compared as text
    assert describe(client, flt(op=Op.DESCRIBE)) == {key(BINDINGS[3])}  # no implications in filters
    assert describe(client, flt(perm=DENY)) == {key(BINDINGS[2]), key(BINDINGS[7])}

    # DeleteAcls returns, per filter, what it removed; filters see the ACLs as they were before.
    removed = delete(
        client, [flt(T, "orders", LIT), flt(principal="User:alice", op=Op.READ), flt(T, "nothing")]
    )
    assert removed == [
        {key(b) for b in BINDINGS[:3]},
        {key(BINDINGS[0]), key(BINDINGS[5]), key(BINDINGS[6])},
        set(),
    ]
    remaining = keys([BINDINGS[3], BINDINGS[4], BINDINGS[7], BINDINGS[8]])
    assert describe_settled(client, flt(), remaining) == remaining

    # kafka-python's admin client reads the same ACLs.
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        KafkaAdminClient,
        ResourcePatternFilter,
    )
    from kafka.admin import ACLResourcePatternType as KPattern
    from kafka.admin import ResourceType as KType

    kp = KafkaAdminClient(bootstrap_servers=acl_broker.bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))
    try:
        found, error = kp.describe_acls(
            ACLFilter(
                principal=None,
                host=None,
                operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KType.GROUP, "billing", KPattern.MATCH),
            )
        )
        assert error.errno == 0
        assert {(a.principal, a.operation.name, a.permission_type.name) for a in found} == {
            ("User:bob", "DELETE", "DENY")
        }
    finally:
        kp.close()

    # Durable: the same ACLs after a restart.
    acl_broker.restart()
    client = admin(acl_broker.bootstrap)
    assert describe_settled(client, flt(), remaining) == remaining


INVALID = [
    AclBinding(T, "t", LIT, "alice", "*", Op.READ, ALLOW),  # a principal without "Type:"
    AclBinding(T, "", LIT, "User:alice", "*", Op.READ, ALLOW),  # an empty name
    AclBinding(T, "t", LIT, "User:alice", "", Op.READ, ALLOW),  # an empty host
    AclBinding(T, "t", LIT, "User:alice", "not/a/cidr", Op.READ, ALLOW),
    AclBinding(C, "my-cluster", LIT, "User:alice", "*", Op.ALTER, ALLOW),  # the cluster is "kafka-cluster"
]


def test_invalid_bindings_are_refused_alike(acl_broker: Any) -> None:
    client = admin(acl_broker.bootstrap)
    fine = AclBinding(T, "fine", LIT, "User:alice", "*", Op.READ, ALLOW)
    assert create(client, [*INVALID, fine]) == [INVALID_REQUEST] * len(INVALID) + [None]
    assert describe_settled(client, flt(), {key(fine)}) == {key(fine)}

    # Codes no client library will send, over the wire: unknown values are refused one by one, an ANY
    # fails the whole request, a 0 (UNKNOWN) fails Kafka's parsing and closes the connection.
    from kio.schema.create_acls.v3.request import CreateAclsRequest
    from kio.schema.delete_acls.v3.request import DeleteAclsRequest

    def creation(**over: Any) -> dict[str, Any]:
        base = dict(
            resource_type=2,
            resource_name="raw",
            resource_pattern_type=3,
            principal="User:raw",
            host="*",
            operation=3,
            permission_type=3,
        )
        return base | over

    with WireClient(acl_broker.bootstrap) as w:
        r = w.request(CreateAclsRequest, {"creations": [creation(resource_type=99), creation(operation=99)]})
        assert [(x.error_code, x.error_message) for x in r.results] == [
            (INVALID_REQUEST, "Invalid resourceType UNKNOWN"),
            (INVALID_REQUEST, "Invalid operation UNKNOWN"),
        ]
        r = w.request(CreateAclsRequest, {"creations": [creation(), creation(permission_type=1)]})
        assert [x.error_code for x in r.results] == [-1, -1]
        r = w.request(DeleteAclsRequest, {"filters": [ANY_FILTER | {"resource_type_filter": 99}]})
        assert [(x.error_code, x.error_message) for x in r.filter_results] == [
            (INVALID_REQUEST, "Unknown patternFilter.")
        ]
    with WireClient(acl_broker.bootstrap) as w, pytest.raises(ConnectionError):
        w.request(CreateAclsRequest, {"creations": [creation(resource_type=0)]})
    assert describe(client, flt(principal="User:raw")) == set()


def test_without_an_authorizer_acls_are_security_disabled(broker: Any) -> None:
    client = admin(broker.bootstrap)
    binding = AclBinding(T, "orders", LIT, "User:alice", "*", Op.READ, ALLOW)
    assert create(client, [binding]) == [SECURITY_DISABLED]
    # librdkafka reports neither broker's DescribeAcls / DeleteAcls error, so read the codes off the wire.
    assert wire_codes(broker.bootstrap) == (SECURITY_DISABLED, [SECURITY_DISABLED, SECURITY_DISABLED])


@pytest.fixture(params=["odradek", "kafka"])
def open_broker(request: pytest.FixtureRequest) -> Any:
    """Authorizer on, no super users, everyone allowed where no ACL is found."""
    factory = request.getfixturevalue(f"{request.param}_factory")
    return factory(settings={"authorizer.class.name": AUTHORIZER, "allow.everyone.if.no.acl.found": "true"})


def test_acl_admin_needs_cluster_alter_and_describe(open_broker: Any) -> None:
    client = admin(open_broker.bootstrap)
    me = "User:ANONYMOUS"
    # Everything on the cluster (Kafka's own broker-to-controller traffic is this principal too), but not
    # ALTER or DESCRIBE.
    locks = [
        AclBinding(C, "kafka-cluster", LIT, me, "*", Op.ALL, ALLOW),
        AclBinding(C, "kafka-cluster", LIT, me, "*", Op.ALTER, DENY),
        AclBinding(C, "kafka-cluster", LIT, me, "*", Op.DESCRIBE, DENY),
    ]
    assert create(client, locks) == [None, None, None]
    probe = AclBinding(T, "orders", LIT, "User:alice", "*", Op.READ, ALLOW)

    def refused() -> bool:
        return create(client, [probe]) == [CLUSTER_AUTHORIZATION_FAILED]

    wait_until(refused, TIMEOUT_S, "CreateAcls to be refused once ALTER on the cluster is denied")
    denied = CLUSTER_AUTHORIZATION_FAILED
    assert wire_codes(open_broker.bootstrap) == (denied, [denied, denied])


def run_acl_tool(capsys: pytest.CaptureFixture[str], bootstrap: str, *words: str) -> Any:
    """``odradek acl ...`` (src/odradek/tools/acl.py) with JSON output: what it printed, decoded."""
    import argparse
    import json

    from odradek.cli import _client_options
    from odradek.tools import acl as acl_tool
    from odradek.tools.output import Output

    parser = argparse.ArgumentParser(prog="odradek")
    acl_tool.add_parser(parser.add_subparsers(dest="command", required=True), _client_options())
    args = parser.parse_args(["acl", *words, "-b", bootstrap, "--format", "json"])
    capsys.readouterr()
    assert acl_tool.run(args, Output(args.format)) == 0
    text = capsys.readouterr().out
    return json.loads(text) if text.strip() else None


def test_the_acl_command(acl_broker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from odradek.tools.common import ToolError

    b = acl_broker.bootstrap
    added = run_acl_tool(
        capsys, b, "add", "--allow-principal", "User:alice", "--operation", "read", "--operation", "describe",
        "--topic", "orders", "--group", "billing", "--resource-pattern-type", "prefixed",
    )  # fmt: skip
    assert len(added) == 4
    deny = ["--deny-principal", "User:bob", "--deny-host", "10.0.0.7", "--operation", "all", "--cluster"]
    run_acl_tool(capsys, b, "add", *deny)
    want = {
        ("TOPIC", "orders", "PREFIXED", "User:alice", "*", "READ", "ALLOW"),
        ("TOPIC", "orders", "PREFIXED", "User:alice", "*", "DESCRIBE", "ALLOW"),
        ("GROUP", "billing", "PREFIXED", "User:alice", "*", "READ", "ALLOW"),
        ("GROUP", "billing", "PREFIXED", "User:alice", "*", "DESCRIBE", "ALLOW"),
        ("CLUSTER", "kafka-cluster", "LITERAL", "User:bob", "10.0.0.7", "ALL", "DENY"),
    }

    def listed(*words: str) -> set[tuple[str, ...]]:
        return {tuple(r.values()) for r in run_acl_tool(capsys, b, "list", *words)}

    wait_until(lambda: listed() == want, TIMEOUT_S, "odradek acl list to show the added ACLs")
    assert listed("--topic", "orders-eu", "--resource-pattern-type", "match") == {
        w for w in want if w[0] == "TOPIC"
    }
    assert listed("--principal", "User:bob") == {w for w in want if w[3] == "User:bob"}
    with pytest.raises(ToolError, match="--all"):
        run_acl_tool(capsys, b, "delete")
    removed = run_acl_tool(
        capsys, b, "delete", "--topic", "orders", "--resource-pattern-type", "prefixed", "--operation", "read"
    )
    assert {tuple(r.values()) for r in removed} == {w for w in want if w[0] == "TOPIC" and w[5] == "READ"}
    left = {w for w in want if not (w[0] == "TOPIC" and w[5] == "READ")}
    wait_until(lambda: listed() == left, TIMEOUT_S, "odradek acl list to show what delete left")


# --- what the ACLs decide, with allow.everyone.if.no.acl.found=true (the ACL matrix runs with false) ------


@pytest.fixture(params=["odradek", "kafka"])
def open_sasl_broker(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    """A broker of the param's kind with PLAINTEXT (ANONYMOUS, a super user) and SASL_PLAINTEXT (PLAIN users
    of support.secure), ACLs on, everyone allowed where no ACL is found; and its SASL address."""
    from support.kafka import KafkaBroker
    from support.net import LOOPBACK, free_ports
    from support.odradek import OdradekBroker
    from support.secure import plain_jaas

    plain, sasl, controller = free_ports(3)
    settings = {
        "listeners": f"PLAINTEXT://{LOOPBACK}:{plain},SASL_PLAINTEXT://{LOOPBACK}:{sasl}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{plain},SASL_PLAINTEXT://{LOOPBACK}:{sasl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain_jaas(),
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "true",
    }
    if request.param == "kafka":
        request.getfixturevalue("kafka_jars")
        settings["listeners"] += f",CONTROLLER://{LOOPBACK}:{controller}"
        settings["listener.security.protocol.map"] += ",CONTROLLER:PLAINTEXT"
        process: Any = KafkaBroker(tmp_path / "kafka", settings=settings)
        process.port, process.controller_port = plain, controller
    else:
        process = OdradekBroker(tmp_path / "odradek" / "data", settings=settings)
    process.start()
    request.addfinalizer(process.stop)
    return process, f"{LOOPBACK}:{sasl}"


def test_what_the_acls_decide_when_everyone_is_allowed_where_none_is_found(
    open_sasl_broker: tuple[Any, str], unique: Any
) -> None:
    from confluent_kafka.admin import ConfigResource, NewTopic

    process, sasl = open_sasl_broker
    root = admin(process.bootstrap)
    free, bobs, guarded, configs = (unique("t") for _ in range(4))
    futures = root.create_topics([NewTopic(t, 1) for t in (free, bobs, guarded, configs)])
    for f in futures.values():
        f.result(timeout=TIMEOUT_S)
    acls = [
        AclBinding(T, bobs, LIT, "User:bob", "*", Op.READ, ALLOW),  # an ACL, but for someone else
        AclBinding(T, guarded, LIT, "User:alice", "*", Op.ALL, ALLOW),
        AclBinding(T, guarded, LIT, "User:alice", "*", Op.READ, DENY),  # a DENY of READ implies nothing
        AclBinding(T, configs, LIT, "User:alice", "*", Op.ALTER_CONFIGS, ALLOW),
    ]
    assert create(root, acls) == [None] * len(acls)
    describe_settled(root, flt(), keys(acls))
    alice = AdminClient(
        {
            "bootstrap.servers": sasl,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": "alice-secret",
        }
    )

    def describe_code(topic: str) -> int:
        """Metadata for one topic, as alice: 0 or TOPIC_AUTHORIZATION_FAILED (29)."""
        err = alice.list_topics(topic, timeout=TIMEOUT_S).topics[topic].error
        return 0 if err is None else err.code()

    def describe_configs_code(topic: str) -> int:
        fut = alice.describe_configs([ConfigResource("TOPIC", topic)], request_timeout=TIMEOUT_S)
        try:
            next(iter(fut.values())).result(timeout=TIMEOUT_S)
            return 0
        except KafkaException as e:
            return e.args[0].code()

    assert describe_code(free) == 0  # no ACL at all on it: everyone may
    assert describe_code(bobs) == 29  # some ACL on it, none for alice: no
    assert describe_code(guarded) == 0  # ALL allows DESCRIBE; the DENY is of READ only
    assert describe_code(configs) == 29  # ALTER_CONFIGS implies DESCRIBE_CONFIGS, not DESCRIBE
    assert describe_configs_code(configs) == 0
    assert describe_configs_code(bobs) == 29
