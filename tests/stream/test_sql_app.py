"""odradek.stream into SQL databases (SQLite, PostgreSQL, MariaDB) from both brokers.

Exactly-once into SQL keeps the consumer positions in the database, committed in the same transaction as
the rows; on assignment the App seeks to them, whatever Kafka's committed offsets say. At-least-once
writes the rows (upserted by key) before it commits the positions to Kafka.
"""

from __future__ import annotations

import sqlalchemy as sa
from streamkit import Running, produce, read_topic

from odradek.stream import App, ErrorPolicy
from odradek.stream.dedup import SqlDedupStore
from odradek.stream.sql import SqlOffsetStore, SqlSink
from support.kit import create_topic, wait_until


def count_rows(engine: sa.Engine, table: str) -> int:
    """Rows in ``table`` (0 while the App has not created it yet)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table):
            return 0
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT seq, src_offset FROM {table}")))


def ledger_sink(url: str, table: str = "ledger") -> SqlSink:
    return SqlSink(
        url,
        table,
        key=["seq"],
        on_conflict="nothing",
        columns=[
            sa.Column("seq", sa.String(32), primary_key=True),
            sa.Column("src_offset", sa.BigInteger, nullable=False),
        ],
    )


def test_exactly_once_into_sql_commits_positions_with_the_rows_and_resumes_from_them(broker, sql_url, unique):
    src = unique("in")
    create_topic(broker.bootstrap, src, 2)
    produce(broker.bootstrap, src, [b"%04d" % i for i in range(200)])
    group = unique("g")

    def build():
        sink = ledger_sink(sql_url)
        # Unnamed (no static membership), so that the stopped App leaves the group and the test can
        # commit offsets for it.
        app = App(broker.bootstrap, group, "exactly-once", commit_interval_ms=50)

        @app.processor(source=src, sink=sink)
        def record(msg):
            return {"seq": msg.value.decode(), "src_offset": msg.offset}

        return app, sink

    app, sink = build()
    run = Running(app)
    wait_until(lambda: count_rows(sink.engine, "ledger") == 200, 60, "200 rows")
    assert run.stop() is None
    store = SqlOffsetStore(sink.engine)
    stored = store.read(group)
    with sink.engine.connect() as conn:
        per_partition = conn.execute(sa.text("SELECT src_offset FROM ledger ORDER BY src_offset")).all()
    # -1: nothing committed yet for a partition (the producer's sticky partitioner may leave one empty)
    assert sum(max(offset, 0) for offset, _epoch in stored.values()) == 200, (stored, per_partition[-5:])
    assert {tp[0] for tp in stored} == {src}
    # Kafka's committed offsets are only a copy for lag tools; set them back to 0 to prove that the
    # App resumes from the database's positions, not from Kafka's.
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "log_level": 0})
    c.commit(offsets=[TopicPartition(src, p, 0) for p in range(2)], asynchronous=False)
    c.close()
    produce(broker.bootstrap, src, [b"%04d" % i for i in range(200, 250)])
    app, sink = build()
    seen: list[int] = []
    inner = app._processors[0].fn
    app._processors[0].fn = lambda m: (seen.append(m.offset), inner(m))[1]
    run = Running(app)
    wait_until(lambda: count_rows(sink.engine, "ledger") == 250, 60, "250 rows")
    assert run.stop() is None
    assert len(seen) == 50, f"processed {len(seen)} records after the restart: it did not resume from SQL"
    got = rows(sink.engine, "ledger")
    assert [seq for seq, _ in got] == [f"{i:04d}" for i in range(250)]
    epochs = [epoch for _offset, epoch in store.read(group).values()]
    assert all(e >= 2 for e in epochs)  # each start claimed the partitions anew
    sink.close()


def test_exactly_once_into_sql_writes_nothing_when_the_batch_fails(broker, sql_url, unique):
    src = unique("in")
    create_topic(broker.bootstrap, src, 1)
    produce(broker.bootstrap, src, [b"0001", b"0002", b"boom", b"0004"])
    sink = ledger_sink(sql_url)
    app = App(
        broker.bootstrap,
        unique("g"),
        "exactly-once",
        instance_id="w0",
        commit_interval_ms=60_000,
        errors=ErrorPolicy(retries=0, on_failure="stop"),
    )

    @app.processor(source=src, sink=sink)
    def record(msg):
        if msg.value == b"boom":
            raise ValueError("boom")
        return {"seq": msg.value.decode(), "src_offset": msg.offset}

    import pytest

    from odradek.stream import ProcessingError

    with pytest.raises(ProcessingError):
        app.run(exit_on_error=False, install_signal_handlers=False)
    # Nothing of the batch reached the table: rows and positions go together or not at all.
    assert count_rows(sink.engine, "ledger") == 0
    assert SqlOffsetStore(sink.engine).read(app.group_id)[(src, 0)][0] == -1
    sink.close()


def test_at_least_once_into_sql_upserts_and_marks_dedup_in_the_same_transaction(broker, sql_url, unique):
    src = unique("in")
    create_topic(broker.bootstrap, src, 1)
    # The same order twice (a producer's retry without idempotence), then an update of it.
    produce(broker.bootstrap, src, [b"o1:new", b"o1:new", b"o2:new", b"o1:paid"])
    sink = SqlSink(
        sql_url,
        "orders",
        key=["order_id"],
        columns=[
            sa.Column("order_id", sa.String(32), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
        ],
    )
    dedup = SqlDedupStore(sink.engine, retention_s=3600)
    app = App(broker.bootstrap, unique("g"), "at-least-once", commit_interval_ms=50)

    @app.processor(source=src, sink=sink, dedup=dedup, dedup_key=lambda m: m.value.decode())
    def upsert(msg):
        order, state = msg.value.decode().split(":")
        return {"order_id": order, "state": state}

    run = Running(app)

    def table():
        with sink.engine.connect() as conn:
            if not sa.inspect(conn).has_table("orders"):
                return []
            return sorted(tuple(r) for r in conn.execute(sa.text("SELECT order_id, state FROM orders")))

    wait_until(lambda: table() == [("o1", "paid"), ("o2", "new")], 30, lambda: f"orders {table()}")
    wait_until(lambda: app.metrics.commits.labels("ok")._value.get() >= 1, 10, "a commit")
    assert run.stop() is None
    assert app.metrics.duplicates.labels("upsert")._value.get() == 1
    assert dedup.seen(["o1:new", "o2:new", "o1:paid", "o3:new"]) == {"o1:new", "o2:new", "o1:paid"}
    sink.close()


def test_dead_letters_under_exactly_once_into_sql(broker, unique, tmp_path):
    src, dlq = unique("in"), unique("dlq")
    create_topic(broker.bootstrap, src, 1)
    create_topic(broker.bootstrap, dlq, 1)
    produce(broker.bootstrap, src, [b"0001", b"bad", b"0003"])
    sink = ledger_sink(f"sqlite:///{tmp_path / 'l.db'}")
    app = App(
        broker.bootstrap,
        unique("g"),
        "exactly-once",
        instance_id="w0",
        errors=ErrorPolicy(retries=0, on_failure="dead-letter", dead_letter_topic=dlq),
    )

    @app.processor(source=src, sink=sink)
    def record(msg):
        return {"seq": str(int(msg.value)), "src_offset": msg.offset}

    run = Running(app)
    wait_until(lambda: count_rows(sink.engine, "ledger") == 2, 30, "2 rows")
    letters = read_topic(broker.bootstrap, dlq, 1)
    assert run.stop() is None
    assert [m.value() for m in letters] == [b"bad"]
    assert SqlOffsetStore(sink.engine).read(app.group_id)[(src, 0)][0] == 3
    sink.close()


def test_unreachable_database_at_start_is_one_line(broker, unique):
    import pytest

    from odradek.stream import StartupError
    from support.net import free_port

    port = free_port()
    sink = ledger_sink(f"postgresql+psycopg://odradek@127.0.0.1:{port}/nowhere")
    app = App(broker.bootstrap, unique("g"), "exactly-once", instance_id="w0")
    app.processor(source=unique("in"), sink=sink)(lambda m: {"seq": "1", "src_offset": 0})
    with pytest.raises(StartupError) as e:
        app.run(exit_on_error=False, install_signal_handlers=False)
    assert f"127.0.0.1:{port}" in str(e.value) and "\n" not in str(e.value)
