"""kafkajs, the Java client (kafka-clients 4.4) and franz-go over every secured listener, on Odradek as on
Kafka 4.4.

Each client runs one program (tests/node/security.js, tests/java/.../security/SecurityScenario.java,
tests/go/security) with all of a broker's cases in one process, since start-up is the slow part. A case
creates its topic, produces records, consumes them back in a consumer group, commits, and reads the
committed offsets back, over: SSL with the client certificate, SASL_PLAINTEXT with PLAIN, SASL_PLAINTEXT
with SCRAM-SHA-512, and SASL_SSL with SCRAM-SHA-512. Two more cases log in with a wrong password (PLAIN and
SCRAM-SHA-512): each must end in the client's authentication error, promptly (every wait in the programs is
bounded), with nothing produced. The principals hold only PREFIXED ACLs on the test's own topics and groups
(CREATE, WRITE, READ, DESCRIBE; group READ, DESCRIBE), as an application's would.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from support.deps import MissingDependency, missing_dependency
from support.golang import ensure_franz
from support.java import java_main
from support.node import ensure_node_modules, json_lines, run_node
from support.secure import USERS, SecuredBroker

COUNT = 20
CASE_TIMEOUT_MS = 30_000
# Six cases per run; generous against a loaded 2-core machine, far below what a hang would take.
RUN_TIMEOUT_S = 240

# name -> (listener, mechanism, user)
ROUND_TRIPS: dict[str, tuple[str, str | None, str | None]] = {
    "ssl-client-cert": ("SSL", None, None),
    "sasl-plaintext-plain": ("SASL_PLAINTEXT", "PLAIN", "alice"),
    "sasl-plaintext-scram-sha-512": ("SASL_PLAINTEXT", "SCRAM-SHA-512", "alice"),
    "sasl-ssl-scram-sha-512": ("SASL_SSL", "SCRAM-SHA-512", "bob"),
}
WRONG_PASSWORD: dict[str, tuple[str, str, str]] = {
    "wrong-password-plain": ("SASL_PLAINTEXT", "PLAIN", "alice"),
    "wrong-password-scram-sha-512": ("SASL_PLAINTEXT", "SCRAM-SHA-512", "bob"),
}

# How each client names a refused SASL login. Java and franz-go carry Kafka's error (SASL_AUTHENTICATION_
# FAILED, 58); kafkajs 2.2.4 wraps it in its own error class and keeps only the broker's message.
AUTH_FAILED: dict[str, dict[str, Any]] = {
    "java": {"error": "SASL_AUTHENTICATION_FAILED", "code": 58, "exception": "SaslAuthenticationException"},
    "franz": {"error": "SASL_AUTHENTICATION_FAILED", "code": 58},
    "kafkajs": {"error": "KafkaJSSASLAuthenticationError"},
}


# --------------------------------------------------------------------------------------------------
# The three programs


def _argv_prefix(client: str) -> list[str]:
    """The command line of ``client``'s program, built or installed first (or the missing-dependency rule)."""
    try:
        if client == "kafkajs":
            ensure_node_modules()
            return []  # run through support.node.run_node
        if client == "franz":
            return [str(ensure_franz("./security"))]
    except MissingDependency as e:
        missing_dependency(str(e), "run scripts/test")
    return java_main("odradek.security.SecurityScenario")


def _run(client: str, argv: list[str], cases: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], str]:
    """Run every case in one process: its JSON lines by case name, and the tail of its stderr."""
    args = [json.dumps(c) for c in cases]
    if client == "kafkajs":
        proc = run_node("security.js", *args, timeout=RUN_TIMEOUT_S, check=False)
    else:
        proc = subprocess.run(
            [*argv, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    assert proc.returncode == 0, f"{client} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    results = {r["name"]: r for r in json_lines(proc.stdout)}
    assert sorted(results) == sorted(c["name"] for c in cases), proc.stdout + proc.stderr[-4000:]
    return results, proc.stderr[-6000:]


# --------------------------------------------------------------------------------------------------
# Cases


def _case(
    secured: SecuredBroker, prefix: str, name: str, listener: str, mechanism: str | None, user: str | None
) -> dict[str, Any]:
    certs = secured.certs
    case: dict[str, Any] = {
        "name": name,
        "bootstrap": secured.bootstrap(listener),
        "protocol": listener,
        "topic": f"{prefix}-{name}",
        "group": f"{prefix}-g-{name}",
        "n": COUNT,
        "partitions": 2,
        "timeout_ms": CASE_TIMEOUT_MS,
    }
    if listener in ("SSL", "SASL_SSL"):
        case["ca"] = str(certs.ca.cert)
    if listener == "SSL":
        case["cert"], case["key"] = str(certs.client.cert), str(certs.client.key)
    if mechanism is not None:
        assert user is not None
        case.update(mechanism=mechanism, username=user, password=USERS[user])
    return case


def _grant(secured: SecuredBroker, prefix: str) -> None:
    """What each principal of the cases needs on the test's topics and groups, and nothing more."""
    principals = {secured.principal(listener, user) for listener, _, user in ROUND_TRIPS.values()}
    for principal in sorted(principals):
        secured.grant(principal, "TOPIC", prefix, ("CREATE", "WRITE", "READ", "DESCRIBE"), pattern="PREFIXED")
        secured.grant(principal, "GROUP", f"{prefix}-g-", ("READ", "DESCRIBE"), pattern="PREFIXED")


@pytest.mark.differential
@pytest.mark.parametrize("client", ["kafkajs", "java", "franz"])
def test_round_trips_and_wrong_passwords(secured: SecuredBroker, client: str, unique) -> None:
    """Every listener's round trip succeeds; a wrong password is refused with an authentication error."""
    argv = _argv_prefix(client)
    secured.require_scram()
    prefix = unique(f"sec-{client}")
    _grant(secured, prefix)
    cases = [_case(secured, prefix, name, *how) for name, how in ROUND_TRIPS.items()]
    for name, (listener, mechanism, user) in WRONG_PASSWORD.items():
        wrong = _case(secured, prefix, name, listener, mechanism, user)
        wrong["password"] = USERS[user] + "-wrong"
        cases.append(wrong)

    results, stderr = _run(client, argv, cases)

    ok = {"ok": True, "produced": COUNT, "consumed": COUNT, "values_match": True, "committed": COUNT}
    refused = {"ok": False, "stage": "create", **AUTH_FAILED[client]}
    want = {name: ok for name in ROUND_TRIPS} | {name: refused for name in WRONG_PASSWORD}
    got = {
        name: {key: results[name].get(key) for key in want[name]} for name in (*ROUND_TRIPS, *WRONG_PASSWORD)
    }
    assert got == want, f"{json.dumps(results, indent=1)}\n--- {client} stderr:\n{stderr}"
