"""Idempotency stores: which message ids were already processed, and race-free check-then-set claims.

Dedup stores answer "was this id processed?" (:meth:`DedupStore.seen`) and remember ids once they are
(:meth:`DedupStore.mark`), for ``retention_s``. The SQL store marks inside the caller's transaction
(``conn=``), so a mark commits or rolls back with the results it stands for; the memory and Redis
stores cannot join a database transaction (they refuse ``conn=``), so marking after the results are
durable is the caller's order, and a crash between the two means the record is processed again
(at-least-once, never lost).

Seen-then-mark is a check-then-set: two workers that get the same id at once both find it unseen and
both process it. Where that matters, :class:`ClaimStore` / :class:`RedisClaimStore` make the check and
the set one atomic step: the first :meth:`~ClaimStore.claim` of a key wins ("claimed"), others get
"busy" (or "done" once the winner finished); a winner that dies loses its lease after ``lease_s`` and
someone else may take the key over.

Every id and key is a string of at most 255 characters (a ValueError otherwise), compared exactly.
Times in the SQL tables are wall-clock milliseconds of the writing process, so hosts sharing a store
should keep their clocks in sync (leases and retention are off by the skew).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .errors import StreamError
from .sql import (
    READ_ONLY,
    Key,
    check_key,
    chunks,
    describe,
    dialect_family,
    engine_of,
    ensure_table,
    first_line,
    run_retrying,
)

if TYPE_CHECKING:
    import redis

__all__ = [
    "ClaimStore",
    "DedupStore",
    "MemoryDedupStore",
    "PostgresDedupStore",
    "RedisClaimStore",
    "RedisDedupStore",
    "SqlDedupStore",
    "SqliteDedupStore",
    "StoreUnavailable",
]

DAY_S = 86400.0
IN_LIST_MAX = 500  # ids per IN (...) / MGET: bounded statements on every database
ClaimResult = Literal["claimed", "done", "busy"]


class StoreUnavailable(StreamError):
    """The store's database or server cannot be reached; ``str()`` is one line: what, where, why."""


