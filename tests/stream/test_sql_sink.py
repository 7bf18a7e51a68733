"""odradek.stream.sql on real databases: SqlSink upserts and the exactly-once SqlOffsetStore.

Every test runs on SQLite, PostgreSQL and MariaDB (the ``sql_url`` fixture: a fresh database each).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odradek.stream.sql import READ_ONLY, Fenced, SinkUnavailable, SqlOffsetStore, SqlSink, make_engine
from support.net import free_port


@pytest.fixture
def engine(sql_url: str) -> Iterator[sa.Engine]:
    e = make_engine(sql_url)
    yield e
    e.dispose()


def people_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50)),
        sa.Column("city", sa.String(50)),
    ]


def rows_of(engine: sa.Engine, table: str, order_by: str = "id") -> list[tuple[Any, ...]]:
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c[order_by]))]


# --------------------------------------------------------------------------------------------------
# SqlSink


def test_update_overwrites_the_row_with_the_same_key(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns())
    assert sink.write_batch([{"id": 1, "name": "ada", "city": "london"}, {"id": 2, "name": "bob"}]) == 2
    sink.write_batch([{"id": 1, "name": "ada lovelace", "city": "paris"}])
    assert rows_of(engine, "people") == [(1, "ada lovelace", "paris"), (2, "bob", None)]
    # Columns a row does not name are left as they were.
    sink.write_batch([{"id": 1, "city": "rome"}])
    assert rows_of(engine, "people") == [(1, "ada lovelace", "rome"), (2, "bob", None)]


def test_nothing_keeps_the_existing_row(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], on_conflict="nothing", columns=people_columns())
    sink.write_batch([{"id": 1, "name": "first", "city": "a"}])
    sink.write_batch([{"id": 1, "name": "second", "city": "b"}, {"id": 3, "name": "new", "city": "c"}])
    assert rows_of(engine, "people") == [(1, "first", "a"), (3, "new", "c")]


def test_rows_with_one_key_in_one_call_fold_as_if_written_in_turn(engine: sa.Engine) -> None:
    update = SqlSink(engine, "people", key=["id"], columns=people_columns())
    update.write_batch([{"id": 1, "name": "a", "city": "x"}, {"id": 1, "name": "b"}, {"id": 1, "name": "c"}])
    assert rows_of(engine, "people") == [(1, "c", "x")]
    keep = SqlSink(engine, "people", key=["id"], on_conflict="nothing")
    keep.write_batch([{"id": 2, "name": "first"}, {"id": 2, "name": "second"}])
    assert rows_of(engine, "people") == [(1, "c", "x"), (2, "first", None)]


def test_rows_go_in_statements_of_batch_rows(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns(), batch_rows=500)
    sink.check()  # the table exists before we count statements
    statements: list[int] = []

    def count(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if isinstance(clause, sa.Insert):
            statements.append(len(multiparams))

    sa.event.listen(engine, "before_execute", count)
    try:
        n = sink.write_batch([{"id": i, "name": f"n{i}", "city": "c"} for i in range(1234)])
    finally:
        sa.event.remove(engine, "before_execute", count)
    assert n == 1234
    assert statements == [500, 500, 234]
    assert len(rows_of(engine, "people")) == 1234


def test_a_row_without_a_key_column_is_refused(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns())
    with pytest.raises(ValueError, match=r"no value for key column\(s\) id"):
        sink.write_batch([{"id": 1, "name": "ok"}, {"name": "no id"}])
    assert rows_of(engine, "people") == []


def test_a_column_the_table_lacks_is_refused(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns())
    with pytest.raises(ValueError, match=r"column\(s\) colour are not in the table"):
        sink.write_batch([{"id": 1, "colour": "red"}])


def test_a_key_that_is_not_unique_is_refused(engine: sa.Engine) -> None:
    md = sa.MetaData()
    sa.Table(
        "events",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("what", sa.String(20)),
    )
    md.create_all(engine)
    sink = SqlSink(engine, "events", key=["user_id"])
    with pytest.raises(
        ValueError, match=r"key \(user_id\) is not the primary key or a unique constraint of table 'events'"
    ):
        sink.check()
    with pytest.raises(ValueError, match=r"key column\(s\) nope not in table 'events'"):
        SqlSink(engine, "events", key=["nope"]).write_batch([{"nope": 1}])


def test_a_missing_table_without_columns_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"table 'absent' does not exist in .*columns="):
        SqlSink(engine, "absent", key=["id"]).check()


def test_an_existing_table_is_reflected_with_its_unique_constraint(engine: sa.Engine) -> None:
    md = sa.MetaData()
    sa.Table(
        "accounts",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(20), nullable=False),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("balance", sa.Integer),
        sa.UniqueConstraint("tenant", "email"),
    )
    md.create_all(engine)
    sink = SqlSink(engine, "accounts", key=["email", "tenant"])
    sink.write_batch([{"id": 1, "tenant": "t", "email": "a@x", "balance": 5}])
    sink.write_batch([{"id": 1, "tenant": "t", "email": "a@x", "balance": 7}])
    assert rows_of(engine, "accounts") == [(1, "t", "a@x", 7)]


def test_write_joins_the_callers_transaction(engine: sa.Engine) -> None:
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns())
    sink.check()
    with engine.connect() as conn:
        tx = conn.begin()
        assert sink.write(conn, [{"id": i, "name": "x"} for i in range(10)]) == 10
        tx.rollback()
    assert rows_of(engine, "people") == []
    with engine.begin() as conn:
        sink.write(conn, [{"id": 7, "name": "kept"}])
    assert rows_of(engine, "people") == [(7, "kept", None)]


def unreachable_url(sql_url: str, tmp_path: Path) -> str:
    url = sa.make_url(sql_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    return url.set(port=free_port()).render_as_string(hide_password=False)


def test_an_unreachable_database_is_one_line(sql_url: str, tmp_path: Path) -> None:
    url = unreachable_url(sql_url, tmp_path)
    sink = SqlSink(url, "people", key=["id"], columns=people_columns())  # builds without connecting
    t0 = time.monotonic()
    with pytest.raises(SinkUnavailable) as e:
        sink.check()
    sink.close()
    text = str(e.value)
    assert "\n" not in text
    assert "'people'" in text and "unreachable" in text
    host = sa.make_url(url).host
    assert (host and f"{host}:" in text) or "no-such-dir" in text
    assert "odradek:odradek@" not in text  # the password is hidden
    assert time.monotonic() - t0 < 20


# --------------------------------------------------------------------------------------------------
# SqlOffsetStore


def test_claim_creates_rows_and_bumps_the_epoch(engine: sa.Engine) -> None:
    store = SqlOffsetStore(engine)
    assert store.claim("g", [("orders", 1), ("orders", 0)]) == {
        ("orders", 0): (-1, 1),
        ("orders", 1): (-1, 1),
    }
    assert store.claim("g", [("orders", 0)]) == {("orders", 0): (-1, 2)}
    assert store.claim("other", [("orders", 0)]) == {("orders", 0): (-1, 1)}
    assert store.read("g") == {("orders", 0): (-1, 2), ("orders", 1): (-1, 1)}


def test_topics_and_groups_are_compared_exactly(engine: sa.Engine) -> None:
    """MySQL/MariaDB's default collations would make these one row each (case, trailing space)."""
    store = SqlOffsetStore(engine)
    parts = [("Orders", 0), ("orders", 0), ("orders ", 0)]
    assert store.claim("g", parts) == {tp: (-1, 1) for tp in parts}
    assert store.claim("G", [("orders", 0)]) == {("orders", 0): (-1, 1)}
    assert sorted(store.read("g")) == sorted(parts)


