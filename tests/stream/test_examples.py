"""The programs in examples/ run as documented, on Odradek and on Apache Kafka: each is started as a
subprocess with ``--demo N`` (it sends its own sample input) and ``--exit-after-idle``, must exit 0, and
must leave the effect its docstring promises (records in the output topic, rows in the database)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from support.databases import new_database
from support.kit import read_values
from support.odradek import REPO_ROOT, child_env

EXAMPLES = REPO_ROOT / "examples"
RUN_TIMEOUT_S = 60


def run_example(name: str, *args: str) -> str:
    """Run ``examples/<name>`` to its end; its stdout (exit status 0 asserted)."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args, "--exit-after-idle", "1.5"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def table(url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_metrics_at_most_once_forwards_every_view_but_the_bots(broker, unique):
    src, out = unique("page-views"), unique("page-metrics")
    stdout = run_example(
        "metrics_at_most_once.py",
        *("--bootstrap", broker.bootstrap, "--group", unique("g"), "--input", src, "--output", out),
        *("--demo", "200"),
    )
    assert "forwarded 180 metric events" in stdout
    events = [json.loads(v) for v in read_values(broker.bootstrap, out, unique("reader"))]
    assert len(events) == 180
    assert {e["metric"] for e in events} == {"page_view"}
    assert sorted(e["ms_on_page"] for e in events) == sorted(100 + i % 900 for i in range(200) if i % 10 != 9)


def test_orders_at_least_once_upserts_each_order_once_and_dead_letters_the_malformed_one(
    broker, unique, tmp_path: Path
):
    src, db = unique("orders"), tmp_path / "orders.db"
    stdout = run_example(
        "orders_at_least_once.py",
        *("--bootstrap", broker.bootstrap, "--group", unique("g"), "--input", src, "--db", str(db)),
        *("--demo", "100"),
    )
    assert "dead-lettered" in stdout, stdout
    url = f"sqlite:///{db}"
    rows = table(url, "SELECT order_id, amount_cents FROM orders ORDER BY order_id")
    assert rows == [(f"o-{i:06d}", 500 + 25 * i) for i in range(100)]
    marks = {r[0] for r in table(url, "SELECT id FROM odradek_dedup")}
    assert {f"order:o-{i:06d}" for i in range(100)} <= marks
    assert len(marks) == 101  # and the malformed order's own id
    assert read_values(broker.bootstrap, f"{src}.dead-letter", unique("reader")) == [b"{not json"]


def test_payments_exactly_once_writes_each_payment_once_with_the_positions(broker, unique, postgres_url):
    src, url = unique("payments"), new_database(postgres_url, "payments_example")
    group = unique("g")
    stdout = run_example(
        "payments_exactly_once.py",
        *("--bootstrap", broker.bootstrap, "--group", group, "--instance-id", "payments-1"),
        *("--input", src, "--db", url, "--demo", "100"),
    )
    assert "wrote 100 payments" in stdout
    rows = table(url, "SELECT payment_id, amount_cents, src_offset FROM payments ORDER BY payment_id")
    assert rows == [(f"p-{i:06d}", 100 + i, i) for i in range(100)]
    positions = table(url, "SELECT group_id, topic, partition, next_offset FROM odradek_offsets")
    assert positions == [(group, src, 0, 100)]
