"""The broker's Prometheus endpoint (metrics.listen), scraped over HTTP after real client traffic.

One scenario (produce with confluent-kafka, consume in a group with a commit, a transaction committed and
one aborted, a Produce to a partition that does not exist) runs against Odradek with metrics on and
against Apache Kafka 4.4: what the clients see must be the same on both, and on Odradek the scraped
metrics must agree with what the clients saw. Then: every metric the Grafana dashboard uses exists in a
real scrape; with metrics.listen off nothing but the Kafka port listens; bad values are refused.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.produce.v9.request import ProduceRequest
from prometheus_client.parser import text_string_to_metric_families

from support.kit import admin, create_topic, wait_until
from support.odradek import SRC_DIR, OdradekBroker, child_env
from wire import WireClient, record_batch

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"
PLAIN_RECORDS = 30
COMMITTED = 20
UNKNOWN_TOPIC_OR_PARTITION = 3
TIMEOUT_S = 30.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- helpers ----------------------------------------------------------------------------------------


def metrics_address(broker: OdradekBroker) -> str:
    """HOST:PORT of the endpoint, from the broker's log line (metrics.listen may ask for port 0)."""
    found = wait_until(
        lambda: re.search(r"metrics on http://([^/\s]+)/metrics", broker.log_path.read_text()),
        10,
        "the broker's 'metrics on' log line",
    )
    return found.group(1)


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, (
        f"{name}{labels} not in the scrape: {sorted(k for k, _ in samples if 'odradek' in k)}"
    )
    return samples[key]


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on, from /proc (its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[9]) in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def produce_to_partition(bootstrap: str, topic: str, partition: int) -> int:
    """Produce one batch by hand to ``partition``; the partition's error code."""
    with WireClient(bootstrap) as client:
        resp = client.request(
            ProduceRequest,
            {
                "transactional_id": None,
                "acks": -1,
                "timeout": datetime.timedelta(seconds=10),
                "topic_data": [
                    {
                        "name": topic,
                        "partition_data": [{"index": partition, "records": record_batch([(b"k", b"v")])}],
                    }
                ],
            },
        )
    return resp.responses[0].partition_responses[0].error_code


# --- the scenario, on either broker -----------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What the clients saw: the same on both brokers."""

    plain_end: int
    committed: int
    members: int
    missing_partition_error: int
    txn_end: int
    txn_read_committed: int


def run_scenario(
    bootstrap: str, plain: str, txn: str, group: str, while_consuming: Callable[[], None]
) -> Seen:
    create_topic(bootstrap, plain)
    create_topic(bootstrap, txn)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(PLAIN_RECORDS):
        producer.produce(plain, key=b"k%d" % i, value=b"value-%03d" % i)
    assert producer.flush(TIMEOUT_S) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([plain])
        got: list[object] = []

        def consumed_all() -> bool:
            for m in consumer.consume(PLAIN_RECORDS, 0.2):
                assert m.error() is None, m.error()
                got.append(m)
            return len(got) >= PLAIN_RECORDS

        wait_until(consumed_all, TIMEOUT_S, f"{PLAIN_RECORDS} records consumed from {plain}")
        consumer.commit(offsets=[TopicPartition(plain, 0, COMMITTED)], asynchronous=False)
        committed = consumer.committed([TopicPartition(plain, 0)], timeout=10)[0].offset
        _, plain_end = consumer.get_watermark_offsets(TopicPartition(plain, 0), timeout=10, cached=False)
        client = admin(bootstrap)  # kept referenced until the answer is in
        described = client.describe_consumer_groups([group])[group].result(TIMEOUT_S)
        members = len(described.members)
        while_consuming()
    finally:
        consumer.close()

    tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{txn}-id", "linger.ms": 5})
    tx.init_transactions(TIMEOUT_S)
    tx.begin_transaction()
    for i in range(3):
        tx.produce(txn, value=b"committed-%d" % i)
    tx.commit_transaction(TIMEOUT_S)
    tx.begin_transaction()
    for i in range(2):
        tx.produce(txn, value=b"aborted-%d" % i)
    tx.flush(TIMEOUT_S)
    tx.abort_transaction(TIMEOUT_S)

    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-reader"})
    try:
        _, txn_end = reader.get_watermark_offsets(TopicPartition(txn, 0), timeout=10, cached=False)
    finally:
        reader.close()
    return Seen(
        plain_end=plain_end,
        committed=committed,
        members=members,
        missing_partition_error=produce_to_partition(bootstrap, plain, 7),
        txn_end=txn_end,
        txn_read_committed=len(read_committed_values(bootstrap, txn, f"{group}-rc")),
    )


