"""The SCRAM credential store: Kafka's AlterUserScramCredentials / DescribeUserScramCredentials semantics,
durability across reopen, what is (not) kept on disk, and a damaged file refused with a clear error."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat

import pytest

from odradek.security import sasl
from odradek.security.scram_store import (
    CREDENTIALS_FILE,
    DUPLICATE_RESOURCE,
    NONE,
    RESOURCE_NOT_FOUND,
    UNACCEPTABLE_CREDENTIAL,
    UNKNOWN_SERVER_ERROR,
    UNSUPPORTED_SASL_MECHANISM,
    Deletion,
    ScramStore,
    ScramStoreError,
    Upsertion,
)

SHA256, SHA512 = 1, 2


def upsert(name: str, password: str = "pw", mechanism: int = SHA512, iterations: int = 4096) -> Upsertion:
    salt = os.urandom(16)
    mech = sasl.SCRAM_BY_TYPE.get(mechanism, sasl.SCRAM_MECHANISMS["SCRAM-SHA-512"]).name
    return Upsertion(name, mechanism, iterations, salt, sasl.salted_password(mech, password, salt, 4096))


def by_user(results: list[dict]) -> dict[str, tuple[int, str | None]]:
    assert len({r["user"] for r in results}) == len(results), "one result per user"
    return {r["user"]: (r["error_code"], r["error_message"]) for r in results}


@pytest.fixture
def store(tmp_path):
    s = ScramStore(tmp_path)
    s.open()
    return s


def test_upsert_describe_delete(store):
    results = store.alter([], [upsert("alice"), upsert("bob", mechanism=SHA256, iterations=8192)])
    assert by_user(results) == {"alice": (NONE, None), "bob": (NONE, None)}
    store.alter([], [upsert("alice", mechanism=SHA256)])
    assert store.describe(None) == [
        {
            "user": "alice",
            "error_code": NONE,
            "error_message": None,
            "credential_infos": [
                {"mechanism": SHA256, "iterations": 4096},
                {"mechanism": SHA512, "iterations": 4096},
            ],
        },
        {
            "user": "bob",
            "error_code": NONE,
            "error_message": None,
            "credential_infos": [{"mechanism": SHA256, "iterations": 8192}],
        },
    ]
    assert store.describe([]) == store.describe(None)
    assert by_user(store.alter([Deletion("alice", SHA512)], [])) == {"alice": (NONE, None)}
    assert store.get("alice", "SCRAM-SHA-512") is None and store.get("alice", "SCRAM-SHA-256") is not None
    store.alter([Deletion("alice", SHA256)], [])
    assert store.users() == ["bob"]


def test_describe_unknown_and_duplicate_users(store):
    store.alter([], [upsert("alice")])
    got = store.describe(["nobody", "alice", "twice", "twice"])
    assert [(r["user"], r["error_code"], r["error_message"]) for r in got] == [
        ("nobody", RESOURCE_NOT_FOUND, "Attempt to describe a user credential that does not exist: nobody"),
        ("alice", NONE, None),
        (
            "twice",
            DUPLICATE_RESOURCE,
            "Cannot describe SCRAM credentials for the same user twice in a single request: twice",
        ),
    ]


def test_alter_refusals_are_kafkas(store):
    store.alter([], [upsert("alice")])
    results = store.alter(
        [Deletion("missing", SHA512), Deletion("alice", SHA256), Deletion("", SHA512), Deletion("m", 7)],
        [
            upsert("few", iterations=4095),
            upsert("many", iterations=16385),
            upsert("", iterations=8192),
            upsert("badmech", mechanism=0),
            upsert("ok"),
        ],
    )
    assert by_user(results) == {
        "missing": (RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
        "alice": (RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
        "": (UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),  # its upsertion is skipped
        "m": (UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
        "few": (UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
        "many": (UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
        "badmech": (UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
        "ok": (NONE, None),
    }
    # Every refused entry left the store alone; the good one applied.
    assert store.users() == ["alice", "ok"]


def test_a_user_twice_in_one_request_applies_nothing_of_it(store):
    store.alter([], [upsert("alice"), upsert("bob")])
    store.alter([], [upsert("bob", mechanism=SHA256)])
    results = store.alter(
        [Deletion("alice", SHA512), Deletion("bob", SHA512), Deletion("bob", SHA256)],
        [
            upsert("alice", mechanism=SHA256),
            upsert("carol"),
            upsert("carol", mechanism=SHA256),
            upsert("dave"),
        ],
    )
    dup = (DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
    assert by_user(results) == {"alice": dup, "bob": dup, "carol": dup, "dave": (NONE, None)}
    assert store.users() == ["alice", "bob", "dave"]
    assert store.get("alice", "SCRAM-SHA-512") is not None and store.get("alice", "SCRAM-SHA-256") is None


def test_results_come_deletions_then_upsertions_then_refusals(store):
    store.alter([], [upsert("a"), upsert("b")])
    results = store.alter([Deletion("b", SHA512), Deletion("zz", SHA512)], [upsert("c"), upsert("a")])
    assert [r["user"] for r in results] == ["b", "c", "a", "zz"]


def test_durable_across_reopen_and_a_login_works_after_it(tmp_path, store):
    store.alter([], [upsert("alice", "alice-secret"), upsert("bob", mechanism=SHA256)])
    store.close()
    again = ScramStore(tmp_path)
    again.open()
    assert again.users() == ["alice", "bob"]
    credential = again.get("alice", "SCRAM-SHA-512")
    assert credential.iterations == 4096
    expected = sasl.scram_keys(
        "SCRAM-SHA-512", sasl.salted_password("SCRAM-SHA-512", "alice-secret", credential.salt, 4096)
    )
    assert (credential.stored_key, credential.server_key) == expected


def test_the_file_holds_no_password_and_is_private(tmp_path, store):
    u = upsert("alice", "alice-secret")
    store.alter([], [u])
    path = tmp_path / "__odradek" / CREDENTIALS_FILE
    data = path.read_bytes()
    assert b"alice-secret" not in data
    assert base64.b64encode(u.salted_password) not in data and u.salted_password not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name(CREDENTIALS_FILE + ".tmp").exists()
    doc = json.loads(data)
    assert set(doc["credentials"]["alice"]["SCRAM-SHA-512"]) == {
        "salt",
        "iterations",
        "stored_key",
        "server_key",
    }


def test_no_file_is_an_empty_store_and_nothing_is_written_for_nothing(tmp_path, store):
    assert store.describe(None) == []
    store.alter([Deletion("nobody", SHA512)], [])
    assert not (tmp_path / "__odradek" / CREDENTIALS_FILE).exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # torn
        lambda d: b"\x00" * len(d),
        lambda d: d.replace(b'"iterations": 4096', b'"iterations": 12'),
        lambda d: d.replace(b'"iterations": 4096', b'"iterations": "4096"'),
        lambda d: d.replace(b"SCRAM-SHA-512", b"SCRAM-SHA-1"),
        lambda d: d.replace(b'"version": 1', b'"version": 2'),
        lambda d: d.replace(b'"stored_key": "', b'"stored_key": "AAAA'),
        lambda d: d.replace(b'"server_key": "', b'"server_key": "!'),
        lambda d: b"[]",
    ],
)
def test_a_damaged_file_is_refused_with_a_clear_error(tmp_path, store, damage):
    store.alter([], [upsert("alice")])
    path = tmp_path / "__odradek" / CREDENTIALS_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ScramStoreError) as e:
        ScramStore(tmp_path).open()
    assert str(path) in str(e.value)
    assert "odradek user add --data-dir" in str(e.value) or "cannot read" in str(e.value)


def test_alter_async_installs_only_what_is_on_disk(tmp_path, store):
    async def run() -> None:
        results = await asyncio.gather(
            store.alter_async([], [upsert("a")]), store.alter_async([], [upsert("b")])
        )
        assert [by_user(r) for r in results] == [{"a": (NONE, None)}, {"b": (NONE, None)}]
        assert store.users() == ["a", "b"]
        # A write that fails changes nothing and says so for the entries that would have applied.
        blocker = tmp_path / "__odradek" / (CREDENTIALS_FILE + ".tmp")
        blocker.mkdir()  # the temporary file cannot be created
        try:
            failed = await store.alter_async([Deletion("a", SHA512), Deletion("zz", SHA512)], [upsert("c")])
        finally:
            blocker.rmdir()
        codes = {u: c for u, (c, _) in by_user(failed).items()}
        assert codes == {"a": UNKNOWN_SERVER_ERROR, "c": UNKNOWN_SERVER_ERROR, "zz": RESOURCE_NOT_FOUND}
        assert store.users() == ["a", "b"]

    asyncio.run(run())
    reopened = ScramStore(tmp_path)
    reopened.open()
    assert reopened.users() == ["a", "b"]
