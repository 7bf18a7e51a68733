"""SQL sinks and the exactly-once offset store, on SQLAlchemy 2 Core (SQLite, PostgreSQL, MySQL/MariaDB).

:class:`SqlSink` upserts rows by a unique key; :class:`SqlOffsetStore` keeps consumer positions in the
same database, so results and positions commit in one transaction (exactly-once into SQL). Statements
are built with each dialect's own insert construct (``ON CONFLICT`` / ``ON DUPLICATE KEY UPDATE``); no
SQL text is written per dialect.

SQLite engines made here (:func:`make_engine`, or any SQLite engine handed to these classes, which is
prepared by :func:`prepare_sqlite`) wait up to 30 s for a lock instead of failing at once, and begin
every transaction with ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two processes never
both hold a read lock and then deadlock upgrading it ("database is locked" without any wait). Pure reads
opt out with the execution option :data:`READ_ONLY` (a plain deferred ``BEGIN``).
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from .errors import StreamError

__all__ = [
    "READ_ONLY",
    "Fenced",
    "Key",
    "SinkUnavailable",
    "SqlOffsetStore",
    "SqlSink",
    "make_engine",
    "prepare_sqlite",
]

#: Execution option: this connection only reads, so on SQLite it begins a deferred transaction
#: (no write lock). ``conn.execution_options(**{READ_ONLY: True})`` before the first statement.
READ_ONLY = "odradek_read_only"

SQLITE_BUSY_TIMEOUT_S = 30.0
KEY_CHARS_MAX = 255  # VARCHAR(255): MySQL/MariaDB can index it (utf8mb4, 3072-byte key limit)
RETRY_ATTEMPTS_MAX = 5  # own-transaction operations retried after a deadlock or serialization failure

# Bare URL schemes mapped to the drivers the extras install ([postgres] psycopg, [mysql] pymysql);
# SQLAlchemy's own defaults (psycopg2, mysqlclient) are not installed by them.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

_prepared: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
_prepared_lock = threading.Lock()


class SinkUnavailable(StreamError):
    """The sink's database cannot be reached; ``str()`` is one line: what, where, why."""


class Fenced(StreamError):
    """Another owner claimed these partitions (their epoch moved on): roll back the transaction."""

    def __init__(self, group: str, partitions: Sequence[tuple[str, int]]) -> None:
        self.group = group
        self.partitions = list(partitions)
        names = ", ".join(f"{t}/{p}" for t, p in self.partitions)
        super().__init__(
            f"group {group!r}: partitions {names} were claimed by another owner (epoch moved on); "
            "roll back and stop processing them"
        )


# --------------------------------------------------------------------------------------------------
# Engines


def make_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """``sqlalchemy.create_engine`` with the settings these stores rely on: SQLite gets a busy timeout
    and ``BEGIN IMMEDIATE`` transactions (:func:`prepare_sqlite`), server databases ``pool_pre_ping``.
    A bare ``postgresql://`` / ``mysql://`` / ``mariadb://`` URL uses psycopg / pymysql."""
    u = sa.make_url(url)
    if u.drivername in _DEFAULT_DRIVERS:
        u = u.set(drivername=_DEFAULT_DRIVERS[u.drivername])
    if u.get_backend_name() == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
        return prepare_sqlite(sa.create_engine(u, connect_args=connect_args, **kwargs))
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(u, **kwargs)


