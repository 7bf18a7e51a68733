"""odradek.stream against real brokers (Odradek and Apache Kafka 4.4): processing errors and dead letters,
retries, dedup by message id, metrics, start-up errors and the SIGTERM lifecycle.

The crash tests (SIGKILLed workers, broker kills) are in test_stream_crash.py, zombie fencing in
test_zombie.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

import pytest
from streamkit import Running, committed, produce, read_topic

from odradek.stream import (
    App,
    ErrorPolicy,
    GuaranteedProducer,
    Output,
    ProcessingError,
    StartupError,
)
from odradek.stream.dedup import MemoryDedupStore, SqliteDedupStore
from support.kit import create_topic, wait_until
from support.net import free_port
from support.odradek import child_env

GUARANTEES = ["at-most-once", "at-least-once", "exactly-once"]


def headers_of(m) -> dict[str, bytes]:
    return dict(m.headers() or [])


@pytest.fixture
def topics(broker, unique):
    src, out = unique("in"), unique("out")
    create_topic(broker.bootstrap, src, 1)
    create_topic(broker.bootstrap, out, 1)
    return src, out


# -- processing errors --------------------------------------------------------------------------


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_poison_record_goes_to_the_dead_letter_topic_and_the_rest_is_processed(
    broker, topics, unique, guarantee
):
    src, out = topics
    dlq = unique("dlq")
    create_topic(broker.bootstrap, dlq, 1)
    produce(broker.bootstrap, src, [b"1", b"2", b"poison", b"4"])
    app = App(
        broker.bootstrap,
        unique("g"),
        guarantee,
        instance_id="w0",
        errors=ErrorPolicy(retries=1, backoff_ms=10, on_failure="dead-letter", dead_letter_topic=dlq),
    )
    calls: list[bytes] = []

    @app.processor(source=src, sink=out)
    def double(msg):
        calls.append(msg.value)
        if msg.value == b"poison":
            raise ValueError("cannot parse")
        return msg.value * 2

    run = Running(app)
    outputs = read_topic(broker.bootstrap, out, 3)
    letters = read_topic(broker.bootstrap, dlq, 1)
    assert run.stop() is None
    assert [m.value() for m in outputs] == [b"11", b"22", b"44"]
    assert calls.count(b"poison") == 2  # one try and one retry
    assert len(letters) == 1
    h = headers_of(letters[0])
    assert letters[0].value() == b"poison"
    assert h["odradek.topic"] == src.encode()
    assert h["odradek.partition"] == b"0"
    assert h["odradek.offset"] == b"2"
    assert h["odradek.attempts"] == b"2"
    assert h["odradek.error"] == b"ValueError: cannot parse"
    assert committed(broker.bootstrap, app.group_id, src) == [4]
    assert app.metrics.dead_lettered.labels("double")._value.get() == 1


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_stop_policy_commits_what_came_before_and_the_poison_record_is_not_skipped(
    broker, topics, unique, guarantee
):
    src, out = topics
    produce(broker.bootstrap, src, [b"a", b"b", b"poison", b"d"])
    group = unique("g")

    def build():
        app = App(
            broker.bootstrap,
            group,
            guarantee,
            instance_id="w0",
            errors=ErrorPolicy(retries=0, on_failure="stop"),
        )

        @app.processor(source=src, sink=out)
        def upper(msg):
            if msg.value == b"poison":
                raise ValueError("bad record")
            return msg.value.upper()

        return app

    for _attempt in range(2):  # a restart meets the same record again: it is never dropped silently
        app = build()
        with pytest.raises(ProcessingError) as e:
            app.run(exit_on_error=False, install_signal_handlers=False)
        assert (e.value.topic, e.value.partition, e.value.offset) == (src, 0, 2)
        assert f"{src}/0 offset 2" in str(e.value) and "ValueError: bad record" in str(e.value)
        # at-least-once commits the records before the poison; exactly-once aborts the open transaction
        # (outputs and positions alike) and stops, so those records are processed again, once, later.
        assert committed(broker.bootstrap, group, src) == ([2] if guarantee == "at-least-once" else [-1001])
    expected = [b"A", b"B"] if guarantee == "at-least-once" else []
    assert [m.value() for m in read_topic(broker.bootstrap, out, 2, timeout=3)] == expected


def test_processing_is_retried_with_backoff_then_succeeds(broker, topics, unique):
    src, out = topics
    produce(broker.bootstrap, src, [b"x"])
    app = App(broker.bootstrap, unique("g"), errors=ErrorPolicy(retries=3, backoff_ms=50))
    attempts: list[float] = []

    @app.processor(source=src, sink=out)
    def flaky(msg):
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("downstream busy")
        return b"done"

    run = Running(app)
    outs = read_topic(broker.bootstrap, out, 1)
    assert run.stop() is None
    assert [m.value() for m in outs] == [b"done"]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.045 and attempts[2] - attempts[1] >= 0.095  # 50 ms, then 100 ms
    assert app.metrics.failed_attempts.labels("flaky")._value.get() == 2


# -- outputs --------------------------------------------------------------------------------------


def test_outputs_keep_the_input_key_and_carry_deterministic_message_ids(broker, topics, unique):
    src, out = topics
    other = unique("other")
    create_topic(broker.bootstrap, other, 1)
    produce(broker.bootstrap, src, [b"v"], key=b"k1")
    app = App(broker.bootstrap, unique("g"), "exactly-once", instance_id="w0", message_ids=True)

    @app.processor(source=src, sink=out)
    def fan_out(msg):
        return [msg.value, Output(b"elsewhere", key=b"k2", topic=other, headers=[("h", b"1")]), None and b""]

    run = Running(app)
    outs = read_topic(broker.bootstrap, out, 1)
    elsewhere = read_topic(broker.bootstrap, other, 1)
    assert run.stop() is None
    assert [(m.key(), m.value()) for m in outs] == [(b"k1", b"v")]
    assert [(m.key(), m.value()) for m in elsewhere] == [(b"k2", b"elsewhere")]
    assert headers_of(outs[0])["message-id"] == f"{src}/0/0/0".encode()
    assert headers_of(elsewhere[0]) == {"h": b"1", "message-id": f"{src}/0/0/1".encode()}


@pytest.mark.parametrize("stamp", [False, True])
def test_message_ids_on_outputs_only_when_asked(broker, topics, unique, stamp):
    src, out = topics
    produce(broker.bootstrap, src, [b"a", b"b"], key=b"k", headers=[("trace", b"t1")])
    app = App(broker.bootstrap, unique("g"), "at-least-once", message_ids=stamp)

    @app.processor(source=src, sink=out)
    def same(msg):
        return msg.value  # one bytes value: the fast path

    run = Running(app)
    outs = read_topic(broker.bootstrap, out, 2)
    assert run.stop() is None
    assert [(m.key(), m.value()) for m in outs] == [(b"k", b"a"), (b"k", b"b")]
    expected = [{"message-id": f"{src}/0/{i}/0".encode()} for i in range(2)] if stamp else [{}, {}]
    assert [headers_of(m) for m in outs] == expected


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_several_processors_share_one_app(broker, unique, guarantee):
    orders, refunds, receipts, audit = (unique(n) for n in ("orders", "refunds", "receipts", "audit"))
    for t in (orders, refunds, receipts, audit):
        create_topic(broker.bootstrap, t, 1)
    produce(broker.bootstrap, orders, [b"o1", b"o2"])
    produce(broker.bootstrap, refunds, [b"r1"])
    group = unique("g")
    app = App(broker.bootstrap, group, guarantee, instance_id="w0")

    @app.processor(source=orders, sink=receipts)
    def receipt(msg):
        return b"receipt:" + msg.value

    @app.processor(source=[orders, refunds], sink=audit)
    def log(msg):
        return [msg.topic.encode() + b":" + msg.value]

    run = Running(app)
    got_receipts = read_topic(broker.bootstrap, receipts, 2)
    got_audit = read_topic(broker.bootstrap, audit, 3)
    wait_until(lambda: committed(broker.bootstrap, group, orders) == [2], 30, "orders committed")
    wait_until(lambda: committed(broker.bootstrap, group, refunds) == [1], 30, "refunds committed")
    assert run.stop() is None
    assert [m.value() for m in got_receipts] == [b"receipt:o1", b"receipt:o2"]
    assert sorted(m.value() for m in got_audit) == sorted(
        [f"{orders}:o1".encode(), f"{orders}:o2".encode(), f"{refunds}:r1".encode()]
    )
    assert app.metrics.processed.labels("receipt")._value.get() == 2
    assert app.metrics.processed.labels("log")._value.get() == 3


# -- dedup by message id --------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_dedup_skips_a_message_id_seen_before_even_across_restarts(broker, topics, unique, tmp_path, store):
    src, out = topics
    sender = GuaranteedProducer(broker.bootstrap, "at-least-once")
    for mid in ["order-1", "order-2", "order-1", "order-3", "order-2"]:  # a producer that sent twice
        sender.send(src, mid.encode(), message_id=mid)
    sender.flush()
    group = unique("g")

    def build(dedup):
        app = App(broker.bootstrap, group, "at-least-once", commit_interval_ms=50)

        @app.processor(source=src, sink=out, dedup=dedup)
        def ship(msg):
            return msg.value

        return app

    dedup = MemoryDedupStore() if store == "memory" else SqliteDedupStore(tmp_path / "dedup.db")
    app = build(dedup)
    run = Running(app)
    outs = read_topic(broker.bootstrap, out, 3)
    assert run.stop() is None
    assert [m.value() for m in outs] == [b"order-1", b"order-2", b"order-3"]
    assert app.metrics.duplicates.labels("ship")._value.get() == 2
    if store == "sqlite":
        # A new process would find the ids in the file: the same input replayed is skipped entirely.
        again = SqliteDedupStore(tmp_path / "dedup.db")
        assert again.seen(["order-1", "order-2", "order-3", "order-4"]) == {"order-1", "order-2", "order-3"}


def test_dedup_catches_a_repeat_in_a_later_poll_before_the_commit(broker, topics, unique):
    # The repeat arrives in a second poll, while the first one's mark is still waiting for the commit.
    src, out = topics
    sender = GuaranteedProducer(broker.bootstrap, "at-least-once")
    sender.send(src, b"order-1", message_id="order-1")
    sender.flush()
    app = App(broker.bootstrap, unique("g"), "at-least-once", commit_interval_ms=60_000)

    @app.processor(source=src, sink=out, dedup=MemoryDedupStore())
    def ship(msg):
        return msg.value

    run = Running(app)
    read_topic(broker.bootstrap, out, 1)
    sender.send(src, b"order-1", message_id="order-1")
    sender.flush()
    wait_until(lambda: app.metrics.duplicates.labels("ship")._value.get() == 1, 10, "the repeat skipped")
    assert run.stop() is None
    assert [m.value() for m in read_topic(broker.bootstrap, out, 1)] == [b"order-1"]


def test_exactly_once_without_a_sink_commits_positions_in_transactions(broker, topics, unique):
    src, _out = topics
    produce(broker.bootstrap, src, [b"1", b"2", b"3"])
    group = unique("g")
    app = App(broker.bootstrap, group, "exactly-once", instance_id="w0")
    seen: list[bytes] = []

    @app.processor(source=src)
    def observe(msg):
        seen.append(msg.value)

    run = Running(app)
    wait_until(lambda: committed(broker.bootstrap, group, src) == [3], 30, "positions committed")
    assert run.stop() is None
    assert seen == [b"1", b"2", b"3"]
    assert app.metrics.transactions.labels("kafka", "committed")._value.get() >= 1


# -- metrics ---------------------------------------------------------------------------------------


def test_on_transaction_reports_each_outcome_and_outputs_carry_the_open_ordinal(broker, topics, unique):
    """Exactly-once into Kafka: every output is written inside the transaction ``app.transaction`` names,
    and ``on_transaction`` reports each ending once, in order; an observer that raises changes nothing."""
    src, out = topics
    produce(broker.bootstrap, src, [b"1", b"2", b"3"])
    ended: list[tuple[int, str]] = []

    def observe(n: int, outcome: str) -> None:
        ended.append((n, outcome))
        raise RuntimeError("an observer's bug")

    app = App(broker.bootstrap, unique("g"), "exactly-once", instance_id="w0", on_transaction=observe)

    @app.processor(source=src, sink=out)
    def tag(msg):
        assert app.transaction is not None
        return Output(msg.value, headers=[("txn", str(app.transaction))])

    run = Running(app)
    got = read_topic(broker.bootstrap, out, 3)
    produce(broker.bootstrap, src, [b"4"])
    got += read_topic(broker.bootstrap, out, 4)[3:]
    assert run.stop() is None
    assert app.transaction is None
    ordinals = [n for n, _o in ended]
    assert ordinals == list(range(1, len(ordinals) + 1)), ended
    outcomes = dict(ended)
    assert sorted(m.value() for m in got) == [b"1", b"2", b"3", b"4"]
    for m in got:
        assert outcomes[int(headers_of(m)["txn"])] == "committed", (m.value(), ended)
    assert len({headers_of(m)["txn"] for m in got}) >= 2  # the fourth record came in a later one


def test_metrics_are_served_with_prometheus_names(broker, topics, unique):
    src, out = topics
    produce(broker.bootstrap, src, [b"1", b"2", b"3"])
    app = App(broker.bootstrap, unique("g"), "exactly-once", instance_id="w0", metrics_port=0)

    @app.processor(source=src, sink=out)
    def same(msg):
        return msg.value

    run = Running(app)
    read_topic(broker.bootstrap, out, 3)
    port = wait_until(lambda: app.bound_metrics_port, 10, "the metrics port")

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    def value(text: str, name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else -1.0

    committed_txn = 'odradek_stream_transactions_total{kind="kafka",outcome="committed"}'

    def scraped_after_a_commit() -> str | None:
        text = scrape()
        return text if value(text, committed_txn) >= 1 else None

    text = wait_until(scraped_after_a_commit, 10, "a committed transaction in the metrics")
    lag = f'odradek_stream_consumer_lag{{partition="0",topic="{src}"}}'

    def scraped_with_lag() -> str | None:
        text = scrape()
        return text if lag in text else None

    lagged = wait_until(scraped_with_lag, 10, "a consumer lag sample")
    assert run.stop() is None
    assert value(lagged, lag) == 0
    assert value(text, f'odradek_stream_records_consumed_total{{topic="{src}"}}') == 3
    assert value(text, 'odradek_stream_records_processed_total{processor="same"}') == 3
    assert value(text, f'odradek_stream_records_produced_total{{topic="{out}"}}') == 3
    assert "odradek_stream_commit_latency_seconds_bucket" in text
    assert "odradek_stream_batch_processing_seconds_count" in text


# -- start-up errors ---------------------------------------------------------------------------------


def test_unreachable_broker_is_one_line_and_exit_status_2(tmp_path):
    port = free_port()
    script = (
        "from odradek.stream import App\n"
        f"app = App('127.0.0.1:{port}', 'g', startup_timeout_s=2)\n"
        "app.processor(source='in', sink='out')(lambda m: m.value)\n"
        "app.run()\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 30
    lines = [ln for ln in proc.stderr.splitlines() if "odradek.stream" in ln]
    assert len(lines) == 1, proc.stderr
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_broker_that_refuses_the_transactions_the_guarantee_needs(broker, unique):
    # A broker configured with transaction.max.timeout.ms below the library's transaction timeout
    # refuses InitProducerId (INVALID_TRANSACTION_TIMEOUT): exactly-once cannot start, and says so.
    src = unique("in")
    app = App(
        broker.bootstrap,
        unique("g"),
        "exactly-once",
        instance_id="w0",
        producer_config={"transaction.timeout.ms": 900_000_000},
    )

    @app.processor(source=src, sink=unique("out"))
    def same(msg):
        return msg.value

    with pytest.raises(StartupError, match="needs transactions") as e:
        app.run(exit_on_error=False, install_signal_handlers=False)
    assert "\n" not in str(e.value)


# -- lifecycle ---------------------------------------------------------------------------------------

WORKER = """
import sys
from odradek.stream import App
bootstrap, group, src, out, guarantee = sys.argv[1:6]
app = App(bootstrap, group, guarantee, instance_id="w0", commit_interval_ms=60_000)
seen = 0
@app.processor(source=src, sink=out)
def same(msg):
    global seen
    seen += 1
    if seen == 50:
        print("half", flush=True)
    return msg.value
app.run()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_sigterm_finishes_commits_and_leaves_within_a_bounded_time(broker, topics, unique, guarantee):
    src, out = topics
    produce(broker.bootstrap, src, [b"%d" % i for i in range(100)])
    group = unique("g")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, broker.bootstrap, group, src, out, guarantee],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert proc.stdout.readline().strip() == "half"
        wait_until(
            lambda: (
                len(read_topic(broker.bootstrap, out, 100, timeout=2)) == 100 or guarantee == "exactly-once"
            ),
            30,
            "outputs",
        )
        started = time.monotonic()
        proc.terminate()
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in rest
    assert time.monotonic() - started < 15
    # The commit interval is a minute: only the shutdown can have committed the positions.
    assert committed(broker.bootstrap, group, src) == [100]
    assert len(read_topic(broker.bootstrap, out, 100)) == 100