def test_commit_with_the_current_epoch_moves_the_position(engine: sa.Engine) -> None:
    store = SqlOffsetStore(engine)
    claims = store.claim("g", [("t", 0), ("t", 1)])
    with engine.begin() as conn:
        store.commit(conn, "g", {("t", 0): (10, claims[("t", 0)][1]), ("t", 1): (3, claims[("t", 1)][1])})
    assert store.read("g") == {("t", 0): (10, 1), ("t", 1): (3, 1)}
    # The same position again is not "no row matched" (MySQL counts matched rows, not changed ones).
    with engine.begin() as conn:
        store.commit(conn, "g", {("t", 0): (10, 1)})
    assert store.claim("g", [("t", 0)]) == {("t", 0): (10, 2)}


def test_a_stale_epoch_is_fenced_and_its_results_roll_back(engine: sa.Engine) -> None:
    store = SqlOffsetStore(engine)
    sink = SqlSink(engine, "people", key=["id"], columns=people_columns())
    sink.check()
    old = store.claim("g", [("t", 0), ("t", 1)])
    store.claim("g", [("t", 1)])  # a new owner took partition 1
    with pytest.raises(Fenced) as e:
        with engine.begin() as conn:
            # Results before the check (the wrong order) show that the rollback takes them too.
            sink.write(conn, [{"id": 1, "name": "zombie"}])
            store.commit(conn, "g", {("t", 0): (5, old[("t", 0)][1]), ("t", 1): (5, old[("t", 1)][1])})
    assert e.value.partitions == [("t", 1)]
    assert "t/1" in str(e.value)
    assert rows_of(engine, "people") == []
    assert store.read("g") == {("t", 0): (-1, 1), ("t", 1): (-1, 2)}


