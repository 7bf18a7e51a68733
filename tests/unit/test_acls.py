"""The ACL store's semantics (StandardAuthorizer's, checked against Apache Kafka 4.4) without a broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from odradek.broker.authz import AclOperation as Op
from odradek.broker.authz import ResourceType as Rt
from odradek.broker.state import DataDirError
from odradek.security.acls import (
    ACLS_FILE,
    CACHE_ENTRIES_MAX,
    MAX_ACLS_PER_REQUEST,
    AclBinding,
    AclFilter,
    AclStoreError,
    Authorizer,
    PatternType,
    Permission,
    TooManyAcls,
    binding_problem,
    unconstructible,
)

LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.1.2.3"


def acl(
    name: str = "orders",
    op: Op = Op.READ,
    perm: Permission = ALLOW,
    *,
    principal: str = ALICE,
    host: str = "*",
    rtype: Rt = Rt.TOPIC,
    pattern: PatternType = LIT,
) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def store(
    tmp_path: Path, *acls: AclBinding, super_users: str = "", allow_if_no_acl: bool = False
) -> Authorizer:
    a = Authorizer(tmp_path, super_users, allow_if_no_acl)
    a.open()
    assert a.create(acls) == [None] * len(acls)
    return a


def can(
    a: Authorizer, op: Op, name: str = "orders", *, who: str = ALICE, host: str = HOST, rtype: Rt = Rt.TOPIC
):
    return a.authorize(who, host, op, rtype, name)


def test_allow_grants_only_its_principal_and_operation(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.READ))
    assert can(a, Op.READ)
    assert not can(a, Op.WRITE)
    assert not can(a, Op.READ, who=BOB)
    assert not can(a, Op.READ, "other")  # no ACL on "other": allow.everyone.if.no.acl.found=false


def test_deny_wins_over_allow(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.ALL), acl(op=Op.WRITE, perm=DENY))
    assert can(a, Op.READ)
    assert not can(a, Op.WRITE)
    # A DENY for everyone beats an ALLOW for alice.
    b = store(tmp_path / "b", acl(op=Op.READ), acl(op=Op.READ, perm=DENY, principal="User:*"))
    assert not can(b, Op.READ)


def test_deny_all_denies_every_operation(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.READ), acl(op=Op.ALL, perm=DENY))
    assert not can(a, Op.READ)
    assert not can(a, Op.DESCRIBE)


def test_wildcard_principal(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.READ, principal="User:*"))
    assert can(a, Op.READ, who=ALICE)
    assert can(a, Op.READ, who="User:ANONYMOUS")
    assert not can(a, Op.WRITE, who=BOB)


def test_literal_star_resource_covers_every_name(tmp_path: Path) -> None:
    a = store(tmp_path, acl("*", Op.WRITE))
    assert can(a, Op.WRITE, "orders")
    assert can(a, Op.WRITE, "anything-at-all")
    assert not can(a, Op.WRITE, "orders", rtype=Rt.GROUP)


def test_prefixed_resources(tmp_path: Path) -> None:
    a = store(tmp_path, acl("ord", Op.READ, pattern=PRE), acl("orders-secret", Op.READ, DENY, pattern=PRE))
    assert can(a, Op.READ, "ord")
    assert can(a, Op.READ, "orders")
    assert not can(a, Op.READ, "orders-secret")
    assert not can(a, Op.READ, "orders-secret-2")
    assert not can(a, Op.READ, "or")  # shorter than the prefix: no ACL applies, so the default (deny)
    # A PREFIXED "*" is a prefix like any other, not a wildcard.
    b = store(tmp_path / "b", acl("*", Op.READ, pattern=PRE))
    assert not can(b, Op.READ, "orders")
    assert can(b, Op.READ, "*orders")


def test_literal_name_is_exact(tmp_path: Path) -> None:
    a = store(tmp_path, acl("ord", Op.READ))
    assert can(a, Op.READ, "ord")
    assert not can(a, Op.READ, "orders")


@pytest.mark.parametrize(
    ("granted", "implied"),
    [(Op.READ, True), (Op.WRITE, True), (Op.DELETE, True), (Op.ALTER, True), (Op.DESCRIBE, True)]
    + [(Op.CREATE, False), (Op.ALTER_CONFIGS, False), (Op.DESCRIBE_CONFIGS, False)],
)
def test_allow_implies_describe(tmp_path: Path, granted: Op, implied: bool) -> None:
    a = store(tmp_path, acl(op=granted))
    assert can(a, Op.DESCRIBE) is implied


def test_alter_configs_implies_describe_configs_only(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.ALTER_CONFIGS))
    assert can(a, Op.DESCRIBE_CONFIGS)
    assert not can(a, Op.DESCRIBE)
    assert not can(a, Op.ALTER)


def test_deny_implies_nothing(tmp_path: Path) -> None:
    # A DENY of READ does not deny DESCRIBE, which an ALLOW of ALL grants.
    a = store(tmp_path, acl(op=Op.ALL), acl(op=Op.READ, perm=DENY))
    assert not can(a, Op.READ)
    assert can(a, Op.DESCRIBE)
    b = store(tmp_path / "b", acl(op=Op.ALL), acl(op=Op.ALTER_CONFIGS, perm=DENY))
    assert can(b, Op.DESCRIBE_CONFIGS)


def test_super_users_pass_every_check_even_a_deny(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.ALL, perm=DENY, principal="User:*"), super_users=" User:admin ; User:ops;")
    assert can(a, Op.WRITE, who="User:admin")
    assert can(a, Op.ALTER, "kafka-cluster", who="User:ops", rtype=Rt.CLUSTER)
    assert not can(a, Op.WRITE, who=ALICE)
    assert a.super_users == {"User:admin", "User:ops"}


def test_no_acl_found_follows_the_setting(tmp_path: Path) -> None:
    closed = store(tmp_path / "closed", acl("orders", Op.READ))
    opened = store(tmp_path / "open", acl("orders", Op.READ), allow_if_no_acl=True)
    for a, expected in ((closed, False), (opened, True)):
        assert can(a, Op.WRITE, "payments") is expected  # no ACL at all on "payments"
    # With an ACL on the resource (even another principal's), the setting no longer applies: deny.
    assert not can(opened, Op.WRITE, "orders")
    assert not can(opened, Op.READ, "orders", who=BOB)
    # A host-restricted ACL for someone else still counts as "an ACL on the resource".
    c = store(tmp_path / "c", acl("orders", Op.READ, principal=BOB, host="10.9.9.9"), allow_if_no_acl=True)
    assert not can(c, Op.READ, "orders")


def test_host_match(tmp_path: Path) -> None:
    a = store(tmp_path, acl(op=Op.READ, host=HOST), acl(op=Op.WRITE, host="10.0.0.0/8"))
    assert can(a, Op.READ, host=HOST)
    assert not can(a, Op.READ, host="10.1.2.4")
    assert can(a, Op.WRITE, host="10.200.0.1")  # a CIDR range, as Kafka 4.4 matches
    assert not can(a, Op.WRITE, host="11.0.0.1")
    assert not can(a, Op.WRITE, host="::1")


def test_decisions_change_with_the_acls(tmp_path: Path) -> None:
    a = store(tmp_path)
    assert not can(a, Op.READ)  # cached as a refusal
    a.create([acl(op=Op.READ)])
    assert can(a, Op.READ)
    a.delete([AclFilter(principal=ALICE)])
    assert not can(a, Op.READ)


def test_cache_is_bounded(tmp_path: Path) -> None:
    a = store(tmp_path, acl("*", Op.READ))
    for i in range(CACHE_ENTRIES_MAX + 10):
        assert can(a, Op.READ, f"t{i}")
    assert len(a._cache) <= CACHE_ENTRIES_MAX


def test_authorize_any(tmp_path: Path) -> None:
    def any_write(*acls: AclBinding, **kw) -> bool:
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        return store(d, *acls, **kw).authorize_any(ALICE, HOST, Op.WRITE, Rt.TOPIC)

    assert not any_write()  # nothing: no
    assert any_write(allow_if_no_acl=True)  # nothing, and everyone is let in where no ACL is found
    assert any_write(acl("orders", Op.WRITE))
    assert any_write(acl("ord", Op.WRITE, pattern=PRE))
    assert any_write(acl("*", Op.WRITE))
    assert any_write(acl("orders", Op.ALL))
    assert not any_write(acl("orders", Op.READ))  # another operation
    assert not any_write(acl("orders", Op.WRITE, principal=BOB))
    assert not any_write(acl("orders", Op.WRITE, rtype=Rt.GROUP))
    # A DENY that covers the allowed name cancels it; one that does not, does not.
    assert not any_write(acl("orders", Op.WRITE), acl("orders", Op.WRITE, DENY))
    assert not any_write(acl("orders", Op.WRITE), acl("or", Op.WRITE, DENY, pattern=PRE))
    assert not any_write(acl("ord", Op.WRITE, pattern=PRE), acl("o", Op.WRITE, DENY, pattern=PRE))
    assert any_write(acl("orders", Op.WRITE), acl("payments", Op.WRITE, DENY))
    assert any_write(acl("ord", Op.WRITE, pattern=PRE), acl("ord", Op.WRITE, DENY))  # a literal deny
    assert any_write(
        acl("orders", Op.WRITE), acl("orders", Op.WRITE, DENY), acl("pay", Op.WRITE, pattern=PRE)
    )
    # A wildcard DENY wins over everything (but super users).
    assert not any_write(acl("orders", Op.WRITE), acl("*", Op.WRITE, DENY))
    assert any_write(acl("*", Op.WRITE, DENY), super_users=ALICE)


def test_authorize_any_refuses_vague_questions(tmp_path: Path) -> None:
    a = store(tmp_path)
    with pytest.raises(ValueError):
        a.authorize_any(ALICE, HOST, Op.ANY, Rt.TOPIC)
    with pytest.raises(ValueError):
        a.authorize_any(ALICE, HOST, Op.WRITE, Rt.ANY)


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            acl("foo", Op.ALTER, rtype=Rt.CLUSTER),
            "The only valid name for the CLUSTER resource is kafka-cluster",
        ),
        (acl(""), "Invalid empty resource name"),
        (acl(rtype=Rt.UNKNOWN), "Invalid resourceType UNKNOWN"),
        (acl(rtype=Rt.ANY), "Invalid resourceType ANY"),
        (acl(pattern=PatternType.MATCH), "Invalid patternType MATCH"),
        (acl(pattern=PatternType.UNKNOWN), "Invalid patternType UNKNOWN"),
        (acl(op=Op.ANY), "Invalid operation ANY"),
        (acl(perm=Permission.UNKNOWN), "Invalid permissionType UNKNOWN"),
        (acl(principal="alice"), "Could not parse principal from `alice` (no colon"),
        (acl(host=""), "Host pattern cannot be null or empty"),
        (acl(host="not/a/cidr"), "Invalid CIDR notation 'not/a/cidr'"),
    ],
)
def test_invalid_bindings_are_refused(tmp_path: Path, binding: AclBinding, message: str) -> None:
    problem = binding_problem(binding)
    assert problem is not None and problem.startswith(message)
    a = store(tmp_path)
    assert a.create([binding, acl("fine")]) == [problem, None]
    assert a.describe(AclFilter()) == [acl("fine")]


def test_bindings_kafka_accepts(tmp_path: Path) -> None:
    fine = [
        acl("kafka-cluster", Op.IDEMPOTENT_WRITE, rtype=Rt.CLUSTER, pattern=PRE),
        acl(principal="Group:ops"),
        acl(principal=":"),
        acl(host="example.com"),
        acl(host="fe80::/10"),
        acl("bob", Op.CREATE_TOKENS, rtype=Rt.USER),
        acl(op=Op.IDEMPOTENT_WRITE),  # not an operation topics have, yet Kafka stores it
    ]
    assert [binding_problem(b) for b in fine] == [None] * len(fine)
    assert unconstructible(acl(perm=Permission.ANY)) and not unconstructible(acl(perm=Permission.UNKNOWN))


def test_create_is_idempotent(tmp_path: Path) -> None:
    a = store(tmp_path, acl())
    assert a.create([acl(), acl()]) == [None, None]
    assert len(a) == 1


def test_filters(tmp_path: Path) -> None:
    acls = [
        acl("orders"),
        acl("*", Op.WRITE),
        acl("ord", Op.DESCRIBE, DENY, pattern=PRE, principal="User:*"),
        acl("payments", host="10.0.0.0/8"),
        acl("g1", rtype=Rt.GROUP, principal=BOB),
    ]
    a = store(tmp_path, *acls)

    def names(**kw) -> list[str]:
        return [b.resource_name for b in a.describe(AclFilter(**kw))]

    assert names() == ["orders", "*", "ord", "payments", "g1"]
    assert names(resource_type=Rt.TOPIC, resource_name="orders", pattern_type=PatternType.MATCH) == [
        "orders",
        "*",
        "ord",
    ]
    assert names(resource_name="orders") == ["orders"]  # ANY: the exact name, of any pattern type
    assert names(resource_name="*", pattern_type=LIT) == ["*"]
    assert names(pattern_type=PRE) == ["ord"]
    assert names(resource_name="ord", pattern_type=LIT) == []
    assert names(principal=BOB) == ["g1"]
    assert names(principal="User:*") == ["ord"]
    assert names(host="10.0.0.0/8") == ["payments"]
    assert names(host="10.1.2.3") == []  # filters compare hosts as text
    assert names(operation=Op.DESCRIBE) == ["ord"]  # no implications in filters
    assert names(operation=Op.ALL) == []
    assert names(permission=DENY) == ["ord"]
    assert names(resource_type=Rt.UNKNOWN) == []
    assert AclFilter(resource_type=Rt.UNKNOWN).problem() == "Unknown patternFilter."
    assert AclFilter(permission=Permission.UNKNOWN).problem() == "Unknown entryFilter."
    assert AclFilter().problem() is None


def test_delete_reports_per_filter_what_it_removed(tmp_path: Path) -> None:
    a = store(tmp_path, acl("orders"), acl("payments"), acl("g1", rtype=Rt.GROUP))
    results = a.delete(
        [
            AclFilter(resource_type=Rt.TOPIC),
            AclFilter(resource_name="orders"),
            AclFilter(operation=Op.UNKNOWN),
            AclFilter(resource_name="nothing"),
        ]
    )
    assert results == [
        (None, [acl("orders"), acl("payments")]),
        (None, [acl("orders")]),  # matched against the ACLs as they were before the request
        ("Unknown entryFilter.", []),
        (None, []),
    ]
    assert a.describe(AclFilter()) == [acl("g1", rtype=Rt.GROUP)]


def test_acls_survive_reopen(tmp_path: Path) -> None:
    a = store(tmp_path, acl("orders"), acl("ord", Op.WRITE, DENY, pattern=PRE), acl("t", host="10.0.0.0/8"))
    a.delete([AclFilter(resource_name="orders")])
    a.close()
    b = Authorizer(tmp_path, "", False)
    b.open()
    assert b.describe(AclFilter()) == [acl("ord", Op.WRITE, DENY, pattern=PRE), acl("t", host="10.0.0.0/8")]
    assert not can(b, Op.WRITE, "orders")
    assert can(b, Op.READ, "t", host="10.3.3.3")
    assert not (tmp_path / (ACLS_FILE + ".tmp")).exists()


def test_async_changes_are_durable_and_serialised(tmp_path: Path) -> None:
    a = store(tmp_path)

    async def main() -> None:
        await asyncio.gather(*(a.create_async([acl(f"t{i}")]) for i in range(20)))
        assert (await a.delete_async([AclFilter(resource_name="t3")]))[0][1] == [acl("t3")]

    asyncio.run(main())
    b = Authorizer(tmp_path, "", False)
    b.open()
    assert sorted(x.resource_name for x in b.describe(AclFilter())) == sorted(
        f"t{i}" for i in range(20) if i != 3
    )


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        json.dumps({"version": 99, "acls": []}).encode(),
        json.dumps({"version": 1, "acls": [{"resource_type": "TOPIC"}]}).encode(),
        json.dumps({"version": 1, "acls": [dict(acl().to_json(), operation="FLY")]}).encode(),
        json.dumps({"version": 1, "acls": [dict(acl().to_json(), host="")]}).encode(),
    ],
)
def test_a_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ACLS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(AclStoreError, match="acls.json") as e:
        Authorizer(tmp_path, "", False).open()
    assert "move it away" in str(e.value)
    assert isinstance(e.value, DataDirError)  # what `odradek serve` reports in one line


def test_many_acls_answer_from_the_indexes(tmp_path: Path) -> None:
    acls = [acl(f"topic-{i}", Op.WRITE) for i in range(3000)]
    acls += [acl(f"prefix-{i}-", Op.READ, pattern=PRE) for i in range(1000)]
    a = store(tmp_path, *acls)
    assert can(a, Op.WRITE, "topic-2999")
    assert not can(a, Op.WRITE, "topic-3000")
    assert can(a, Op.READ, "prefix-999-x")
    assert can(a, Op.DESCRIBE, "prefix-5-")
    assert not can(a, Op.READ, "prefix-1000-x")


def test_one_request_creates_at_most_the_controller_bound(tmp_path: Path) -> None:
    a = store(tmp_path, acl("t0"))
    many = [acl(f"t{i}") for i in range(MAX_ACLS_PER_REQUEST + 1)]  # t0 exists: exactly the bound is new
    assert a.create(many) == [None] * len(many)
    with pytest.raises(TooManyAcls):
        a.create([acl(f"u{i}") for i in range(MAX_ACLS_PER_REQUEST + 1)])
    assert len(a) == MAX_ACLS_PER_REQUEST + 1
