"""odradek.stream.dedup stores: the memory store, the SQL store on SQLite / PostgreSQL / MariaDB
(``sql_url``: a fresh database each) and the Redis store on a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from odradek.stream.dedup import (
    MemoryDedupStore,
    PostgresDedupStore,
    RedisDedupStore,
    SqlDedupStore,
    SqliteDedupStore,
    StoreUnavailable,
)
from odradek.stream.sql import READ_ONLY, SqlSink, make_engine
from support.net import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_rows(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()


# --------------------------------------------------------------------------------------------------
# Memory


def test_memory_seen_and_mark() -> None:
    store = MemoryDedupStore()
    assert store.seen(["a", "b"]) == set()
    store.mark(["a", "c", "a"])
    assert store.seen(["a", "b", "c", "A"]) == {"a", "c"}


def test_memory_marks_expire_after_the_retention() -> None:
    clock = FakeClock()
    store = MemoryDedupStore(retention_s=60, clock=clock)
    store.mark(["x"])
    clock.now += 30
    store.mark(["x", "y"])  # a live mark keeps its time
    clock.now += 29.9
    assert store.seen(["x", "y"]) == {"x", "y"}
    clock.now += 0.1
    assert store.seen(["x", "y"]) == {"y"}
    assert len(store) == 1  # expired marks are dropped, not only hidden
    store.mark(["x"])
    assert store.seen(["x"]) == {"x"}


def test_memory_store_never_grows_past_its_bound() -> None:
    clock = FakeClock()
    store = MemoryDedupStore(max_entries=100, clock=clock)
    for i in range(25):
        clock.now += 1
        store.mark([f"id-{i}-{j}" for j in range(10)])
        assert len(store) <= 100
    assert len(store) == 100
    assert store.evicted == 150
    assert store.seen(["id-0-0", "id-14-9", "id-15-0", "id-24-9"]) == {"id-15-0", "id-24-9"}


def test_memory_store_refuses_a_transaction() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(ValueError, match="cannot join a database transaction"):
        MemoryDedupStore().mark(["a"], conn=conn)


def test_ids_are_checked() -> None:
    store = MemoryDedupStore()
    store.mark(["x" * 255])
    with pytest.raises(ValueError, match="256 characters long; at most 255"):
        store.mark(["x" * 256])
    with pytest.raises(TypeError):
        store.mark("abc")
    with pytest.raises(TypeError):
        store.seen([42])  # type: ignore[list-item]


# --------------------------------------------------------------------------------------------------
# SQL


@pytest.fixture
def sql_store(sql_url: str) -> Iterator[SqlDedupStore]:
    store = SqlDedupStore(sql_url)
    yield store
    store.close()


def test_sql_seen_and_mark_compare_ids_exactly(sql_store: SqlDedupStore) -> None:
    assert sql_store.seen(["Order-1"]) == set()  # no table yet: nothing seen, nothing created
    sql_store.mark(["Order-1", "ünïcödé-✓", "x" * 255])
    assert sql_store.seen(["Order-1", "order-1", "Order-1 ", "ünïcödé-✓", "x" * 255, "other"]) == {
        "Order-1",
        "ünïcödé-✓",
        "x" * 255,
    }
    with pytest.raises(ValueError, match="at most 255"):
        sql_store.mark(["y" * 256])


def test_sql_many_ids_go_in_bounded_statements(sql_store: SqlDedupStore) -> None:
    ids = [f"m-{i}" for i in range(1234)]
    sql_store.mark(ids[::2])
    assert sql_store.seen(ids) == set(ids[::2])


def test_sql_marks_expire_and_are_purged_in_bounded_batches(sql_url: str) -> None:
    store = SqlDedupStore(sql_url, retention_s=1.0, purge_interval_s=0, purge_rows=2)
    try:
        store.mark(["a", "b", "c", "d", "e"])
        assert store.seen(["a", "e"]) == {"a", "e"}
        time.sleep(1.3)
        assert store.seen(["a", "e"]) == set()
        store.mark(["a"])  # re-marked after expiry: seen again; and 2 expired rows purged on the way
        assert store.seen(["a", "b"]) == {"a"}
        assert count_rows(store.engine, "odradek_dedup") == 3
        assert store.purge() == 2
        assert store.purge() == 0  # "a" is live
        assert count_rows(store.engine, "odradek_dedup") == 1
    finally:
        store.close()


def test_sql_purge_waits_for_its_interval(sql_url: str) -> None:
    store = SqlDedupStore(sql_url, retention_s=0.5, purge_interval_s=3600, purge_rows=100)
    try:
        store.mark(["a", "b"])  # the first mark purges (nothing), then not for an hour
        time.sleep(0.7)
        store.mark(["c"])
        assert count_rows(store.engine, "odradek_dedup") == 3
        assert store.seen(["a", "b", "c"]) == {"c"}
    finally:
        store.close()


def test_sql_marks_join_the_callers_transaction(sql_url: str) -> None:
    engine = make_engine(sql_url)
    store = SqlDedupStore(engine)
    sink = SqlSink(
        engine,
        "results",
        key=["id"],
        columns=[sa.Column("id", sa.String(50), primary_key=True), sa.Column("v", sa.Integer)],
    )
    try:
        sink.check()
        store.check()
        t0 = time.monotonic()
        with engine.connect() as conn:
            tx = conn.begin()
            # The App's order: look (its own connection, while this transaction is open), write, mark.
            assert store.seen(["m1", "m2"]) == set()
            sink.write(conn, [{"id": "m1", "v": 1}, {"id": "m2", "v": 2}])
            store.mark(["m1", "m2"], conn=conn)
            tx.rollback()
        assert time.monotonic() - t0 < 10  # no wait on our own lock (SQLite)
        assert store.seen(["m1", "m2"]) == set()
        assert count_rows(engine, "results") == 0
        with engine.begin() as conn:
            assert store.seen(["m1"]) == set()
            sink.write(conn, [{"id": "m1", "v": 1}])
            store.mark(["m1"], conn=conn)
        assert store.seen(["m1", "m2"]) == {"m1"}
    finally:
        engine.dispose()


def test_sql_marks_in_a_rolled_back_transaction_on_a_fresh_database_are_not_kept(sql_url: str) -> None:
    """The first mark creates the table; inside a transaction that rolls back on SQLite it goes too,
    and the store notices rather than assuming the table is there."""
    engine = make_engine(sql_url)
    store = SqlDedupStore(engine)
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            store.mark(["a"], conn=conn)
            tx.rollback()
        assert store.seen(["a"]) == set()
        store.mark(["b"])
        assert store.seen(["a", "b"]) == {"b"}
    finally:
        engine.dispose()


def test_sql_store_survives_reopening(sql_url: str) -> None:
    first = SqlDedupStore(sql_url)
    first.mark(["kept-1", "kept-2"])
    first.close()
    again = SqlDedupStore(sql_url)
    try:
        assert again.seen(["kept-1", "kept-2", "never"]) == {"kept-1", "kept-2"}
    finally:
        again.close()


def test_sqlite_and_postgres_factories(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "dedup.db"
    store = SqliteDedupStore(path, retention_s=60)
    store.mark(["s"])
    store.close()
    assert path.exists()
    reopened = SqliteDedupStore(str(path))
    assert reopened.seen(["s"]) == {"s"} and reopened.retention_s == 7 * 86400
    reopened.close()
    bare = sa.make_url(postgres_url).set(drivername="postgresql")  # the psycopg driver is chosen
    pg = PostgresDedupStore(bare, table=f"dedup_{int(time.time() * 1e6)}")
    try:
        pg.mark(["p"])
        assert pg.seen(["p", "q"]) == {"p"}
    finally:
        pg.close()
    with pytest.raises(ValueError, match="postgresql:// URL"):
        PostgresDedupStore("sqlite:///x.db")


def test_sql_concurrent_marks_of_the_same_ids_do_not_fail(sql_url: str) -> None:
    SqlDedupStore(sql_url).check()  # the table, before the race
    stores = [SqlDedupStore(sql_url) for _ in range(4)]
    start = threading.Barrier(4)
    ids = [f"r-{i}" for i in range(50)]

    def mark(store: SqlDedupStore) -> None:
        start.wait()
        for i in range(0, 50, 5):
            store.mark(ids[i : i + 10])

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(mark, stores))
        assert stores[0].seen(ids) == set(ids)
    finally:
        for s in stores:
            s.close()


def test_sql_unreachable_is_one_line(sql_url: str, tmp_path: Path) -> None:
    url = sa.make_url(sql_url)
    if url.get_backend_name() == "sqlite":
        bad = f"sqlite:///{tmp_path / 'missing-dir' / 'd.db'}"
    else:
        bad = url.set(port=free_port()).render_as_string(hide_password=False)
    store = SqlDedupStore(bad)  # builds without connecting
    with pytest.raises(StoreUnavailable) as e:
        store.check()
    store.close()
    text = str(e.value)
    assert "\n" not in text and "dedup store" in text and "unreachable" in text
    assert "odradek_dedup" in text


# --------------------------------------------------------------------------------------------------
# Redis


def test_redis_seen_and_mark(redis_url: str, unique) -> None:
    store = RedisDedupStore(redis_url, prefix=unique("dedup") + ":")
    try:
        assert store.seen(["a", "b"]) == set()
        store.mark(["a", "A", "a "])
        assert store.seen(["a", "A", "a ", "b"]) == {"a", "A", "a "}
        many = [f"m-{i}" for i in range(1200)]
        store.mark(many)
        assert store.seen(many) == set(many)
        with pytest.raises(ValueError, match="cannot join a database transaction"):
            store.mark(["c"], conn=sa.create_engine("sqlite://").connect())
    finally:
        store.close()


def test_redis_marks_expire(redis_url: str, unique) -> None:
    prefix = unique("dedup") + ":"
    store = RedisDedupStore(redis_url, retention_s=1.0, prefix=prefix)
    try:
        store.mark(["x"])
        assert store.seen(["x"]) == {"x"}
        ttl_ms = store.client.pttl(prefix + "x")
        assert 0 < ttl_ms <= 1000
        time.sleep(1.3)
        assert store.seen(["x"]) == set()
        assert store.client.exists(prefix + "x") == 0
    finally:
        store.close()


def test_redis_store_survives_reopening(redis_url: str, unique) -> None:
    prefix = unique("dedup") + ":"
    first = RedisDedupStore(redis_url, prefix=prefix)
    first.mark(["kept"])
    first.close()
    again = RedisDedupStore(redis_url, prefix=prefix)
    try:
        assert again.seen(["kept", "never"]) == {"kept"}
        other = RedisDedupStore(redis_url, prefix=unique("dedup") + ":")
        assert other.seen(["kept"]) == set()  # prefixes keep stores apart
        other.close()
    finally:
        again.close()


def test_redis_unreachable_is_one_line() -> None:
    store = RedisDedupStore(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as e:
        store.check()
    store.close()
    assert "\n" not in str(e.value) and "unreachable" in str(e.value)