def test_concurrent_claims_get_distinct_epochs(sql_url: str) -> None:
    SqlOffsetStore(make_engine(sql_url))  # the table, before the race
    workers = 6
    engines = [make_engine(sql_url) for _ in range(workers)]
    stores = [SqlOffsetStore(e) for e in engines]
    start = threading.Barrier(workers)
    parts = [("t", 0), ("t", 1), ("u", 0)]

    def claim(i: int) -> dict[tuple[str, int], tuple[int, int]]:
        start.wait()
        return stores[i].claim("g", parts)

    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(claim, range(workers)))
    finally:
        for e in engines:
            e.dispose()
    for tp in parts:
        assert sorted(r[tp][1] for r in results) == list(range(1, workers + 1))


def test_fresh_database_tables_are_created_once_by_racing_stores(sql_url: str) -> None:
    engines = [make_engine(sql_url) for _ in range(4)]
    start = threading.Barrier(4)

    def make(e: sa.Engine) -> SqlOffsetStore:
        start.wait()
        return SqlOffsetStore(e)

    try:
        with ThreadPoolExecutor(4) as pool:
            stores = list(pool.map(make, engines))
        assert stores[0].claim("g", [("t", 0)]) == {("t", 0): (-1, 1)}
    finally:
        for e in engines:
            e.dispose()


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # handed to the test
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_zombie_begins_new_owner_claims_zombie_commits(sql_url: str) -> None:
    """The zombie's transaction is open (it has even read the positions) when the new owner claims."""
    zombie_engine, owner_engine = make_engine(sql_url), make_engine(sql_url)
    try:
        zombie, owner = SqlOffsetStore(zombie_engine), SqlOffsetStore(owner_engine)
        sink = SqlSink(zombie_engine, "people", key=["id"], columns=people_columns())
        sink.check()
        epoch = zombie.claim("g", [("t", 0)])[("t", 0)][1]
        conn = zombie_engine.connect()
        tx = conn.begin()
        # On MariaDB this read fixes the transaction's REPEATABLE READ snapshot, before the claim.
        assert conn.execute(sa.select(zombie.table.c.epoch)).scalar_one() == epoch
        claimer, claimed = _in_thread(lambda: owner.claim("g", [("t", 0)]))
        claimer.join(2)
        serialized = claimer.is_alive()  # SQLite: the zombie's BEGIN IMMEDIATE holds the database lock
        assert serialized == (owner_engine.dialect.name == "sqlite")
        fenced = False
        try:
            zombie.commit(conn, "g", {("t", 0): (50, epoch)})
            sink.write(conn, [{"id": 50, "name": "zombie"}])
            tx.commit()
        except Fenced:
            fenced = True
            tx.rollback()
        conn.close()
        claimer.join(30)
        assert not claimer.is_alive()
        result = claimed[0]
        assert not isinstance(result, BaseException), result
        if serialized:
            # The zombie's batch went in whole, first; the new owner resumes after it.
            assert not fenced
            assert result == {("t", 0): (50, epoch + 1)}
            assert rows_of(zombie_engine, "people") == [(50, "zombie", None)]
        else:
            # The claim went first; the zombie's UPDATE saw the new epoch despite its older snapshot.
            assert fenced
            assert result == {("t", 0): (-1, epoch + 1)}
            assert rows_of(zombie_engine, "people") == []
        assert owner.read("g") == {("t", 0): result[("t", 0)]}
    finally:
        zombie_engine.dispose()
        owner_engine.dispose()


