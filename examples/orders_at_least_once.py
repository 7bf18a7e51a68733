"""Orders into SQLite, at-least-once, made idempotent: dedup by message id and an upsert by order id.

Run a broker in another terminal (``odradek serve``), then:

    python examples/orders_at_least_once.py --bootstrap 127.0.0.1:9092 --db orders.db --demo 100

``--demo N`` first sends N sample orders, then sends the first tenth of them again with the same
message ids (as a producer does that retries after a timeout), and one order that is not JSON. Each
order is upserted into the table ``orders`` of the SQLite file by its ``order_id``. Ids already marked
in the dedup store (table ``odradek_dedup``, same file) are skipped; the marks are written in the same
transaction as the rows. The malformed order goes to the topic ``orders.dead-letter``. Stop with Ctrl-C
(or SIGTERM), or pass ``--exit-after-idle SECONDS`` to stop once no order came in for that long.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from _demo import command_line, idle_stop

from odradek.stream import App, ErrorPolicy, GuaranteedProducer, Message
from odradek.stream.dedup import SqliteDedupStore
from odradek.stream.sql import SqlSink


def send_demo(bootstrap: str, topic: str, n: int) -> None:
    producer = GuaranteedProducer(bootstrap, "at-least-once")
    orders = [
        {"order_id": f"o-{i:06d}", "customer": f"c{i % 7}", "amount_cents": 500 + 25 * i, "status": "new"}
        for i in range(n)
    ]
    # The same records again, with the same message ids, after all the others.
    for order in orders + orders[: n // 10]:
        mid = f"order:{order['order_id']}"
        producer.send(topic, json.dumps(order), key=order["customer"], message_id=mid)
    producer.send(topic, "{not json", key="c0")
    producer.flush()  # raises DeliveryError listing what was not acknowledged
    print(f"sent {n} orders, {n // 10} of them twice, and 1 malformed one to {topic}", flush=True)


def main() -> None:
    parser = command_line(__doc__, group="orders", input_topic="orders", sample="orders")
    parser.add_argument("--db", default="orders.db", metavar="PATH", help="the SQLite file (created)")
    args = parser.parse_args()

    if args.demo:
        send_demo(args.bootstrap, args.input, args.demo)

    # One engine for both: the App then writes the dedup marks in the rows' own transaction.
    dedup = SqliteDedupStore(args.db, retention_s=7 * 86400)
    sink = SqlSink(
        dedup.engine,
        "orders",
        key=["order_id"],
        columns=[
            sa.Column("order_id", sa.String(64), primary_key=True),
            sa.Column("customer", sa.String(64), nullable=False),
            sa.Column("amount_cents", sa.BigInteger, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
        ],
    )
    app = App(
        args.bootstrap,
        args.group,
        "at-least-once",
        # A malformed order will not parse on a second try: no retries, straight to the dead letters.
        errors=ErrorPolicy(retries=0, on_failure="dead-letter"),
        metrics_port=args.metrics_port,
    )
    touch = idle_stop(app, args.exit_after_idle)

    @app.processor(source=args.input, sink=sink, dedup=dedup)
    def store_order(msg: Message) -> dict:
        touch()
        order = json.loads(msg.value)
        return {k: order[k] for k in ("order_id", "customer", "amount_cents", "status")}

    app.run()  # until app.stop(), SIGTERM or SIGINT; exits 1 (2 at start-up) on a fatal error
    sample = app.metrics.registry.get_sample_value
    handled = sample("odradek_stream_records_processed_total", {"processor": "store_order"}) or 0
    skipped = sample("odradek_stream_duplicates_skipped_total", {"processor": "store_order"}) or 0
    dead = sample("odradek_stream_records_dead_lettered_total", {"processor": "store_order"}) or 0
    line = f"orders: {int(handled)} records handled, {int(skipped)} duplicates skipped"
    print(f"{line}, {int(dead)} dead-lettered", flush=True)


if __name__ == "__main__":
    main()
