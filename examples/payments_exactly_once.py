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

import json

import sqlalchemy as sa
from _demo import command_line, idle_stop

from odradek.stream import App, GuaranteedProducer, Message
from odradek.stream.sql import SqlSink


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
    parser = command_line(__doc__, group="payments", input_topic="payments", sample="payments")
    parser.add_argument("--instance-id", help="a name for this instance, stable across restarts")
    parser.add_argument("--db", required=True, metavar="URL", help="SQLAlchemy URL of the database")
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
    touch = idle_stop(app, args.exit_after_idle)

    @app.processor(source=args.input, sink=sink)
    def record_payment(msg: Message) -> dict:
        touch()
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