def test_zombie_commits_first_new_owner_waits_and_resumes_after_it(sql_url: str) -> None:
    """The zombie's position UPDATE (holding the row) comes before the claim: the claim waits for the
    zombie's transaction and then reads the zombie's position back."""
    zombie_engine, owner_engine = make_engine(sql_url), make_engine(sql_url)
    try:
        zombie, owner = SqlOffsetStore(zombie_engine), SqlOffsetStore(owner_engine)
        sink = SqlSink(zombie_engine, "people", key=["id"], columns=people_columns())
        sink.check()
        epoch = zombie.claim("g", [("t", 0)])[("t", 0)][1]
        with zombie_engine.connect() as conn:
            tx = conn.begin()
            zombie.commit(conn, "g", {("t", 0): (70, epoch)})
            sink.write(conn, [{"id": 70, "name": "zombie"}])
            claimer, claimed = _in_thread(lambda: owner.claim("g", [("t", 0)]))
            claimer.join(1.5)
            assert claimer.is_alive(), "the claim did not wait for the open transaction holding the row"
            tx.commit()
        claimer.join(30)
        assert claimed == [{("t", 0): (70, epoch + 1)}]
        assert rows_of(zombie_engine, "people") == [(70, "zombie", None)]
        with pytest.raises(Fenced):  # and from now on the zombie is fenced
            with zombie_engine.begin() as conn:
                zombie.commit(conn, "g", {("t", 0): (80, epoch)})
    finally:
        zombie_engine.dispose()
        owner_engine.dispose()


def test_owners_contending_never_fail_with_database_is_locked(sql_url: str, tmp_path: Path) -> None:
    """Two processes claim and commit the same partition in turn, as two App instances fighting over
    it would. Each transaction either commits or is Fenced; no lock error, no deadlock, no lost batch."""
    SqlSink(sql_url, "people", key=["id"], columns=people_columns()).check()
    SqlOffsetStore(make_engine(sql_url))
    script = textwrap.dedent(
        """
        import sys
        from odradek.stream.sql import Fenced, SqlOffsetStore, SqlSink, make_engine

        url, worker = sys.argv[1], int(sys.argv[2])
        engine = make_engine(url)
        store = SqlOffsetStore(engine)
        sink = SqlSink(engine, "people", key=["id"])
        committed = fenced = 0
        for i in range(40):
            (offset, epoch), = store.claim("g", [("t", 0)]).values()
            try:
                with engine.begin() as conn:
                    store.commit(conn, "g", {("t", 0): (max(offset, 0) + 1, epoch)})
                    sink.write(conn, [{"id": worker * 1000 + i, "name": str(offset)}])
                committed += 1
            except Fenced:
                fenced += 1
        print(committed, fenced)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, sql_url, str(w)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for w in (1, 2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    committed = sum(int(out.split()[0]) for out, _ in outs)
    assert committed + sum(int(out.split()[1]) for out, _ in outs) == 80
    assert committed >= 1
    engine = make_engine(sql_url)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            t = sa.Table("people", sa.MetaData(), autoload_with=conn)
            assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == committed
        # Each committed batch moved the position by one, so no batch was lost or applied twice.
        assert SqlOffsetStore(engine).read("g")[("t", 0)][0] == committed
    finally:
        engine.dispose()


def test_a_table_name_the_database_would_cut_is_refused(postgres_url):
    with pytest.raises(ValueError, match="longer than postgresql's 63-byte identifiers"):
        SqlSink(postgres_url, "t" * 64, key=["id"], columns=[sa.Column("id", sa.Integer, primary_key=True)])
    SqlSink(
        postgres_url, "t" * 63, key=["id"], columns=[sa.Column("id", sa.Integer, primary_key=True)]
    ).close()
