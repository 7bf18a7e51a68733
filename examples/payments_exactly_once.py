"""Payments into PostgreSQL, exactly-once: each payment's row and its consumer position in one transaction.

Run a broker in another terminal (``odradek serve``) and have a PostgreSQL database, then:

    python examples/payments_exactly_once.py --bootstrap 127.0.0.1:9092 \\
        --db postgresql+psycopg://USER:PASSWORD@127.0.0.1/payments --demo 100

``--demo N`` first sends N sample payments in one Kafka transaction. Each payment becomes one row of the
table ``payments``. The consumer positions live in the table ``odradek_offsets`` of the same database
and are committed in the same transaction as the rows; on assignment the App reads them back and
seeks there, so a crash at any point neither loses nor repeats a row. Any SQLAlchemy URL works
(``sqlite:///payments.db`` too). Stop with Ctrl-C (or SIGTERM), or pass ``--exit-after-idle SECONDS``
to stop once no payment came in for that long.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import sqlalchemy as sa

from odradek.stream import App, GuaranteedProducer, Message
from odradek.stream.sql import SqlSink


class IdleStop:
    """Calls ``app.stop()`` once no record was processed for ``idle_s`` seconds (counted from the first)."""

    def __init__(self, app: App, idle_s: float) -> None:
        self.last: float | None = None
        threading.Thread(target=self._watch, args=(app, idle_s), daemon=True).start()

    def touch(self) -> None:
        self.last = time.monotonic()

    def _watch(self, app: App, idle_s: float) -> None:
        while self.last is None or time.monotonic() - self.last < idle_s:
            time.sleep(0.1)
        app.stop()


def send_demo(bootstrap: str, topic: str, n: int) -> None:
    # The input is written exactly-once too: one transaction, committed or aborted as a whole.
    producer = GuaranteedProducer(bootstrap, "exactly-once", transactional_id=f"{topic}-demo-producer")
    with producer.transaction():
        for i in range(n):
            payment = {"payment_id": f"p-{i:06d}", "account": f"acct-{i % 13}", "amount_cents": 100 + i}
            producer.send(topic, json.dumps(payment), key=payment["account"])
    producer.close()
    print(f"sent {n} payments to {topic}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="payments")
    parser.add_argument("--instance-id", help="a name for this instance, stable across restarts")
    parser.add_argument("--input", default="payments")
    parser.add_argument("--db", required=True, metavar="URL", help="SQLAlchemy URL of the database")
    parser.add_argument("--demo", type=int, default=0, metavar="N", help="send N sample payments first")
    parser.add_argument("--exit-after-idle", type=float, metavar="SECONDS")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    args = parser.parse_args()

    if args.demo:
        send_demo(args.bootstrap, args.input, args.demo)

    sink = SqlSink(
        args.db,
        "payments",
        key=["payment_id"],
        on_conflict="nothing",
        columns=[
            sa.Column("payment_id", sa.String(64), primary_key=True),
            sa.Column("account", sa.String(64), nullable=False),
            sa.Column("amount_cents", sa.BigInteger, nullable=False),
            sa.Column("src_partition", sa.Integer, nullable=False),
            sa.Column("src_offset", sa.BigInteger, nullable=False),
        ],
    )
    app = App(
        args.bootstrap,
        args.group,
        "exactly-once",
        instance_id=args.instance_id,
        metrics_port=args.metrics_port,
    )
    idle = IdleStop(app, args.exit_after_idle) if args.exit_after_idle else None

    @app.processor(source=args.input, sink=sink)
    def record_payment(msg: Message) -> dict:
        if idle is not None:
            idle.touch()
        payment = json.loads(msg.value)
        if payment["amount_cents"] <= 0:
            raise ValueError(f"payment {payment['payment_id']}: amount must be positive")
        return {
            "payment_id": payment["payment_id"],
            "account": payment["account"],
            "amount_cents": payment["amount_cents"],
            "src_partition": msg.partition,
            "src_offset": msg.offset,
        }

    app.run()  # until app.stop(), SIGTERM or SIGINT; exits 1 (2 at start-up) on a fatal error
    sample = app.metrics.registry.get_sample_value
    written = sample("odradek_stream_rows_written_total", {"table": "payments"})
    print(f"wrote {int(written or 0)} payments", flush=True)


if __name__ == "__main__":
    main()
