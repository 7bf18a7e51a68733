"""Incremental fetch sessions (KIP-227), on Odradek and on Apache Kafka 4.4 with the same assertions.

Protocol-level cases go through tests/wire.py with Fetch v12 (topic names; Odradek's highest version).
The consumer case uses kafka-python, which keeps fetch sessions (librdkafka, under confluent-kafka, sends
every fetch without one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kio.schema.fetch.v12.request import FetchRequest

from support.kit import create_topic, wait_until
from test_bad_input import make_batch, produce
from wire import WireClient, fetch_body

pytestmark = pytest.mark.differential

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


def fetch_request(
    session_id: int,
    epoch: int,
    partitions: dict[tuple[str, int], int] | None = None,
    forget: list[tuple[str, int]] | None = None,
    max_wait_ms: int = 0,
) -> dict:
    """A Fetch v12 request: ``partitions`` maps (topic, partition) to its fetch offset."""
    return fetch_body(
        partitions or {}, session_id=session_id, epoch=epoch, forget=forget, max_wait_ms=max_wait_ms
    )


def fetch(client: WireClient, session_id: int, epoch: int, *args, **kwargs) -> object:
    """Send one Fetch v12 (arguments as ``fetch_request``) and return the response."""
    return client.request(FetchRequest, fetch_request(session_id, epoch, *args, **kwargs))


def answered(resp) -> dict[tuple[str, int], object]:
    """The partitions a Fetch response carries, by (topic, partition)."""
    return {(t.topic, p.partition_index): p for t in resp.responses for p in t.partitions}


def put(client: WireClient, topic: str, partition: int, n: int = 2) -> None:
    assert produce(client, topic, make_batch(n), partition=partition).error_code == 0


def open_session(client: WireClient, partitions: dict[tuple[str, int], int]) -> int:
    """A full fetch with epoch 0: every partition answered without error; returns the new session id."""
    resp = fetch(client, 0, 0, partitions)
    assert resp.error_code == 0 and resp.session_id != 0
    got = answered(resp)
    assert set(got) == set(partitions) and all(p.error_code == 0 for p in got.values()), got
    return resp.session_id


def wait_fetchable(client: WireClient, topic: str, partitions: int) -> None:
    """Kafka may answer a fetch (or a produce) of a partition whose leader Metadata already names with an
    error for a moment: wait until a sessionless fetch of every partition answers cleanly."""
    everything = {(topic, i): 0 for i in range(partitions)}
    wait_until(
        lambda: all(p.error_code == 0 for p in answered(fetch(client, 0, -1, everything)).values()),
        30,
        f"partitions of {topic} to answer fetches",
    )


@pytest.fixture
def topic(broker, topic_name) -> str:
    create_topic(broker.bootstrap, topic_name, partitions=3)
    with WireClient(broker.bootstrap) as c:
        wait_fetchable(c, topic_name, 3)
    return topic_name


def test_full_fetch_opens_a_session_and_incremental_fetches_carry_only_news(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        put(c, topic, 0)
        resp = fetch(c, 0, 0, {(topic, i): 0 for i in range(3)})
        assert resp.error_code == 0 and resp.session_id != 0
        sid = resp.session_id
        full = answered(resp)
        assert set(full) == {(topic, 0), (topic, 1), (topic, 2)}
        assert all(p.error_code == 0 for p in full.values())
        assert full[(topic, 0)].high_watermark == 2 and full[(topic, 0)].records
        # The client has read partition 0 up to 2; nothing changed since: no partitions at all.
        resp = fetch(c, sid, 1, {(topic, 0): 2}, max_wait_ms=50)
        assert (resp.error_code, resp.session_id, answered(resp)) == (0, sid, {})
        # New records on partition 1 only: only partition 1 comes back, read from its remembered offset 0.
        put(c, topic, 1, n=3)
        resp = fetch(c, sid, 2, max_wait_ms=50)
        assert resp.session_id == sid and set(answered(resp)) == {(topic, 1)}
        p1 = answered(resp)[(topic, 1)]
        assert p1.error_code == 0 and p1.high_watermark == 3 and p1.records
        # Partition 1's new position is sent; still no news anywhere.
        resp = fetch(c, sid, 3, {(topic, 1): 3}, max_wait_ms=50)
        assert (resp.error_code, resp.session_id, answered(resp)) == (0, sid, {})


def test_wrong_epoch_is_71_unknown_session_is_70_and_epoch_minus_1_closes(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        sid = open_session(c, {(topic, 0): 0, (topic, 1): 0})
        resp = fetch(c, sid, 5)
        assert (resp.error_code, resp.session_id, answered(resp)) == (INVALID_FETCH_SESSION_EPOCH, 0, {})
        # The error left the session as it was: epoch 1 is still the one it expects.
        resp = fetch(c, sid, 1)
        assert (resp.error_code, resp.session_id) == (0, sid)
        # Epoch -1 closes it and fetches without a session: every named partition, session id 0.
        resp = fetch(c, sid, -1, {(topic, 0): 0})
        assert (resp.error_code, resp.session_id) == (0, 0) and set(answered(resp)) == {(topic, 0)}
        resp = fetch(c, sid, 2)
        assert (resp.error_code, resp.session_id, answered(resp)) == (FETCH_SESSION_ID_NOT_FOUND, 0, {})
        resp = fetch(c, 0, 1, {(topic, 0): 0})  # an incremental epoch without a session
        assert resp.error_code == FETCH_SESSION_ID_NOT_FOUND and answered(resp) == {}


def test_forgotten_partitions_leave_the_session_and_the_last_one_closes_it(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        sid = open_session(c, {(topic, 0): 0, (topic, 1): 0})
        resp = fetch(c, sid, 1, forget=[(topic, 0)], max_wait_ms=50)
        assert (resp.error_code, resp.session_id, answered(resp)) == (0, sid, {})
        put(c, topic, 0)
        put(c, topic, 1)
        resp = fetch(c, sid, 2, max_wait_ms=50)
        assert set(answered(resp)) == {(topic, 1)}
        # A partition added to the session is answered at once (it was never answered in it).
        resp = fetch(c, sid, 3, {(topic, 1): 2, (topic, 2): 0}, max_wait_ms=50)
        assert resp.session_id == sid and set(answered(resp)) == {(topic, 2)}
        resp = fetch(c, sid, 4, forget=[(topic, 1), (topic, 2)])
        assert (resp.error_code, resp.session_id, answered(resp)) == (0, 0, {})
        assert fetch(c, sid, 5).error_code == FETCH_SESSION_ID_NOT_FOUND


def test_a_session_goes_on_over_another_connection(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        sid = open_session(c, {(topic, 0): 0})
    with WireClient(broker.bootstrap) as c:
        put(c, topic, 0)
        resp = fetch(c, sid, 1, max_wait_ms=50)
        assert resp.session_id == sid and set(answered(resp)) == {(topic, 0)}


def test_an_incremental_fetch_long_polls_until_records_arrive(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c:
        sid = open_session(c, {(topic, i): 0 for i in range(3)})
        result: dict[str, object] = {}

        def wait() -> None:
            result["resp"] = fetch(c, sid, 1, max_wait_ms=10_000)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # let the fetch reach the broker and wait there (not asserted)
        with WireClient(broker.bootstrap) as other:
            put(other, topic, 2)
        waiter.join(15)
        resp = result["resp"]
        assert resp.error_code == 0 and resp.session_id == sid
        assert set(answered(resp)) == {(topic, 2)} and answered(resp)[(topic, 2)].records


def test_an_unknown_partition_in_a_session_does_not_cut_the_long_poll_short(broker, topic, unique) -> None:
    missing = unique("missing")
    with WireClient(broker.bootstrap) as c:
        resp = fetch(c, 0, 0, {(topic, 0): 0, (missing, 0): 0})
        assert resp.session_id != 0
        assert {k: p.error_code for k, p in answered(resp).items()} == {(topic, 0): 0, (missing, 0): 3}
        result: dict[str, object] = {}
        waiter = threading.Thread(
            target=lambda: result.update(resp=fetch(c, resp.session_id, 1, max_wait_ms=10_000))
        )
        waiter.start()
        time.sleep(0.5)  # let the fetch reach the broker and wait there (not asserted)
        with WireClient(broker.bootstrap) as other:
            put(other, topic, 0)
        waiter.join(15)
        # It waited for the records: the unknown partition (sent again, being in error) did not end the wait.
        got = answered(result["resp"])
        assert set(got) == {(topic, 0), (missing, 0)} and got[(missing, 0)].error_code == 3
        assert got[(topic, 0)].error_code == 0 and got[(topic, 0)].records


def test_a_request_overtaken_by_the_next_epoch_while_it_waits_is_answered_71(broker, topic) -> None:
    with WireClient(broker.bootstrap) as c, WireClient(broker.bootstrap) as other:
        sid = open_session(c, {(topic, 0): 0})
        corr = c.next_correlation_id()
        c.send_raw(c.encode_request(FetchRequest, fetch_request(sid, 1, max_wait_ms=1000), corr))  # it waits
        time.sleep(0.3)  # let it reach the broker (not asserted)
        resp = other.request(FetchRequest, fetch_request(sid, 2))  # the next epoch, on another connection
        assert (resp.error_code, resp.session_id) == (0, sid)
        waited = c.read_response(1, 12, corr)
        # As in Kafka: the session moved on meanwhile, so the waiting request gets 71, with the session id.
        assert (waited.error_code, waited.session_id, answered(waited)) == (
            INVALID_FETCH_SESSION_EPOCH,
            sid,
            {},
        )
        assert fetch(other, sid, 3).error_code == 0


def test_a_consumer_with_fetch_sessions_reads_every_record_of_many_partitions(broker, topic_name) -> None:
    partitions = 60
    create_topic(broker.bootstrap, topic_name, partitions=partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    sent: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}

    def send_and_read(first: int, n: int) -> None:
        for i in range(first, first + n):
            p = (i * 7) % partitions
            value = f"{p}:{i}".encode()
            producer.send(topic_name, value=value, partition=p)
            sent[p].append(value)
        producer.flush()
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < first + n and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                got[tp.partition].extend(r.value for r in records)
        assert got == sent  # every record once, in order per partition

    try:
        consumer.assign([TopicPartition(topic_name, p) for p in range(partitions)])
        send_and_read(0, 600)
        # Records produced while the consumer goes on in its session reach it through incremental fetches.
        send_and_read(600, 600)
        send_and_read(1200, 7)
        handlers = consumer._fetcher._session_handlers.values()
        assert any(h.next_metadata.session_id != 0 and h.next_metadata.epoch > 1 for h in handlers), (
            "the consumer never went on with an incremental fetch session"
        )
    finally:
        consumer.close()
        producer.close()


@pytest.mark.parametrize("kind", ["odradek", "kafka"])
def test_no_sessions_with_0_cache_slots(kind, request, unique) -> None:
    factory = request.getfixturevalue(f"{kind}_factory")
    b = factory({"max.incremental.fetch.session.cache.slots": "0"})
    name = unique("topic")
    create_topic(b.bootstrap, name, partitions=2)
    with WireClient(b.bootstrap) as c:
        wait_fetchable(c, name, 2)
        put(c, name, 1)
        wanted = {(name, 0): 0, (name, 1): 0}
        resp = fetch(c, 0, 0, wanted)
        # A full fetch is answered in full, but without a session: the client goes on with full fetches.
        assert (resp.error_code, resp.session_id) == (0, 0) and set(answered(resp)) == set(wanted)
        assert all(p.error_code == 0 for p in answered(resp).values())
        assert answered(resp)[(name, 1)].records


def test_bench_quick_shows_sessions_on_and_off(tmp_path) -> None:
    """``python -m bench.fetch_sessions --quick`` on the two Odradek columns: it runs, the consumer gets a
    session only where sessions are on, every trickled record arrives, and the quiet fetches are small."""
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.fetch_sessions", "--quick", "--only", "odradek,odradek-nosessions"]
        + ["--results-dir", str(results), "--work-dir", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    (report,) = results.glob("fetch-sessions-*.json")
    on, off = (json.loads(report.read_text())["results"][k] for k in ("odradek", "odradek-nosessions"))
    assert any(on["session_ids"]) and not any(off["session_ids"])
    for r in (on, off):
        assert r["trickle"]["records_sent"] > 0
        assert r["trickle"]["records_received"] == r["trickle"]["records_sent"]
    assert 0 < on["idle"]["fetch_request_bytes"] < off["idle"]["fetch_request_bytes"] / 10
