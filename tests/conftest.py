"""Shared fixtures: Odradek and Apache Kafka brokers, unique names, the kafkajs helpers.

Fixtures (see each docstring):

* ``odradek`` (session)            one shared Odradek broker; ``.bootstrap`` = "127.0.0.1:PORT"
* ``odradek_factory`` (function)   ``make(settings=None, **kw) -> OdradekBroker``, all stopped afterwards
* ``fresh_odradek`` (function)     a private, started Odradek broker (crash tests may kill/restart it)
* ``kafka`` (session)              one shared Apache Kafka 4.4 broker, started on first use
* ``kafka_factory`` (function)     ``make(settings=None, **kw) -> KafkaBroker``, a private Kafka broker
* ``kafka_jars`` (session)         the folder of Kafka jars (for ``support.kafka.run_kafka_tool``)
* ``broker`` (session, params ``odradek`` / ``kafka``)  a :class:`Target` for differential tests
* ``unique`` / ``topic_name`` / ``group_name`` (function)  names unique to the test
* ``kafkajs`` (session)            ``tests/node`` with node_modules installed (``support.node.run_node``)
* ``franz`` (session)              the franz-go client built from ``tests/go`` (``support.golang.run_franz``)
* ``postgres_url`` / ``mariadb_url`` / ``redis_url`` (session)  private database servers, started on first
  use (``support.databases``): SQLAlchemy / redis URLs
* ``sql_url`` (function, params ``sqlite`` / ``postgres`` / ``mariadb``)  a fresh database on each SQL backend

Missing java / mvn / node / npm / go / Kafka jars / database servers: dependent tests SKIP with a
``MISSING DEPENDENCY`` reason, or FAIL when CI=true (``support.deps``).
"""

from __future__ import annotations

