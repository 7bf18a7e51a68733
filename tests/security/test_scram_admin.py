"""SCRAM users through the admin APIs and the command line, the same on Odradek as on Apache Kafka 4.4.

* AlterUserScramCredentials / DescribeUserScramCredentials with confluent-kafka's AdminClient on both
  brokers (``broker`` fixture, PLAINTEXT, no authorizer): upsert, describe one / all, delete, a missing
  user or credential (RESOURCE_NOT_FOUND), iterations out of 4096..16384 (UNACCEPTABLE_CREDENTIAL);
* what AdminClient will not send (a user twice, an empty name, an unknown mechanism) as raw requests
  through the project's wire client, with Kafka's codes and messages;
* ``odradek user add | list | delete`` against a running Odradek, and ``--data-dir`` writing the store of
  a stopped broker (refused while one runs on it), whose user then logs in with SCRAM;
* on the secured brokers (tests/security/conftest.py): a user added by the API logs in over
  SASL_PLAINTEXT with SCRAM-SHA-512 and no longer once deleted; a principal without ALTER / DESCRIBE on
  the cluster is refused with CLUSTER_AUTHORIZATION_FAILED, as Kafka refuses it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from odradek.tools.wire import Connection
from support.kit import wait_until
from support.net import free_ports
from support.odradek import child_env
from support.secure import USERS

TIMEOUT_S = 30
SHA256, SHA512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512
DESCRIBE_USER_SCRAM_CREDENTIALS, ALTER_USER_SCRAM_CREDENTIALS = 50, 51
RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE, UNACCEPTABLE_CREDENTIAL = 91, 92, 93
UNSUPPORTED_SASL_MECHANISM, CLUSTER_AUTHORIZATION_FAILED = 33, 31


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def upsert(a: AdminClient, user: str, mechanism=SHA512, iterations: int = 8192, password: str = "pw") -> None:
    alteration = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(mechanism, iterations), password.encode()
    )
    a.alter_user_scram_credentials([alteration])[user].result(TIMEOUT_S)


def delete(a: AdminClient, user: str, mechanism=SHA512) -> None:
    a.alter_user_scram_credentials([UserScramCredentialDeletion(user, mechanism)])[user].result(TIMEOUT_S)


def error_of(call) -> KafkaError:
    with pytest.raises(KafkaException) as e:
        call()
    return e.value.args[0]


def described(a: AdminClient, user: str) -> dict[str, int] | None:
    """{mechanism name: iterations} of one user, None when it has no credential."""
    try:
        d = a.describe_user_scram_credentials([user])[user].result(TIMEOUT_S)
    except KafkaException as e:
        assert e.args[0].code() == RESOURCE_NOT_FOUND, e
        return None
    return {i.mechanism.name: i.iterations for i in d.scram_credential_infos}


def settle(a: AdminClient, user: str, expected: dict[str, int] | None) -> None:
    """Kafka's brokers learn credentials from the metadata log a moment after the controller answers."""
    wait_until(lambda: described(a, user) == expected, TIMEOUT_S, lambda: f"{user}: {described(a, user)}")


# --------------------------------------------------------------------------------------------------
# AdminClient, both brokers


def test_upsert_describe_delete(broker, unique):
    a = admin(broker.bootstrap)
    user = unique("user")
    upsert(a, user, SHA512, 8192)
    upsert(a, user, SHA256, 4096)
    settle(a, user, {"SCRAM_SHA_256": 4096, "SCRAM_SHA_512": 8192})

    everyone = a.describe_user_scram_credentials().result(TIMEOUT_S)
    assert user in everyone
    assert {(i.mechanism, i.iterations) for i in everyone[user].scram_credential_infos} == {
        (SHA256, 4096),
        (SHA512, 8192),
    }

    upsert(a, user, SHA512, 16384)  # a new password or iteration count replaces the credential
    settle(a, user, {"SCRAM_SHA_256": 4096, "SCRAM_SHA_512": 16384})
    delete(a, user, SHA256)
    settle(a, user, {"SCRAM_SHA_512": 16384})
    err = error_of(lambda: delete(a, user, SHA256))
    assert err.code() == RESOURCE_NOT_FOUND
    assert "Attempt to delete a user credential that does not exist" in err.str()
    delete(a, user, SHA512)
    settle(a, user, None)
    assert user not in a.describe_user_scram_credentials().result(TIMEOUT_S)