@runtime_checkable
class DedupStore(Protocol):
    def seen(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` were marked and are still within the retention window."""
        ...

    def mark(self, ids: Sequence[str], *, conn: sa.Connection | None = None) -> None:
        """Remember ``ids`` as processed. SQL stores: ``conn`` joins the caller's transaction."""
        ...

    def check(self) -> None:
        """Raise :class:`StoreUnavailable` (one line) when the store cannot be reached."""
        ...

    def close(self) -> None: ...


def _ids(ids: Sequence[str]) -> list[str]:
    """Distinct ids in order, each checked (a str of at most 255 characters)."""
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of str, not one str")
    out = list(dict.fromkeys(ids))
    for i in out:
        check_key(i, "a message id")
    return out


def _no_transaction(store: object, conn: sa.Connection | None) -> None:
    if conn is not None:
        raise ValueError(
            f"{type(store).__name__} cannot join a database transaction: mark after the transaction "
            "commits (or use SqlDedupStore on the sink's database to mark atomically with the results)"
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------------
# Memory


class MemoryDedupStore:
    """Ids in process memory: bounded (never more than ``max_entries``) and expiring (``retention_s``
    after their mark). Past the bound the oldest marks are forgotten first, early; ``evicted`` counts
    them, since each is an id whose duplicate would no longer be recognised. Lost with the process."""

    transactional = False

    def __init__(
        self,
        max_entries: int = 100_000,
        retention_s: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"MemoryDedupStore: max_entries={max_entries} must be >= 1")
        if retention_s <= 0:
            raise ValueError(f"MemoryDedupStore: retention_s={retention_s} must be > 0")
        self.max_entries = max_entries
        self.retention_s = retention_s
        self.clock = clock
        self.evicted = 0
        self._marked: OrderedDict[str, float] = OrderedDict()  # oldest mark first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._marked)

    def _expire(self, now: float) -> None:
        marked = self._marked
        while marked:
            oldest_id, at = next(iter(marked.items()))
            if now - at < self.retention_s:
                break
            del marked[oldest_id]

    def seen(self, ids: Sequence[str]) -> set[str]:
        wanted = _ids(ids)
        now = self.clock()
        with self._lock:
            self._expire(now)
            return {i for i in wanted if i in self._marked and now - self._marked[i] < self.retention_s}

    def mark(self, ids: Sequence[str], *, conn: sa.Connection | None = None) -> None:
        _no_transaction(self, conn)
        new = _ids(ids)
        now = self.clock()
        with self._lock:
            self._expire(now)
            for i in new:
                if i in self._marked:  # still within retention (expired ones are gone): keep its mark
                    continue
                self._marked[i] = now
                if len(self._marked) > self.max_entries:
                    self._marked.popitem(last=False)
                    self.evicted += 1

    def check(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._marked.clear()


# --------------------------------------------------------------------------------------------------
# SQL


class _LazyTable:
    """A table created on first use (not in ``__init__``, so a store can be built before its database
    is up, and :meth:`check` reports that in one line)."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self.created = False
        self._lock = threading.Lock()

    def ensure(self, conn: sa.Connection | None = None) -> None:
        """Inside a caller's transaction on SQLite the table is created on that connection (a second
        one would wait for the caller's lock) and not remembered (a rollback would take it away)."""
        if self.created:
            return
        if conn is not None and dialect_family(conn) == "sqlite":
            ensure_table(conn, self.table)
            return
        with self._lock:
            if not self.created:
                ensure_table(self.engine, self.table)
                self.created = True

    def exists(self, conn: sa.Connection) -> bool:
        return self.created or sa.inspect(conn).has_table(self.table.name)

    def check(self, what: str) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1)))
            self.ensure()
        except sa.exc.DBAPIError as e:
            raise StoreUnavailable(
                f"{what} (table {self.table.name!r}): database {describe(self.engine)} unreachable: "
                f"{first_line(e)}"
            ) from e


class SqlDedupStore:
    """Marked ids in one table (id primary key, mark time), on SQLite, PostgreSQL or MySQL/MariaDB.

    ``mark`` is an insert-if-absent: a live mark is kept as it is; only an expired one, not yet purged,
    gets the new time. Expired rows are deleted in bounded batches (``purge_rows``) by ``mark`` from
    time to time (every ``purge_interval_s``, or at the next mark while a batch came back full), inside
    the same transaction; rows another transaction holds are skipped (``SKIP LOCKED``), so two workers
    purging never wait on each other.
    """

    transactional = True

    def __init__(
        self,
        url_or_engine: str | sa.URL | sa.Engine,
        table: str = "odradek_dedup",
        retention_s: float = 7 * DAY_S,
        *,
        purge_interval_s: float = 60.0,
        purge_rows: int = 1000,
    ) -> None:
        if retention_s <= 0:
            raise ValueError(f"SqlDedupStore: retention_s={retention_s} must be > 0")
        if purge_rows < 1:
            raise ValueError(f"SqlDedupStore: purge_rows={purge_rows} must be >= 1")
        self.engine, self._owns_engine = engine_of(url_or_engine)
        self.family = dialect_family(self.engine)
        self.retention_s = retention_s
        self.purge_interval_s = purge_interval_s
        self.purge_rows = purge_rows
        self.table = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("id", Key(), primary_key=True),
            sa.Column("marked_at_ms", sa.BigInteger, nullable=False, index=True),
        )
        self._lazy = _LazyTable(self.engine, self.table)
        self._next_purge = 0.0  # time.monotonic() of the next purge
        self._purge_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqlDedupStore({self.table.name!r} at {describe(self.engine)})"

    def _cutoff_ms(self) -> int:
        return _now_ms() - int(self.retention_s * 1000)

    def seen(self, ids: Sequence[str]) -> set[str]:
        wanted = _ids(ids)
        if not wanted:
            return set()
        c = self.table.c
        cutoff = self._cutoff_ms()
        found: set[str] = set()
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})  # SQLite: no write lock, even in a caller's txn
            if not self._lazy.exists(conn):
                return found
            for chunk in chunks(wanted, IN_LIST_MAX):
                query = sa.select(c.id).where(c.id.in_(chunk), c.marked_at_ms >= cutoff)
                found.update(conn.execute(query).scalars())
        return found

    def _mark_statement(self) -> Any:
        """Insert-if-absent, except that an expired mark (not purged yet) takes the new time. The cutoff
        is the new row's own time less the retention, a constant in the SQL: pymysql's executemany
        cannot carry a bound parameter in ON DUPLICATE KEY UPDATE, and the statement is compiled once."""
        t = self.table
        retention_ms = sa.literal_column(str(int(self.retention_s * 1000)), sa.BigInteger)
        if self.family == "mysql":
            stmt = mysql_dialect.insert(t)
            new = stmt.inserted.marked_at_ms
            fresh = sa.case((t.c.marked_at_ms < new - retention_ms, new), else_=t.c.marked_at_ms)
            return stmt.on_duplicate_key_update({"marked_at_ms": fresh})
        dialect = pg_dialect if self.family == "postgresql" else sqlite_dialect
        stmt = dialect.insert(t)
        new = stmt.excluded.marked_at_ms
        return stmt.on_conflict_do_update(
            index_elements=["id"], set_={"marked_at_ms": new}, where=t.c.marked_at_ms < new - retention_ms
        )

    def mark(self, ids: Sequence[str], *, conn: sa.Connection | None = None) -> None:
        new = _ids(ids)
        if not new:
            return
        if conn is None:
            self._lazy.ensure()
            run_retrying(lambda: self._in_transaction(self._mark, new), "mark")
        else:
            self._lazy.ensure(conn)
            self._mark(conn, new)

    def _in_transaction(self, fn: Callable[[sa.Connection, Any], Any], arg: Any) -> Any:
        with self.engine.begin() as conn:
            return fn(conn, arg)

    def _mark(self, conn: sa.Connection, ids: list[str]) -> None:
        now = _now_ms()
        stmt = self._mark_statement()
        for chunk in chunks(ids, IN_LIST_MAX):
            conn.execute(stmt, [{"id": i, "marked_at_ms": now} for i in chunk])
        with self._purge_lock:
            due = time.monotonic() >= self._next_purge
            if due:
                self._next_purge = time.monotonic() + self.purge_interval_s
        if due:
            purged = self._purge(conn)
            if purged >= self.purge_rows:  # more to do: again at the next mark
                with self._purge_lock:
                    self._next_purge = 0.0

    def purge(self) -> int:
        """Delete up to ``purge_rows`` expired marks now, in a transaction of its own; returns how many."""
        self._lazy.ensure()
        return run_retrying(lambda: self._in_transaction(lambda conn, _: self._purge(conn), None), "purge")

    def _purge(self, conn: sa.Connection) -> int:
        c = self.table.c
        cutoff = self._cutoff_ms()
        query = sa.select(c.id).where(c.marked_at_ms < cutoff).order_by(c.marked_at_ms).limit(self.purge_rows)
        if self.family != "sqlite":  # SQLite has no row locks: its transactions run one at a time anyway
            query = query.with_for_update(skip_locked=True)
        expired = list(conn.execute(query).scalars())
        for chunk in chunks(expired, IN_LIST_MAX):
            conn.execute(sa.delete(self.table).where(c.id.in_(chunk), c.marked_at_ms < cutoff))
        return len(expired)

    def check(self) -> None:
        self._lazy.check("dedup store")

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def SqliteDedupStore(path: str | Path, retention_s: float = 7 * DAY_S, **kw: Any) -> SqlDedupStore:  # noqa: N802
    """The embedded, durable default: a SQLite file (created when missing)."""
    return SqlDedupStore(sa.URL.create("sqlite", database=str(path)), retention_s=retention_s, **kw)


def PostgresDedupStore(  # noqa: N802
    url: str | sa.URL, table: str = "odradek_dedup", retention_s: float = 7 * DAY_S, **kw: Any
) -> SqlDedupStore:
    """A dedup store in PostgreSQL (``postgresql://`` uses psycopg)."""
    if sa.make_url(url).get_backend_name() != "postgresql":
        raise ValueError(f"PostgresDedupStore needs a postgresql:// URL, not {sa.make_url(url)!r}")
    return SqlDedupStore(url, table, retention_s, **kw)


class ClaimStore:
    """Race-free check-then-set in SQL: one row per key, (state 'claimed' with an owner and a lease, or
    'done'), on SQLite, PostgreSQL or MySQL/MariaDB.

    :meth:`claim` inserts first and lets the primary key decide: one insert wins, whoever races it gets
    a duplicate-key error and then looks. A lease that expired is taken over by a conditional UPDATE
    (``WHERE state = 'claimed' AND expires_at < now``) that one taker alone can match: the database
    re-checks the condition on the latest row under its lock (PostgreSQL, InnoDB) or runs the
    transactions one at a time (SQLite). :meth:`done` is conditional on the owner in the same way, so
    a worker whose lease was taken over learns it (False) and rolls its results back.
    """

    def __init__(self, url_or_engine: str | sa.URL | sa.Engine, table: str = "odradek_claims") -> None:
        self.engine, self._owns_engine = engine_of(url_or_engine)
        self.family = dialect_family(self.engine)
        self.table = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("key", Key(), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("owner", Key(), nullable=False),
            sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
            sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        )
        self._lazy = _LazyTable(self.engine, self.table)

    def __repr__(self) -> str:
        return f"ClaimStore({self.table.name!r} at {describe(self.engine)})"

    def claim(self, key: str, owner: str, lease_s: float = 60) -> ClaimResult:
        check_key(key, "a claim key")
        check_key(owner, "a claim owner")
        if lease_s <= 0:
            raise ValueError(f"claim of {key!r}: lease_s={lease_s} must be > 0")
        self._lazy.ensure()
        for _ in range(3):  # bounded: a key released between our two looks is tried again
            got = self._claim_once(key, owner, int(lease_s * 1000))
            if got is not None:
                return got
        return "busy"

    def _claim_once(self, key: str, owner: str, lease_ms: int) -> ClaimResult | None:
        t, c = self.table, self.table.c
        now = _now_ms()
        row = {"state": "claimed", "owner": owner, "expires_at_ms": now + lease_ms, "updated_at_ms": now}
        try:
            run_retrying(lambda: self._run(sa.insert(t).values(key=key, **row)), "claim")
            return "claimed"
        except sa.exc.IntegrityError:
            pass  # the key exists: done, busy, or an expired lease to take over

        def take_over(conn: sa.Connection) -> ClaimResult | None:
            expired = sa.and_(c.key == key, c.state == "claimed", c.expires_at_ms < now)
            if conn.execute(sa.update(t).where(expired).values(**row)).rowcount == 1:
                return "claimed"
            state = conn.execute(sa.select(c.state).where(c.key == key)).scalar_one_or_none()
            if state is None:
                return None  # released between the insert and this look: try again
            return "done" if state == "done" else "busy"

        return run_retrying(lambda: self._in_transaction(take_over), "claim")

    def _run(self, stmt: Any) -> int:
        """``stmt`` in a transaction of its own; its row count."""
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def _in_transaction(self, fn: Callable[[sa.Connection], Any]) -> Any:
        with self.engine.begin() as conn:
            return fn(conn)

    def done(self, key: str, owner: str, *, conn: sa.Connection | None = None) -> bool:
        """Mark ``key`` done if ``owner`` still holds its claim (``conn``: in the caller's transaction,
        atomically with the results). False when the claim was lost (taken over or released): the
        caller must roll back its results."""
        check_key(key, "a claim key")
        c = self.table.c
        stmt = (
            sa.update(self.table)
            .where(c.key == key, c.owner == owner, c.state == "claimed")
            .values(state="done", updated_at_ms=_now_ms())
        )
        if conn is not None:
            return conn.execute(stmt).rowcount == 1
        self._lazy.ensure()
        return run_retrying(lambda: self._run(stmt), "done") == 1

    def release(self, key: str, owner: str) -> None:
        """Processing failed: drop ``owner``'s claim so the key can be claimed (and retried) at once."""
        check_key(key, "a claim key")
        c = self.table.c
        self._lazy.ensure()
        stmt = sa.delete(self.table).where(c.key == key, c.owner == owner, c.state == "claimed")
        run_retrying(lambda: self._run(stmt), "release")

    def check(self) -> None:
        self._lazy.check("claim store")

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


# --------------------------------------------------------------------------------------------------
# Redis


def _redis_client(url: str) -> redis.Redis:
    try:
        import redis
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the Redis stores need redis-py: pip install 'odradek[redis]'") from e
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def _redis_check(client: redis.Redis, what: str, url: str) -> None:
    import redis

    try:
        client.ping()
    except redis.RedisError as e:
        line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StoreUnavailable(f"{what}: redis {url} unreachable: {line}") from e


class RedisDedupStore:
    """Marks as Redis keys ``<prefix><id>`` that expire by themselves after ``retention_s``
    (``SET ... NX PX``, pipelined). As durable as the Redis server is configured to be."""

    transactional = False

    def __init__(self, url: str, retention_s: float = 7 * DAY_S, prefix: str = "odradek:dedup:") -> None:
        if retention_s <= 0:
            raise ValueError(f"RedisDedupStore: retention_s={retention_s} must be > 0")
        self.url = url
        self.retention_s = retention_s
        self.prefix = prefix
        self.client = _redis_client(url)

    def seen(self, ids: Sequence[str]) -> set[str]:
        wanted = _ids(ids)
        found: set[str] = set()
        for chunk in chunks(wanted, IN_LIST_MAX):
            values = self.client.mget([self.prefix + i for i in chunk])
            found.update(i for i, v in zip(chunk, values, strict=True) if v is not None)
        return found

    def mark(self, ids: Sequence[str], *, conn: sa.Connection | None = None) -> None:
        _no_transaction(self, conn)
        new = _ids(ids)
        ttl_ms = max(1, int(self.retention_s * 1000))
        for chunk in chunks(new, IN_LIST_MAX):
            pipe = self.client.pipeline(transaction=False)
            for i in chunk:
                pipe.set(self.prefix + i, b"1", nx=True, px=ttl_ms)
            pipe.execute()

    def check(self) -> None:
        _redis_check(self.client, "dedup store", self.url)

    def close(self) -> None:
        self.client.close()


# A claim's value is "c:<owner>" (so no owner can be mistaken for the value "done").
_DONE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
  return 1
end
return 0
"""
_DELETE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisClaimStore:
    """:class:`ClaimStore` on Redis: ``SET <prefix><key> c:<owner> NX PX <lease>`` claims; the lease is
    the key's expiry, so an expired claim simply vanishes and the next ``SET NX`` takes the key over.
    :meth:`done` and :meth:`release` compare the owner and write in one Lua script (atomic on the
    server). A claim whose lease ran out is lost even if nobody took it over (``done`` returns False).
    Done keys expire after ``done_retention_s``."""

    def __init__(self, url: str, prefix: str = "odradek:claim:", done_retention_s: float = 7 * DAY_S) -> None:
        if done_retention_s <= 0:
            raise ValueError(f"RedisClaimStore: done_retention_s={done_retention_s} must be > 0")
        self.url = url
        self.prefix = prefix
        self.done_retention_s = done_retention_s
        self.client = _redis_client(url)
        self._done = self.client.register_script(_DONE_IF_OWNER)
        self._delete = self.client.register_script(_DELETE_IF_OWNER)

    def claim(self, key: str, owner: str, lease_s: float = 60) -> ClaimResult:
        check_key(key, "a claim key")
        check_key(owner, "a claim owner")
        if lease_s <= 0:
            raise ValueError(f"claim of {key!r}: lease_s={lease_s} must be > 0")
        name = self.prefix + key
        for _ in range(3):  # bounded: a lease that ends between SET and GET is tried again
            if self.client.set(name, f"c:{owner}", nx=True, px=max(1, int(lease_s * 1000))):
                return "claimed"
            value = self.client.get(name)
            if value == b"done":
                return "done"
            if value is not None:
                return "busy"
        return "busy"

    def done(self, key: str, owner: str, *, conn: sa.Connection | None = None) -> bool:
        _no_transaction(self, conn)
        check_key(key, "a claim key")
        ttl_ms = max(1, int(self.done_retention_s * 1000))
        return bool(self._done(keys=[self.prefix + key], args=[f"c:{owner}", ttl_ms]))

    def release(self, key: str, owner: str) -> None:
        check_key(key, "a claim key")
        self._delete(keys=[self.prefix + key], args=[f"c:{owner}"])

    def check(self) -> None:
        _redis_check(self.client, "claim store", self.url)

    def close(self) -> None:
        self.client.close()
