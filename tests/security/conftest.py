"""Fixtures for the security tests: secured brokers of both kinds, configured alike (support/secure.py).

* ``secure_certs`` (session)      the test CA and certificates (support/certs.py), in a tmp dir
* ``secured_kafka`` (session)     a secured Apache Kafka 4.4 (:class:`support.secure.SecuredBroker`)
* ``secured_odradek`` (session)   a secured Odradek
* ``secured`` (session, params ``odradek`` / ``kafka``)  each of them in turn; ids end in [odradek] /
  [kafka], like ``broker``

Both have SCRAM users admin, alice and bob (support.secure.USERS) for SCRAM-SHA-256 and SCRAM-SHA-512,
created over the PLAINTEXT listener after start. Should that fail (a broker without
AlterUserScramCredentials), ``SecuredBroker.scram_error`` says why and ``SecuredBroker.require_scram()``
fails the SCRAM tests with it; the other tests still run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.certs import Certs, make_certs
from support.net import tail
from support.secure import SecuredBroker, start_secured_kafka, start_secured_odradek


@pytest.fixture(scope="session")
def secure_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _finish(broker: SecuredBroker) -> None:
    died = not broker.process.running
    code = broker.stop()
    if died:
        pytest.fail(
            f"the secured {broker.kind} broker died during the session (exit {code}); log "
            f"{broker.process.log_path}:\n{tail(broker.process.log_path)}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def secured_kafka(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, secure_certs: Certs
) -> Iterator[SecuredBroker]:
    request.getfixturevalue("kafka_jars")  # java and the jars, or skip / fail (CI) as tests/conftest.py does
    broker = start_secured_kafka(tmp_path_factory.mktemp("kafka-secured"), secure_certs)
    try:
        broker.create_scram_users()
    except BaseException:
        broker.stop()
        raise
    yield broker
    _finish(broker)


@pytest.fixture(scope="session")
def secured_odradek(tmp_path_factory: pytest.TempPathFactory, secure_certs: Certs) -> Iterator[SecuredBroker]:
    broker = start_secured_odradek(tmp_path_factory.mktemp("odradek-secured") / "data", secure_certs)
    try:
        broker.create_scram_users()
    except Exception as e:
        broker.scram_error = f"creating the SCRAM users on odradek failed: {type(e).__name__}: {e}"
    yield broker
    _finish(broker)


@pytest.fixture(scope="session", params=["odradek", "kafka"])
def secured(request: pytest.FixtureRequest) -> SecuredBroker:
    """The test runs once against the secured Odradek and once against the secured Kafka."""
    return request.getfixturevalue(f"secured_{request.param}")