def test_unknown_users(broker, unique):
    a = admin(broker.bootstrap)
    nobody = unique("nobody")
    err = error_of(lambda: a.describe_user_scram_credentials([nobody])[nobody].result(TIMEOUT_S))
    assert err.code() == RESOURCE_NOT_FOUND
    # librdkafka 2.16 may append a stray byte to this message; the message itself is Kafka's.
    assert err.str().startswith(f"Attempt to describe a user credential that does not exist: {nobody}")
    err = error_of(lambda: delete(a, nobody))
    assert err.code() == RESOURCE_NOT_FOUND


@pytest.mark.parametrize(
    ("iterations", "message"), [(4095, "Too few iterations"), (16385, "Too many iterations")]
)
def test_iterations_out_of_range(broker, unique, iterations, message):
    a = admin(broker.bootstrap)
    user = unique("user")
    err = error_of(lambda: upsert(a, user, SHA512, iterations))
    assert (err.code(), err.str()) == (UNACCEPTABLE_CREDENTIAL, message)
    assert described(a, user) is None


def test_iterations_at_the_bounds(broker, unique):
    a = admin(broker.bootstrap)
    user = unique("user")
    upsert(a, user, SHA256, 4096)
    upsert(a, user, SHA512, 16384)
    settle(a, user, {"SCRAM_SHA_256": 4096, "SCRAM_SHA_512": 16384})


def test_acknowledged_credentials_survive_a_kill(fresh_odradek, unique):
    """An answered AlterUserScramCredentials is on disk: a SIGKILL right after it loses nothing."""
    user, gone = unique("user"), unique("gone")
    a = admin(fresh_odradek.bootstrap)
    upsert(a, gone, SHA256, 4096)
    upsert(a, user, SHA512, 8192)
    upsert(a, user, SHA256, 4096)
    delete(a, gone, SHA256)
    fresh_odradek.restart(hard=True)
    a = admin(fresh_odradek.bootstrap)
    assert described(a, user) == {"SCRAM_SHA_256": 4096, "SCRAM_SHA_512": 8192}
    assert described(a, gone) is None


# --------------------------------------------------------------------------------------------------
# Raw requests: what AdminClient refuses to send


def results_by_user(response) -> dict[str, tuple[int, str | None]]:
    return {r.user: (int(r.error_code), r.error_message) for r in response.results}


def salted(user: str, mechanism: int = 2, iterations: int = 8192) -> dict:
    return {
        "name": user,
        "mechanism": mechanism,
        "iterations": iterations,
        "salt": b"0123456789abcdef",
        "salted_password": bytes(64 if mechanism == 2 else 32),
    }