def read_committed_values(bootstrap: str, topic: str, group: str) -> list[bytes]:
    """Values a read_committed consumer gets (the aborted ones are skipped)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed"})
    try:
        low, _ = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        c.assign([TopicPartition(topic, 0, low)])
        got: list[bytes] = []

        def more() -> bool:
            for m in c.consume(10, 0.2):
                if m.error() is None:
                    got.append(m.value())
            return len(got) >= 3

        wait_until(more, TIMEOUT_S, f"the committed records of {topic}")
        return got
    finally:
        c.close()


# --- fixtures --------------------------------------------------------------------------------------


@dataclass
class OdradekRun:
    broker: OdradekBroker
    address: str
    plain: str
    txn: str
    group: str
    seen: Seen
    during: Samples  # scraped while the consumer was in its group
    after: Samples  # scraped at the end


@pytest.fixture(scope="module")
def odradek_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdradekRun]:
    broker = OdradekBroker(
        tmp_path_factory.mktemp("metrics") / "data", settings={"metrics.listen": "127.0.0.1:0"}
    )
    broker.start()
    try:
        address = metrics_address(broker)
        during: list[Samples] = []
        token = os.urandom(3).hex()
        names = (f"metrics-plain-{token}", f"metrics-txn-{token}", f"metrics-group-{token}")
        seen = run_scenario(broker.bootstrap, *names, lambda: during.append(scrape(address)))
        yield OdradekRun(broker, address, *names, seen, during[0], scrape(address))
    finally:
        broker.stop(timeout=10)


# --- tests -----------------------------------------------------------------------------------------


def test_the_scenario_looks_the_same_to_clients_on_kafka(odradek_run: OdradekRun, kafka, unique) -> None:
    seen = run_scenario(kafka.bootstrap, unique("plain"), unique("txn"), unique("group"), lambda: None)
    assert seen == odradek_run.seen
    assert seen == Seen(
        plain_end=PLAIN_RECORDS,
        committed=COMMITTED,
        members=1,
        missing_partition_error=UNKNOWN_TOPIC_OR_PARTITION,
        txn_end=3 + 1 + 2 + 1,  # two markers
        txn_read_committed=3,
    )


def test_scraped_metrics_agree_with_what_the_clients_saw(odradek_run: OdradekRun) -> None:
    run, after, during = odradek_run, odradek_run.after, odradek_run.during
    plain, txn, group = run.plain, run.txn, run.group

    requests: dict[str, float] = {}
    for (name, labels), v in after.items():
        if name == "odradek_requests_total":
            api = dict(labels)["api"]
            requests[api] = requests.get(api, 0) + v
    used = ["Produce", "Fetch", "Metadata", "FindCoordinator", "JoinGroup", "SyncGroup", "OffsetCommit"]
    used += ["OffsetFetch", "ListOffsets", "InitProducerId", "AddPartitionsToTxn", "EndTxn"]
    assert {api for api in used if requests.get(api, 0) > 0} == set(used)
    errors = "odradek_request_errors_total"
    assert value(after, errors, api="Produce", version="9", error="UNKNOWN_TOPIC_OR_PARTITION") == 1

    # Bytes and records in: exactly what was appended (only the producer wrote to the plain topic).
    assert value(after, "odradek_topic_records_in_total", topic=plain) == PLAIN_RECORDS
    bytes_in = value(after, "odradek_topic_bytes_in_total", topic=plain)
    assert bytes_in == value(after, "odradek_log_size_bytes", topic=plain, partition="0") > 0
    assert value(after, "odradek_topic_records_out_total", topic=plain) >= PLAIN_RECORDS
    assert value(after, "odradek_topic_bytes_out_total", topic=plain) >= bytes_in
    assert value(after, "odradek_log_end_offset", topic=plain, partition="0") == run.seen.plain_end
    assert value(after, "odradek_log_start_offset", topic=plain, partition="0") == 0
    # The transactional topic: 5 records in, two markers besides them at the end of the log.
    assert value(after, "odradek_topic_records_in_total", topic=txn) == 5
    assert value(after, "odradek_log_end_offset", topic=txn, partition="0") == run.seen.txn_end

    # Lag after the commit: log end offset minus committed offset; members while consuming, and after.
    for samples in (during, after):
        lag = value(samples, "odradek_consumer_group_lag", group=group, topic=plain, partition="0")
        assert lag == run.seen.plain_end - run.seen.committed == PLAIN_RECORDS - COMMITTED
        assert (
            value(samples, "odradek_consumer_group_committed_offset", group=group, topic=plain, partition="0")
            == COMMITTED
        )
    assert (
        value(during, "odradek_consumer_group_members", group=group, protocol="classic")
        == run.seen.members
        == 1
    )
    assert value(after, "odradek_consumer_group_members", group=group, protocol="classic") == 0
    assert value(after, "odradek_consumer_group_rebalances_total", protocol="classic") >= 1

    assert value(after, "odradek_transactions_begun_total") == 2
    assert value(after, "odradek_transactions_committed_total") == 1
    assert value(after, "odradek_transactions_aborted_total") == 1
    assert value(after, "odradek_transactions_timed_out_total") == 0
    assert value(after, "odradek_transactions_open") == 0

    assert value(during, "odradek_connections_open") > 0
    assert value(after, "odradek_connections_accepted_total") >= value(during, "odradek_connections_open")
    assert value(after, "odradek_request_duration_seconds_count", api="Produce") > 0
    assert value(after, "odradek_request_duration_seconds_bucket", api="Produce", le="+Inf") == value(
        after, "odradek_request_duration_seconds_count", api="Produce"
    )
    assert value(after, "odradek_fsync_duration_seconds_count") > 0
    assert value(after, "odradek_fsync_batch_requests_sum") >= 1  # acks=all waited on fsyncs
    assert value(after, "odradek_metrics_series_omitted") == 0


def test_a_kip848_group_shows_its_members_and_rebalances(odradek_run: OdradekRun, unique) -> None:
    group = unique("group")
    before = value(
        scrape(odradek_run.address), "odradek_consumer_group_rebalances_total", protocol="consumer"
    )
    c = Consumer(
        {"bootstrap.servers": odradek_run.broker.bootstrap, "group.id": group, "group.protocol": "consumer"}
    )
    try:
        c.subscribe([odradek_run.plain])
        wait_until(lambda: c.poll(0.2) is not None or c.assignment(), TIMEOUT_S, f"an assignment in {group}")
        samples = scrape(odradek_run.address)
        assert value(samples, "odradek_consumer_group_members", group=group, protocol="consumer") == 1
        assert value(samples, "odradek_consumer_group_rebalances_total", protocol="consumer") > before
    finally:
        c.close()
    gone = scrape(odradek_run.address)
    assert gone.get(
        ("odradek_consumer_group_members", frozenset({("group", group), ("protocol", "consumer")}))
    ) in (
        0,
        None,  # an empty KIP-848 group without offsets is removed
    )


def test_fetch_sessions_are_counted(odradek_run: OdradekRun) -> None:
    from test_fetch_sessions import fetch, open_session

    before = value(scrape(odradek_run.address), "odradek_fetch_sessions")
    with WireClient(odradek_run.broker.bootstrap) as c:
        session = open_session(c, {(odradek_run.plain, 0): 0})
        samples = scrape(odradek_run.address)
        assert value(samples, "odradek_fetch_sessions") == before + 1
        assert value(samples, "odradek_fetch_session_partitions") >= 1
        assert fetch(c, session, -1).error_code == 0  # epoch -1 closes it
    assert value(scrape(odradek_run.address), "odradek_fetch_sessions") == before


def test_a_transaction_past_its_timeout_counts_as_timed_out_and_aborted(
    odradek_run: OdradekRun, unique
) -> None:
    address, bootstrap = odradek_run.address, odradek_run.broker.bootstrap
    before = scrape(address)
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": unique("slow"),
            "transaction.timeout.ms": 1000,
            "message.timeout.ms": 1000,
        }
    )
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(odradek_run.txn, value=b"never committed")
    assert p.flush(TIMEOUT_S) == 0

    def timed_out() -> Samples | None:
        now = scrape(address)
        aborted = value(now, "odradek_transactions_aborted_total")
        done = aborted > value(before, "odradek_transactions_aborted_total")
        return now if done and value(now, "odradek_transactions_open") == 0 else None

    after = wait_until(timed_out, TIMEOUT_S, "the coordinator to abort the transaction past its timeout")
    assert value(after, "odradek_transactions_timed_out_total") == 1
    for name in ("odradek_transactions_aborted_total", "odradek_transactions_begun_total"):
        assert value(after, name) == value(before, name) + 1
    assert value(after, "odradek_transactions_committed_total") == value(
        before, "odradek_transactions_committed_total"
    )
    assert value(after, "odradek_transactions_open") == 0


def _dashboard_metric_names() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            exprs.extend(node[k] for k in ("expr", "definition") if isinstance(node.get(k), str))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(board)
    assert exprs, "the dashboard has no queries"
    names = set()
    for expr in exprs:
        names.update(re.findall(r"\b((?:odradek|process)_[a-zA-Z0-9_]+)", expr))
    return names


def test_every_metric_the_dashboard_uses_exists_in_a_real_scrape(odradek_run: OdradekRun) -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = board["templating"]["list"]
    assert any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables)
    scraped = {name for name, _ in odradek_run.after}
    used = _dashboard_metric_names()
    assert len(used) >= 15
    missing = sorted(n for n in used if n not in scraped)
    assert not missing, f"the dashboard uses metrics a scrape does not have: {missing}"


def test_metrics_off_by_default_nothing_else_listens(odradek_factory, odradek_run: OdradekRun) -> None:
    off = odradek_factory()
    assert listening_ports(off.pid) == {off.port}
    assert "metrics on" not in off.log_path.read_text()
    on = odradek_run.broker  # the same broker with metrics.listen set listens on exactly one more port
    assert listening_ports(on.pid) == {on.port, int(odradek_run.address.rsplit(":", 1)[1])}


def _serve(tmp_path: Path, *settings: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "odradek.cli", "serve", "--listen", "127.0.0.1:0"]
    argv += ["--data-dir", str(tmp_path / "data")]
    for s in settings:
        argv += ["--set", s]
    return subprocess.run(argv, env=env or child_env(), capture_output=True, text=True, timeout=60)


def test_a_bad_metrics_listen_is_refused_with_one_line(tmp_path: Path) -> None:
    done = _serve(tmp_path, "metrics.listen=localhost")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "odradek: metrics.listen: expected HOST:PORT or :PORT (loopback), or empty to turn the endpoint off, "
        "got 'localhost'"
    ]


def test_metrics_listen_without_prometheus_client_is_refused_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('prometheus_client is not installed')\n")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(SRC_DIR)])
    done = _serve(tmp_path, "metrics.listen=:0", env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'odradek[metrics]'" in lines[0], done.stderr
    assert not (tmp_path / "data").exists()  # refused before touching the data directory


def test_a_taken_metrics_port_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, f"metrics.listen=127.0.0.1:{port}")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"odradek: cannot listen on metrics.listen 127.0.0.1:{port}: "), last
    assert "odradek listening" not in done.stdout