import itertools
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import support` under any rootdir/import mode

from support.databases import (  # noqa: E402
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    RedisServer,
    new_database,
)
from support.deps import MissingDependency, in_ci, missing_dependency  # noqa: E402
from support.golang import ensure_franz  # noqa: E402
from support.kafka import KafkaBroker, ensure_kafka_jars, find_java  # noqa: E402
from support.net import tail  # noqa: E402
from support.node import ensure_node_modules  # noqa: E402
from support.odradek import OdradekBroker  # noqa: E402

_REPORT: list[str] = []  # one line per broker started, printed in the terminal summary


# --------------------------------------------------------------------------------------------------
# Odradek


@pytest.fixture(scope="session")
def odradek(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdradekBroker]:
    """One Odradek broker shared by the whole session (give each test its own topics and groups)."""
    broker = OdradekBroker(tmp_path_factory.mktemp("odradek-shared") / "data")
    broker.start()
    _REPORT.append(f"odradek (shared) started in {broker.start_seconds:.2f}s; log {broker.log_path}")
    yield broker
    died = not broker.running
    code = broker.stop()
    if died:
        pytest.fail(
            f"the shared odradek broker died during the session (exit {code}); log {broker.log_path}:\n"
            f"{tail(broker.log_path)}",
            pytrace=False,
        )


class OdradekFactory:
    """Creates private Odradek brokers under the test's tmp_path; every one is stopped at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.brokers: list[OdradekBroker] = []
        self._n = itertools.count()

    def __call__(
        self,
        settings: dict[str, str] | None = None,
        *,
        start: bool = True,
        data_dir: Path | None = None,
        **kw,
    ) -> OdradekBroker:
        broker = OdradekBroker(
            data_dir or self.root / f"odradek-{next(self._n)}" / "data", settings=settings, **kw
        )
        self.brokers.append(broker)
        return broker.start() if start else broker

    def close(self) -> None:
        for broker in self.brokers:
            broker.stop(timeout=10)


@pytest.fixture
def odradek_factory(tmp_path: Path) -> Iterator[OdradekFactory]:
    """``make(settings=None, *, start=True, data_dir=None, listen=..., ...) -> OdradekBroker``."""
    factory = OdradekFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def fresh_odradek(odradek_factory: OdradekFactory) -> OdradekBroker:
    """A private, started Odradek broker for this test alone (kill / restart it freely)."""
    return odradek_factory()


# --------------------------------------------------------------------------------------------------
# Apache Kafka


def _require_kafka_runtime() -> None:
    if find_java() is None:
        missing_dependency("`java` (17+) not found on PATH or JAVA_HOME", "needed to run Apache Kafka 4.4")
    try:
        ensure_kafka_jars()
    except MissingDependency as e:
        missing_dependency(str(e), "run scripts/test to fetch them")


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The folder holding every Apache Kafka 4.4 jar (java checked too), for ``run_kafka_tool``."""
    _require_kafka_runtime()
    return ensure_kafka_jars()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One Apache Kafka 4.4 broker (KRaft, single node) for the session, started on first use."""
    _require_kafka_runtime()
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-shared"))
    broker.start()
    _REPORT.append(f"Apache Kafka (shared) started in {broker.start_seconds:.2f}s; log {broker.log_path}")
    yield broker
    broker.stop()


class KafkaFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.brokers: list[KafkaBroker] = []
        self._n = itertools.count()

    def __call__(self, settings: dict[str, str] | None = None, *, start: bool = True, **kw) -> KafkaBroker:
        broker = KafkaBroker(self.root / f"kafka-{next(self._n)}", settings=settings, **kw)
        self.brokers.append(broker)
        if start:
            broker.start()
            _REPORT.append(f"Apache Kafka (private) started in {broker.start_seconds:.2f}s")
        return broker

    def close(self) -> None:
        for broker in self.brokers:
            broker.stop()


@pytest.fixture
def kafka_factory(tmp_path: Path) -> Iterator[KafkaFactory]:
    """``make(settings=None, *, start=True, ...) -> KafkaBroker``: private Kafka brokers (seconds each)."""
    _require_kafka_runtime()
    factory = KafkaFactory(tmp_path)
    yield factory
    factory.close()


# --------------------------------------------------------------------------------------------------
# Differential


@dataclass(frozen=True)
class Target:
    """What a differential test talks to: ``kind`` is "odradek" or "kafka"."""

    kind: str
    bootstrap: str
    process: OdradekBroker | KafkaBroker

    @property
    def is_kafka(self) -> bool:
        return self.kind == "kafka"

    @property
    def is_odradek(self) -> bool:
        return self.kind == "odradek"


@pytest.fixture(scope="session", params=["odradek", "kafka"])
def broker(request: pytest.FixtureRequest) -> Target:
    """Runs the test once against the shared Odradek and once against the shared Apache Kafka.

    Test ids end in ``[odradek]`` / ``[kafka]``: select one side with ``-k odradek``.
    """
    process = request.getfixturevalue(request.param)
    return Target(kind=request.param, bootstrap=process.bootstrap, process=process)


@pytest.fixture(params=["odradek", "kafka"])
def private_broker(request: pytest.FixtureRequest) -> OdradekBroker | KafkaBroker:
    """A fresh broker of each kind, the test's own (to kill and restart): ids end in [odradek] / [kafka]."""
    if request.param == "odradek":
        return request.getfixturevalue("odradek_factory")()
    return request.getfixturevalue("kafka_factory")()


# --------------------------------------------------------------------------------------------------
# Names


class UniqueNames:
    """``unique("topic")`` -> ``"topic-<test name>-<n>-<random>"``: legal Kafka topic / group names."""

    def __init__(self, test_name: str) -> None:
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", test_name.removeprefix("test_")).strip("-").lower()
        self.slug = slug[:80] or "test"
        self.token = uuid.uuid4().hex[:6]
        self._n = itertools.count()

    def __call__(self, prefix: str = "t") -> str:
        return f"{prefix}-{self.slug}-{next(self._n)}-{self.token}"


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> UniqueNames:
    return UniqueNames(request.node.name)


@pytest.fixture
def topic_name(unique: UniqueNames) -> str:
    """A topic name no other test (or earlier run against a reused broker) uses."""
    return unique("topic")


@pytest.fixture
def group_name(unique: UniqueNames) -> str:
    return unique("group")


# --------------------------------------------------------------------------------------------------
# Node.js (kafkajs)


@pytest.fixture(scope="session")
def kafkajs() -> Path:
    """``tests/node`` with kafkajs installed; run its scripts with ``support.node.run_node``."""
    try:
        return ensure_node_modules()
    except MissingDependency as e:
        missing_dependency(str(e), "install Node.js 18+ and npm, or run scripts/test")


@pytest.fixture(scope="session")
def franz() -> Path:
    """The franz-go client binary from ``tests/go`` (``support.golang.run_franz``)."""
    try:
        return ensure_franz()
    except MissingDependency as e:
        missing_dependency(str(e), "install Go 1.26+, or run scripts/test")


# --------------------------------------------------------------------------------------------------
# Databases (odradek.stream's SQL sinks, offset store and idempotency stores)


def _database_server(kind: str, cls: type[DatabaseServer]) -> Iterator[str]:
    try:
        server = cls()
    except MissingDependency as e:
        missing_dependency(str(e), f"needed by the {kind} tests of odradek.stream")
    server.start()
    _REPORT.append(f"{kind} started in {server.start_seconds:.2f}s on port {server.port} (pid {server.pid})")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for the session (started on first use): ``postgresql+psycopg://...``
    of its shared database ``odradek``. Tests that use it directly give their tables unique names."""
    yield from _database_server("PostgreSQL", PostgresServer)


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A private MariaDB server for the session (started on first use): ``mysql+pymysql://...`` of its
    shared database ``odradek``. Tests that use it directly give their tables unique names."""
    yield from _database_server("MariaDB", MariaDBServer)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the session (started on first use): ``redis://127.0.0.1:PORT/0``.
    Shared by every test: give keys a prefix unique to the test (``unique("...")``)."""
    yield from _database_server("Redis", RedisServer)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once per SQL backend, each time with a database of its own: a new SQLite file in
    ``tmp_path``, or a new, empty database created for this test on the session's PostgreSQL / MariaDB
    server (so fixed table names such as ``odradek_offsets`` never collide). Ids end in ``[sqlite]``,
    ``[postgres]``, ``[mariadb]``: select one with ``-k``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    server_url = request.getfixturevalue(f"{request.param}_url")
    return new_database(server_url, request.node.originalname)


# --------------------------------------------------------------------------------------------------
# Hooks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.differential)


def _brokers_of(item: pytest.Item) -> list[OdradekBroker | KafkaBroker]:
    found: list[OdradekBroker | KafkaBroker] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, OdradekBroker | KafkaBroker):
            found.append(value)
        elif isinstance(value, Target):
            found.append(value.process)
        elif isinstance(value, OdradekFactory | KafkaFactory):
            found.extend(value.brokers)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the tail of each involved broker's log to the report."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        seen: set[int] = set()
        for b in _brokers_of(item):
            if id(b) in seen:
                continue
            seen.add(id(b))
            kind = "kafka" if isinstance(b, KafkaBroker) else "odradek"
            report.sections.append((f"{kind} log tail ({b.log_path})", tail(b.log_path, 60)))
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    ci = in_ci()
    java = find_java() or "MISSING"
    rule = "FAIL (CI=true)" if ci else "SKIP"
    return [f"odradek tests: java={java}; tests whose dependencies are missing will {rule}"]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _REPORT:
        terminalreporter.section("brokers")
        for line in _REPORT:
            terminalreporter.write_line(line)