def test_one_user_twice_empty_names_and_unknown_mechanisms(broker, unique):
    host, port = broker.bootstrap.rsplit(":", 1)
    twice, again, fine, bad_mech = unique("twice"), unique("again"), unique("fine"), unique("mech")
    dup = (DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
    upsert(admin(broker.bootstrap), again, SHA256, 4096)
    settle(admin(broker.bootstrap), again, {"SCRAM_SHA_256": 4096})
    with Connection(host, int(port), TIMEOUT_S) as conn:
        r = conn.request(
            ALTER_USER_SCRAM_CREDENTIALS,
            0,
            {
                "deletions": [{"name": again, "mechanism": 1}, {"name": "", "mechanism": 2}],
                "upsertions": [
                    salted(twice),
                    salted(twice, mechanism=1),
                    salted(again),
                    salted(fine),
                    salted(bad_mech, mechanism=0),
                ],
            },
        )
        assert results_by_user(r) == {
            twice: dup,
            again: dup,
            "": (UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
            bad_mech: (UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
            fine: (0, None),
        }
        settle(admin(broker.bootstrap), fine, {"SCRAM_SHA_512": 8192})
        for user in (twice, bad_mech):
            assert described(admin(broker.bootstrap), user) is None
        assert described(admin(broker.bootstrap), again) == {"SCRAM_SHA_256": 4096}  # untouched

        r = conn.request(
            DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": [{"name": fine}, {"name": twice}, {"name": fine}]}
        )
        assert int(r.error_code) == 0
        got = {x.user: (int(x.error_code), x.error_message, len(x.credential_infos)) for x in r.results}
        assert got == {
            fine: (
                DUPLICATE_RESOURCE,
                f"Cannot describe SCRAM credentials for the same user twice in a single request: {fine}",
                0,
            ),
            twice: (
                RESOURCE_NOT_FOUND,
                f"Attempt to describe a user credential that does not exist: {twice}",
                0,
            ),
        }


# --------------------------------------------------------------------------------------------------
# The command line, against Odradek


def run_cli(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "odradek", *argv],
        input=stdin,
        capture_output=True,
        env=child_env(),
        timeout=60,
    )


def ok(*argv: str, stdin: bytes = b"") -> str:
    r = run_cli(*argv, stdin=stdin)
    assert r.returncode == 0, f"odradek {' '.join(argv)} exited {r.returncode}: {r.stderr.decode()}"
    return r.stdout.decode()


def one_line_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_cli_add_list_delete_over_the_wire(odradek, unique):
    b = ("-b", odradek.bootstrap)
    user = unique("user")
    assert "SCRAM-SHA-512" in ok("user", "add", user, "--password-stdin", *b, stdin=b"s3cret\n")
    ok("user", "add", user, "--mechanism", "SCRAM-SHA-256", "--iterations", "4096", "--password", "pw", *b)
    rows = json.loads(ok("user", "list", user, "--format", "json", *b))
    assert rows == [
        {"user": user, "mechanism": "SCRAM-SHA-256", "iterations": 4096},
        {"user": user, "mechanism": "SCRAM-SHA-512", "iterations": 8192},
    ]
    table = ok("user", "list", *b)
    assert table.split()[:3] == ["USER", "MECHANISM", "ITERATIONS"] and user in table

    err = one_line_error(run_cli("user", "add", unique("x"), "--password", "p", "--iterations", "100", *b))
    assert "Too few iterations" in err and "UNACCEPTABLE_CREDENTIAL" in err
    err = one_line_error(run_cli("user", "add", unique("x"), *b), 2)  # no terminal, no --password-stdin
    assert err.startswith("odradek user add: no password")
    assert one_line_error(run_cli("user", "add", unique("x"), "--password-stdin", *b, stdin=b"\n"), 2)

    ok("user", "delete", user, "--mechanism", "SCRAM-SHA-256", *b)
    assert json.loads(ok("user", "list", user, "--format", "json", *b)) == [
        {"user": user, "mechanism": "SCRAM-SHA-512", "iterations": 8192}
    ]
    ok("user", "delete", user, *b)  # every mechanism left
    err = one_line_error(run_cli("user", "list", user, *b))
    assert "RESOURCE_NOT_FOUND" in err
    assert "RESOURCE_NOT_FOUND" in one_line_error(run_cli("user", "delete", user, *b))


def test_cli_data_dir_bootstraps_the_first_user_of_a_stopped_broker(odradek_factory, tmp_path):
    data = tmp_path / "data"
    assert "SCRAM-SHA-512" in ok(
        "user", "add", "admin", "--data-dir", str(data), "--password-stdin", stdin=b"first-pass-42\n"
    )
    ok("user", "add", "gone", "--data-dir", str(data), "--password", "x")
    ok("user", "delete", "gone", "--data-dir", str(data))
    assert json.loads(ok("user", "list", "--data-dir", str(data), "--format", "json")) == [
        {"user": "admin", "mechanism": "SCRAM-SHA-512", "iterations": 8192}
    ]
    assert b"first-pass-42" not in (data / "__odradek" / "scram-credentials.json").read_bytes()

    plain_port, sasl_port = free_ports(2)
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    }
    from support.secure import SecuredOdradek

    broker = SecuredOdradek(data, settings=settings)
    odradek_factory.brokers.append(broker)
    broker.start()
    err = one_line_error(run_cli("user", "list", "--data-dir", str(data)))
    assert "in use by a running broker" in err

    def login(password: str) -> bool:
        client = AdminClient(
            {
                "bootstrap.servers": f"127.0.0.1:{sasl_port}",
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "admin",
                "sasl.password": password,
                "log_level": 0,
            }
        )
        try:
            client.list_topics(timeout=5)
            return True
        except KafkaException:
            return False

    assert login("first-pass-42")
    assert not login("wrong")
    ok("user", "add", "admin", "--password", "new", "-b", f"127.0.0.1:{plain_port}")
    assert login("new") and not login("first-pass-42")


# --------------------------------------------------------------------------------------------------
# Secured brokers: logins and authorization


def test_a_user_added_by_the_api_logs_in_with_scram(secured, unique):
    user = unique("user")
    upsert(secured.admin(), user, SHA512, 4096, password="fresh-secret")
    secured.wait_login("SASL_PLAINTEXT", "SCRAM-SHA-512", user, password="fresh-secret")
    conf = secured.confluent_config("SASL_PLAINTEXT", "SCRAM-SHA-512", user, password="not-it")
    with pytest.raises(KafkaException):
        AdminClient(conf).list_topics(timeout=5)

    delete(secured.admin(), user, SHA512)

    def refused() -> bool:
        client = AdminClient(
            secured.confluent_config("SASL_PLAINTEXT", "SCRAM-SHA-512", user, password="fresh-secret")
        )
        try:
            client.list_topics(timeout=5)
            return False
        except KafkaException:
            return True

    wait_until(refused, TIMEOUT_S, f"{secured.kind}: a deleted user's login to be refused")


def plain_login(secured, user: str) -> Connection:
    """A wire connection to the SASL_PLAINTEXT listener, logged in with PLAIN (SaslHandshake v1 and
    SaslAuthenticate v2). librdkafka 2.16 crashes the process on a refused DescribeUserScramCredentials
    (on either broker), so the refusals are read through the project's own client."""
    host, port = secured.bootstrap("SASL_PLAINTEXT").rsplit(":", 1)
    conn = Connection(host, int(port), TIMEOUT_S)
    assert int(conn.request(17, 1, {"mechanism": "PLAIN"}).error_code) == 0
    r = conn.request(36, 2, {"auth_bytes": f"\0{user}\0{USERS[user]}".encode()})
    assert int(r.error_code) == 0, r
    return conn


def test_without_cluster_acls_alter_and_describe_are_refused(secured, unique):
    victim = unique("victim")
    with plain_login(secured, "alice") as conn:
        r = conn.request(
            ALTER_USER_SCRAM_CREDENTIALS,
            0,
            {
                "deletions": [{"name": "bob", "mechanism": 2}],
                "upsertions": [salted(victim), salted("bob", 1)],
            },
        )
        assert [(x.user, int(x.error_code)) for x in r.results] == [
            ("bob", CLUSTER_AUTHORIZATION_FAILED),
            (victim, CLUSTER_AUTHORIZATION_FAILED),
        ]
        r = conn.request(DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": []})
        assert (int(r.error_code), r.error_message, r.results) == (CLUSTER_AUTHORIZATION_FAILED, None, ())
        r = conn.request(DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": [{"name": "bob"}, {"name": victim}]})
        assert int(r.error_code) == CLUSTER_AUTHORIZATION_FAILED
        assert [(x.user, int(x.error_code), x.error_message) for x in r.results] == [
            ("", CLUSTER_AUTHORIZATION_FAILED, None)
        ] * 2
    with plain_login(secured, "admin") as conn:  # a super user may
        r = conn.request(DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": [{"name": "bob"}]})
        assert int(r.error_code) == 0 and int(r.results[0].error_code) == 0
        assert {int(i.mechanism) for i in r.results[0].credential_infos} == {1, 2}
    assert described(secured.admin(), victim) is None
