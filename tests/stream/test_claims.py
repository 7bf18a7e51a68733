"""Race-free check-then-set: ClaimStore on SQLite / PostgreSQL / MariaDB (``sql_url``) and
RedisClaimStore on a real redis-server. Each scenario runs on all four."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from odradek.stream.dedup import ClaimStore, RedisClaimStore, StoreUnavailable
from odradek.stream.sql import make_engine
from support.databases import new_database
from support.net import free_port

Store = ClaimStore | RedisClaimStore
Factory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres", "mariadb", "redis"])
def claims(request: pytest.FixtureRequest, tmp_path: Path, unique) -> Iterator[Factory]:
    """A factory of stores on one backend: each call is a separate store (its own engine or client), as
    separate workers would have. SQL backends get a fresh database (as ``sql_url``), Redis a fresh
    key prefix."""
    made: list[Store] = []
    if request.param == "redis":
        redis_url, prefix = request.getfixturevalue("redis_url"), unique("claims") + ":"

        def make() -> Store:
            made.append(RedisClaimStore(redis_url, prefix=prefix))
            return made[-1]
    else:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'claims.db'}"
        else:
            url = new_database(request.getfixturevalue(f"{request.param}_url"), request.node.originalname)

        def make() -> Store:
            made.append(ClaimStore(url))
            return made[-1]

        make().check()  # the table, before any race
    yield make
    for s in made:
        s.close()


def test_claim_busy_done(claims: Factory) -> None:
    a, b = claims(), claims()
    assert a.claim("order-1", "worker-a") == "claimed"
    assert b.claim("order-1", "worker-b") == "busy"
    assert a.claim("order-1", "worker-a") == "busy"  # a claim is not re-entrant
    assert b.done("order-1", "worker-b") is False  # not b's claim
    assert a.done("order-1", "worker-a") is True
    assert b.claim("order-1", "worker-b") == "done"
    assert a.done("order-1", "worker-a") is False  # done once
    assert b.claim("Order-1", "worker-b") == "claimed"  # keys are compared exactly
    assert b.claim("order-1 ", "worker-b") == "claimed"


def test_exactly_one_of_racing_workers_claims(claims: Factory) -> None:
    workers = 4
    stores = [claims() for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def claim(args: tuple[int, str]) -> str:
        i, key = args
        barrier.wait()
        return stores[i].claim(key, f"worker-{i}")

    with ThreadPoolExecutor(workers) as pool:
        for round_ in range(50):
            key = f"race-{round_}"
            results = list(pool.map(claim, [(i, key) for i in range(workers)]))
            assert sorted(results) == ["busy"] * (workers - 1) + ["claimed"], (round_, results)


def test_an_expired_lease_is_taken_over_by_one_worker(claims: Factory) -> None:
    first = claims()
    assert first.claim("job", "crashed", lease_s=0.5) == "claimed"
    assert claims().claim("job", "early", lease_s=30) == "busy"
    time.sleep(0.8)
    workers = 4
    stores = [claims() for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def claim(i: int) -> str:
        barrier.wait()
        return stores[i].claim("job", f"taker-{i}", lease_s=30)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(claim, range(workers)))
    assert sorted(results) == ["busy"] * (workers - 1) + ["claimed"]
    winner = results.index("claimed")
    assert first.done("job", "crashed") is False  # its lease was lost
    assert stores[winner].done("job", f"taker-{winner}") is True
    assert first.claim("job", "crashed") == "done"


def test_release_lets_the_key_be_retried(claims: Factory) -> None:
    a, b = claims(), claims()
    assert a.claim("k", "a") == "claimed"
    b.release("k", "b")  # not b's: nothing happens
    assert b.claim("k", "b") == "busy"
    a.release("k", "a")
    assert b.claim("k", "b") == "claimed"
    assert a.done("k", "a") is False
    assert b.done("k", "b") is True
    b.release("k", "b")  # a done key stays done
    assert a.claim("k", "a") == "done"


def test_keys_and_leases_are_checked(claims: Factory) -> None:
    store = claims()
    with pytest.raises(ValueError, match="at most 255"):
        store.claim("k" * 256, "owner")
    with pytest.raises(ValueError, match="lease_s"):
        store.claim("k", "owner", lease_s=0)
    assert store.claim("k" * 255, "o" * 255) == "claimed"
    assert store.done("k" * 255, "o" * 255) is True


def test_done_joins_the_callers_transaction(sql_url: str) -> None:
    engine = make_engine(sql_url)
    store = ClaimStore(engine)
    try:
        assert store.claim("pay-1", "w") == "claimed"
        with engine.connect() as conn:
            tx = conn.begin()
            assert store.done("pay-1", "w", conn=conn) is True
            tx.rollback()
        assert store.claim("pay-1", "other") == "busy"  # still claimed, not done
        with engine.begin() as conn:
            assert store.done("pay-1", "w", conn=conn) is True
        assert store.claim("pay-1", "other") == "done"
    finally:
        engine.dispose()


def test_redis_refuses_a_transaction(redis_url: str, unique) -> None:
    store = RedisClaimStore(redis_url, prefix=unique("claims") + ":")
    try:
        store.claim("k", "w")
        with sa.create_engine("sqlite://").connect() as conn, pytest.raises(ValueError, match="transaction"):
            store.done("k", "w", conn=conn)
    finally:
        store.close()


def test_unreachable_stores_are_one_line(sql_url: str, tmp_path: Path) -> None:
    url = sa.make_url(sql_url)
    if url.get_backend_name() == "sqlite":
        bad = f"sqlite:///{tmp_path / 'missing-dir' / 'c.db'}"
    else:
        bad = url.set(port=free_port()).render_as_string(hide_password=False)
    for store in (ClaimStore(bad), RedisClaimStore(f"redis://127.0.0.1:{free_port()}/0")):
        with pytest.raises(StoreUnavailable) as e:
            store.check()
        store.close()
        assert "\n" not in str(e.value) and "claim store" in str(e.value) and "unreachable" in str(e.value)