def prepare_sqlite(engine: sa.Engine) -> sa.Engine:
    """Make a SQLite engine begin ``IMMEDIATE`` transactions (``READ_ONLY`` connections: deferred) and
    wait for locks. Idempotent; a no-op for other databases. Connections the engine opened before keep
    the driver's behaviour, so prepare an engine before using it."""
    if engine.dialect.name != "sqlite":
        return engine
    with _prepared_lock:
        if engine in _prepared:
            return engine
        _prepared.add(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN (deferred, and only before DML) is switched off; SQLAlchemy's
        # "begin" event below emits ours. The busy timeout also covers engines not made by make_engine.
        dbapi_conn.isolation_level = None
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def engine_of(url_or_engine: str | sa.URL | sa.Engine) -> tuple[sa.Engine, bool]:
    """(engine, whether we created it and so dispose of it)."""
    if isinstance(url_or_engine, sa.Engine):
        return prepare_sqlite(url_or_engine), False
    return make_engine(url_or_engine), True


def describe(engine: sa.Engine) -> str:
    """The engine's URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def is_retryable(exc: BaseException) -> bool:
    """A deadlock, serialization failure or lock timeout: the transaction may simply be run again."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in ("40001", "40P01", "55P03"):  # PostgreSQL
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in (1213, 1205):  # MySQL: deadlock, lock wait timeout
        return True
    return "database is locked" in str(orig)  # SQLite, after its busy timeout


def run_retrying(fn: Any, what: str) -> Any:
    """``fn()`` (one transaction of its own), run again after a retryable failure, a few times."""
    for attempt in range(1, RETRY_ATTEMPTS_MAX + 1):
        try:
            return fn()
        except sa.exc.DBAPIError as e:
            if attempt == RETRY_ATTEMPTS_MAX or not is_retryable(e):
                raise
            time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError(f"unreachable: {what}")


def ensure_table(bind: sa.Engine | sa.Connection, table: sa.Table) -> None:
    """Create ``table`` and its indexes unless they exist (on a connection: inside its transaction). Two
    processes may race here: the loser's error is ignored once the table is seen to exist."""
    if isinstance(bind, sa.Connection):
        bind.execute(CreateTable(table, if_not_exists=True))
        for index in table.indexes:
            bind.execute(CreateIndex(index, if_not_exists=True))
        return
    try:
        with bind.begin() as conn:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
    except sa.exc.DBAPIError:
        if not sa.inspect(bind).has_table(table.name, schema=table.schema):
            raise


def check_key(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > KEY_CHARS_MAX:
        raise ValueError(
            f"{what} is {len(value)} characters long; at most {KEY_CHARS_MAX} fit: {value[:40]!r}..."
        )


class Key(sa.types.TypeDecorator[str]):
    """A string key of up to 255 characters, compared exactly on every database.

    VARCHAR(255) on PostgreSQL and SQLite (binary comparisons). On MySQL/MariaDB, VARBINARY(1020)
    holding the UTF-8 bytes: their default collations fold case and ignore trailing spaces, so as
    VARCHAR the ids 'Order-1', 'order-1' and 'order-1 ' would be one key (one would be taken for a
    duplicate of another). 1020 bytes is 255 characters of 4 bytes, well inside InnoDB's 3072-byte
    index key limit, with room for a second key column.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(KEY_CHARS_MAX)

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql_dialect.VARBINARY(KEY_CHARS_MAX * 4))
        return dialect.type_descriptor(sa.String(KEY_CHARS_MAX))

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> Any:
        if value is not None and dialect.name in ("mysql", "mariadb"):
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8")
        return value


def dialect_family(engine_or_conn: sa.Engine | sa.Connection) -> str:
    """ "sqlite", "postgresql" or "mysql" (MariaDB included); anything else is refused."""
    name = engine_or_conn.dialect.name
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name
    raise NotImplementedError(f"odradek.stream supports SQLite, PostgreSQL and MySQL/MariaDB, not {name}")


def insert_if_absent(family: str, table: sa.Table, key: Sequence[str]) -> Any:
    """``INSERT`` that keeps an existing row with the same ``key`` and raises no error for it."""
    if family == "postgresql":
        return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))
    if family == "sqlite":
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))
    # MySQL has no "do nothing": a key column set to itself changes nothing. INSERT IGNORE would also
    # turn other errors (truncated values, NOT NULL, foreign keys) into warnings and lose data silently.
    return mysql_dialect.insert(table).on_duplicate_key_update({key[0]: table.c[key[0]]})


def upsert(family: str, table: sa.Table, key: Sequence[str], update: Sequence[str]) -> Any:
    """``INSERT`` that, when a row with the same ``key`` exists, overwrites its ``update`` columns."""
    if not update:
        return insert_if_absent(family, table, key)
    if family == "postgresql":
        stmt = pg_dialect.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    if family == "sqlite":
        stmt = sqlite_dialect.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    stmt = mysql_dialect.insert(table)
    return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------------------------------
# SqlSink


# Longest identifiers, in bytes: PostgreSQL's NAMEDATALEN - 1; MySQL/MariaDB's 64 characters.
_IDENTIFIER_BYTES_MAX = {"postgresql": 63, "mysql": 64, "mariadb": 64}


class SqlSink:
    """Rows (mappings) upserted by unique key into one table, batched.

    ``table`` by name is reflected when it exists, else built from ``columns`` (and created when
    ``create``); a :class:`sqlalchemy.Table` is used as given (created when missing and ``create``).
    Nothing touches the database before :meth:`check` or the first write, so a sink can be built before
    the database is up. ``key`` must be the table's primary key or one of its unique constraints
    (``ON CONFLICT`` needs that); on MySQL/MariaDB, ``ON DUPLICATE KEY`` fires on any unique key of the
    table, so a table for a sink should have no other unique key.

    ``on_conflict="update"`` overwrites the row's other columns given in the new row; ``"nothing"``
    keeps the existing row. Within one call, rows with the same key are folded into one first, as if
    they had been written one after another (``"update"``: later values win; ``"nothing"``: the first
    row wins), because PostgreSQL refuses one statement that touches a row twice.
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | sa.Engine,
        table: str | sa.Table,
        *,
        key: Sequence[str],
        on_conflict: Literal["update", "nothing"] = "update",
        columns: Sequence[sa.Column[Any]] | None = None,
        create: bool = True,
        batch_rows: int = 500,
    ) -> None:
        if isinstance(key, str):
            key = [key]
        if not key:
            raise ValueError("SqlSink needs key=[...]: the unique column(s) rows are upserted by")
        if on_conflict not in ("update", "nothing"):
            raise ValueError(f"SqlSink: on_conflict={on_conflict!r} is not 'update' or 'nothing'")
        if batch_rows < 1:
            raise ValueError(f"SqlSink: batch_rows={batch_rows} must be >= 1")
        self.key: tuple[str, ...] = tuple(key)
        self.on_conflict = on_conflict
        self.batch_rows = batch_rows
        self.create = create
        self.engine, self._owns_engine = engine_of(url_or_engine)
        self.table_name = table.name if isinstance(table, sa.Table) else table
        limit = _IDENTIFIER_BYTES_MAX.get(self.engine.dialect.name)
        if limit is not None and len(self.table_name.encode()) > limit:
            # PostgreSQL would silently cut the name, and the table then not be found by it.
            raise ValueError(
                f"SqlSink: table name {self.table_name!r} is longer than {self.engine.dialect.name}'s "
                f"{limit}-byte identifiers"
            )
        self._given = table
        # Built now (no I/O), used when the table does not exist yet.
        self._built = (
            sa.Table(table, sa.MetaData(), *columns)
            if columns is not None and isinstance(table, str)
            else None
        )
        self._table: sa.Table | None = None
        self._lock = threading.Lock()
        self._statements: dict[frozenset[str], Any] = {}

    def __repr__(self) -> str:
        return f"SqlSink({self.table_name!r} at {describe(self.engine)}, key={list(self.key)})"

    # -- the table -------------------------------------------------------------------------------------
    @property
    def table(self) -> sa.Table:
        """The table (reflected or created on first use)."""
        return self._resolved(None)

    def _resolved(self, conn: sa.Connection | None) -> sa.Table:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    table, final = self._resolve(conn)
                    if not final:
                        return table
                    self._table = table
        return self._table

    def _resolve(self, conn: sa.Connection | None) -> tuple[sa.Table, bool]:
        """(table, whether it may be kept). Inside a caller's transaction (``conn``) the table is looked
        up on that connection: on SQLite a second connection would wait for the caller's lock forever.
        A table SQLite creates there is not kept: the caller's rollback would take it away."""
        final = True
        bind: sa.Engine | sa.Connection = conn if conn is not None else self.engine
        create_on = self.engine
        if conn is not None and dialect_family(conn) == "sqlite":
            create_on, final = conn, False
        if isinstance(self._given, sa.Table):
            table = self._given
            if self.create and not sa.inspect(bind).has_table(table.name, schema=table.schema):
                ensure_table(create_on, table)
        elif sa.inspect(bind).has_table(self._given):
            table = sa.Table(self._given, sa.MetaData(), autoload_with=bind)
        elif self._built is None:
            raise ValueError(
                f"SqlSink: table {self._given!r} does not exist in {describe(self.engine)}; "
                "create it, or pass columns=[...] to have it created"
            )
        elif not self.create:
            raise ValueError(
                f"SqlSink: table {self._given!r} does not exist in {describe(self.engine)} and create=False"
            )
        else:
            table = self._built
            ensure_table(create_on, table)
        self._validate_key(table)
        return table, final

    def _validate_key(self, table: sa.Table) -> None:
        missing = [k for k in self.key if k not in table.c]
        if missing:
            raise ValueError(
                f"SqlSink: key column(s) {', '.join(missing)} not in table {table.name!r} "
                f"(its columns: {', '.join(table.c.keys())})"
            )
        wanted = frozenset(self.key)
        unique: list[frozenset[str]] = []
        if len(table.primary_key.columns):
            unique.append(frozenset(c.name for c in table.primary_key.columns))
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                unique.append(frozenset(c.name for c in constraint.columns))
        for index in table.indexes:
            if index.unique:
                unique.append(frozenset(c.name for c in index.columns))
        if wanted not in unique:
            shown = "; ".join(sorted("(" + ", ".join(sorted(u)) + ")" for u in unique)) or "none"
            raise ValueError(
                f"SqlSink: key ({', '.join(self.key)}) is not the primary key or a unique constraint of "
                f"table {table.name!r} (its unique keys: {shown}); an upsert needs one"
            )

    # -- writing ---------------------------------------------------------------------------------------
    def _fold(self, rows: Sequence[Mapping[str, Any]], table: sa.Table) -> list[dict[str, Any]]:
        folded: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            try:
                k = tuple(row[c] for c in self.key)
            except KeyError:
                absent = [c for c in self.key if c not in row]
                raise ValueError(
                    f"SqlSink {table.name!r}: a row has no value for key column(s) {', '.join(absent)}: "
                    f"{dict(row)!r:.200}"
                ) from None
            if self.on_conflict == "update":
                folded[k] = {**folded[k], **row} if k in folded else dict(row)
            elif k not in folded:
                folded[k] = dict(row)
        return list(folded.values())

    def _statement(self, family: str, table: sa.Table, columns: frozenset[str]) -> Any:
        stmt = self._statements.get(columns)
        if stmt is None:
            unknown = sorted(columns - set(table.c.keys()))
            if unknown:
                raise ValueError(
                    f"SqlSink {table.name!r}: column(s) {', '.join(unknown)} are not in the table "
                    f"(its columns: {', '.join(table.c.keys())})"
                )
            update = sorted(columns - set(self.key)) if self.on_conflict == "update" else []
            stmt = self._statements[columns] = upsert(family, table, self.key, update)
        return stmt

    def write(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert ``rows`` inside the caller's transaction on ``conn``, ``batch_rows`` per statement
        (executemany). Returns the number of rows given (duplicates of a key were folded)."""
        if not rows:
            return 0
        table = self._resolved(conn)
        family = dialect_family(conn)
        for chunk in chunks(rows, self.batch_rows):
            # Rows naming different columns cannot share one executemany; group them (distinct keys, so
            # their order does not matter).
            by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
            for row in self._fold(chunk, table):
                by_columns.setdefault(frozenset(row), []).append(row)
            for columns, group in by_columns.items():
                conn.execute(self._statement(family, table, columns), group)
        return len(rows)

    def write_batch(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """:meth:`write` in a transaction of its own."""
        if not rows:
            return 0
        self.table  # noqa: B018 - resolve (reflect / create) outside the write transaction
        with self.engine.begin() as conn:
            return self.write(conn, rows)

    def check(self) -> None:
        """Connect once and resolve the table: :class:`SinkUnavailable` (one line) when the database is
        unreachable, ValueError when the table does not fit the key."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1)))
        except sa.exc.DBAPIError as e:
            raise SinkUnavailable(
                f"SQL sink {self.table_name!r}: database {describe(self.engine)} unreachable: {first_line(e)}"
            ) from e
        self.table  # noqa: B018

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


# --------------------------------------------------------------------------------------------------
# SqlOffsetStore


class SqlOffsetStore:
    """Consumer positions kept in the sink's database, committed in the same transaction as the results
    (exactly-once into SQL). A per-partition epoch fences zombies.

    One row per (group, topic, partition): ``next_offset`` (-1 = nothing committed yet) and ``epoch``.
    An owner :meth:`claim` s its partitions when they are assigned, which adds one to their epochs, and
    every later :meth:`commit` of its results carries the epoch it got. A zombie (an old owner that has
    not noticed it lost the partitions, e.g. after a long pause) still carries the old epoch.

    Why the epoch check suffices: ``commit`` is an ``UPDATE ... WHERE epoch = :epoch`` and the first
    statement of the results' transaction. On every backend that UPDATE is evaluated against the latest
    committed row, under a lock held until the transaction ends:

    * PostgreSQL (READ COMMITTED): an UPDATE that finds the row locked by a concurrent claim waits, then
      re-checks its WHERE against the claim's committed version: the epoch moved, 0 rows, Fenced.
    * MariaDB/MySQL InnoDB (REPEATABLE READ): UPDATE is a locking read of the latest committed version,
      not of the transaction's snapshot, so the same holds. (A plain SELECT would read the snapshot; the
      check is never a SELECT.)
    * SQLite: every transaction begins IMMEDIATE, so the zombie's transaction and the claim run one
      after the other, whole.

    So either the claim commits first and the zombie's UPDATE matches nothing (it raises Fenced, the
    caller rolls back, none of its results stay), or the zombie's transaction commits first, results
    and position together, and the claim, waiting on the row lock, reads that position back: the new
    owner resumes after the zombie's batch, and nothing is written twice. Being first in the
    transaction also means a fenced zombie writes nothing before it stops, and every transaction takes
    the offset rows before result rows, in sorted order, so two owners never deadlock on them.
    """

    def __init__(self, engine: sa.Engine, table: str = "odradek_offsets") -> None:
        self.engine = prepare_sqlite(engine)
        self.family = dialect_family(engine)
        self.table = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("group_id", Key(), primary_key=True),
            sa.Column("topic", Key(), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
            sa.Column("epoch", sa.BigInteger, nullable=False),
        )
        ensure_table(self.engine, self.table)
        self._insert = insert_if_absent(self.family, self.table, ("group_id", "topic", "partition"))

    def _where(self, group: str, topic: str, partition: int) -> Any:
        c = self.table.c
        return sa.and_(c.group_id == group, c.topic == topic, c.partition == partition)

    def claim(
        self, group: str, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """Take ownership of ``partitions`` for ``group`` in a transaction of its own: rows are inserted
        when absent (insert-if-absent, so racing claimers do not fail), each epoch goes up by one, and
        ``{(topic, partition): (next_offset or -1, new epoch)}`` is returned."""
        check_key(group, "group id")
        parts = sorted(set(partitions))
        for topic, _p in parts:
            check_key(topic, "topic")
        if not parts:
            return {}
        c = self.table.c

        def attempt() -> dict[tuple[str, int], tuple[int, int]]:
            with self.engine.begin() as conn:
                conn.execute(
                    self._insert,
                    [
                        {"group_id": group, "topic": t, "partition": p, "next_offset": -1, "epoch": 0}
                        for t, p in parts
                    ],
                )
                for t, p in parts:
                    conn.execute(
                        sa.update(self.table).where(self._where(group, t, p)).values(epoch=c.epoch + 1)
                    )
                got = self._select(conn, group, parts)
            missing = [tp for tp in parts if tp not in got]
            if missing:
                raise AssertionError(f"offset rows vanished while claiming {missing}")
            return got

        return run_retrying(attempt, "claim")

    def _select(
        self, conn: sa.Connection, group: str, parts: Sequence[tuple[str, int]] | None
    ) -> dict[tuple[str, int], tuple[int, int]]:
        c = self.table.c
        query = sa.select(c.topic, c.partition, c.next_offset, c.epoch).where(c.group_id == group)
        if parts is not None:
            query = query.where(sa.or_(*(sa.and_(c.topic == t, c.partition == p) for t, p in parts)))
        return {(r.topic, r.partition): (r.next_offset, r.epoch) for r in conn.execute(query)}

    def commit(
        self, conn: sa.Connection, group: str, positions: Mapping[tuple[str, int], tuple[int, int]]
    ) -> None:
        """Record ``{(topic, partition): (next_offset, epoch)}`` inside the caller's transaction on
        ``conn``. Call it FIRST in that transaction, before writing the results (see the class docstring).
        Raises :class:`Fenced` naming every partition whose epoch is no longer the one given; the caller
        must then roll back."""
        fenced: list[tuple[str, int]] = []
        for (topic, partition), (offset, epoch) in sorted(positions.items()):
            if offset < 0:
                raise ValueError(f"commit of {topic}/{partition}: next offset {offset} is negative")
            done = conn.execute(
                sa.update(self.table)
                .where(self._where(group, topic, partition), self.table.c.epoch == epoch)
                .values(next_offset=offset)
            )
            # MySQL/MariaDB: SQLAlchemy connects with CLIENT_FOUND_ROWS, so this counts matched rows even
            # when the offset did not change.
            if done.rowcount != 1:
                fenced.append((topic, partition))
        if fenced:
            raise Fenced(group, fenced)

    def read(self, group: str) -> dict[tuple[str, int], tuple[int, int]]:
        """``{(topic, partition): (next_offset, epoch)}`` of every partition ``group`` ever claimed."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            return self._select(conn, group, None)
