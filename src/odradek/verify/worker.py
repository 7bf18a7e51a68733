"""One processor of ``odradek verify``: a child process running an :mod:`odradek.stream` App.

    python -m odradek.verify.worker '{"bootstrap": ..., "group": ..., "guarantee": "exactly-once",
                                      "instance_id": "w0", "input": ..., "topic": OUT}'

It copies every workload record of ``input`` to its sink, unchanged, so the sink can be read back with
the workload's own parser:

* ``"topic": NAME``: a record with the input's key and value, a ``writer`` header naming this process
  (``<instance_id>.<pid>``) and, under exactly-once, a ``txn`` header ``<writer>:<ordinal>`` naming the
  transaction it was written in;
* ``"sql_url": URL, "table": NAME``: a row ``{"row_id": <uuid4>, "seq", "written_ms", "writer"}``.
  ``row_id`` is new for every write, so a record written twice is two rows with the same ``seq``.

Other keys: ``commit_interval_ms``, ``consumer`` / ``producer`` (extra client settings), ``stall_s``
(the slow-processing fault: after SIGUSR2 the next record takes this long), ``sabotage`` (a deliberately
broken processor, to show that the checker catches it: ``drop-every-1000`` skips every 1,000th input,
``write-twice`` writes every 1,000th input twice, ``commit-before-ack`` replaces the App with a
hand-made loop that auto-commits positions while its outputs still wait in the producer).

Stdout, one JSON object per line: ``{"ev": "ready"}`` once the App is built; ``{"ev": "txn", "id",
"outcome"}`` for every transaction whose outcome the App learned; ``{"ev": "stall", "t"}`` when a stall
begins; every half second ``{"ev": "stats", "processed", "assigned", "revoked", "lost"}``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid

from .workload import parse_value

STATS_EVERY_S = 0.5
SABOTAGE_EVERY = 1000
SABOTAGES = ("drop-every-1000", "write-twice", "commit-before-ack")

_out_lock = threading.Lock()


def emit(**kw) -> None:
    line = json.dumps(kw)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Stall:
    """The slow-processing fault: SIGUSR2 arms it, the next record sleeps ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False
        signal.signal(signal.SIGUSR2, self._arm)

    def _arm(self, _sig, _frame) -> None:
        self.armed = True

    def maybe(self) -> None:
        if self.armed:
            self.armed = False
            emit(ev="stall", t=time.time(), seconds=self.seconds)
            time.sleep(self.seconds)


def run_app(cfg: dict) -> None:
    from odradek.stream import App, Output

    writer = f"{cfg['instance_id']}.{os.getpid()}"
    writer_b = writer.encode()
    app: App

    def on_transaction(ordinal: int, outcome: str) -> None:
        emit(ev="txn", id=f"{writer}:{ordinal}", outcome=outcome)

    app = App(
        cfg["bootstrap"],
        cfg["group"],
        cfg["guarantee"],
        instance_id=cfg["instance_id"],
        commit_interval_ms=cfg.get("commit_interval_ms"),
        consumer_config=cfg.get("consumer"),
        producer_config=cfg.get("producer"),
        on_transaction=on_transaction,
    )
    stall = Stall(float(cfg.get("stall_s", 0)))
    sabotage = cfg.get("sabotage")
    counts = {"processed": 0}

    def copies(value: bytes) -> int:
        seq = parse_value(value)
        if sabotage == "drop-every-1000" and seq % SABOTAGE_EVERY == SABOTAGE_EVERY - 1:
            return 0
        if sabotage == "write-twice" and seq % SABOTAGE_EVERY == SABOTAGE_EVERY - 1:
            return 2
        return 1

    if "sql_url" in cfg:
        import sqlalchemy as sa

        from odradek.stream.sql import SqlSink

        sink = SqlSink(
            cfg["sql_url"],
            cfg["table"],
            key=["row_id"],
            columns=[
                sa.Column("row_id", sa.String(32), primary_key=True),
                sa.Column("seq", sa.BigInteger, nullable=False, index=True),
                sa.Column("written_ms", sa.BigInteger, nullable=False),
                sa.Column("writer", sa.String(64), nullable=False),
            ],
        )

        @app.processor(source=cfg["input"], sink=sink)
        def to_row(msg):
            stall.maybe()
            counts["processed"] += 1
            seq = parse_value(msg.value)
            now_ms = int(time.time() * 1000)
            return [
                {"row_id": uuid.uuid4().hex, "seq": seq, "written_ms": now_ms, "writer": writer}
                for _ in range(copies(msg.value))
            ]

    else:

        @app.processor(source=cfg["input"], sink=cfg["topic"])
        def to_topic(msg):
            stall.maybe()
            counts["processed"] += 1
            headers = [("writer", writer_b)]
            if app.transaction is not None:
                headers.append(("txn", f"{writer}:{app.transaction}".encode()))
            return [Output(msg.value, headers=headers)] * copies(msg.value)

    def stats() -> None:
        reg = app.metrics.registry
        while True:
            time.sleep(STATS_EVERY_S)
            kinds = {
                k: int(reg.get_sample_value("odradek_stream_rebalances_total", {"kind": k}) or 0)
                for k in ("assigned", "revoked", "lost")
            }
            emit(ev="stats", processed=counts["processed"], **kinds)

    threading.Thread(target=stats, name="stats", daemon=True).start()
    emit(ev="ready", pid=os.getpid(), writer=writer)
    app.run(exit_on_error=True)


def run_commit_before_ack(cfg: dict) -> None:
    """The deliberately wrong processor: positions are auto-committed every 50 ms, while its outputs
    wait up to half a second in the producer. A SIGKILL in between loses what was committed but never
    sent. (Only for ``sabotage``: it shows the checker catching loss the library would prevent.)"""
    from confluent_kafka import Consumer, Producer

    writer = f"{cfg['instance_id']}.{os.getpid()}"
    consumer = Consumer(
        {
            "bootstrap.servers": cfg["bootstrap"],
            "group.id": cfg["group"],
            "group.instance.id": cfg["instance_id"],
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 50,
            "auto.offset.reset": "earliest",
            "log_level": 0,
            **(cfg.get("consumer") or {}),
        }
    )
    producer = Producer(
        {"bootstrap.servers": cfg["bootstrap"], "acks": "all", "linger.ms": 500, "log_level": 0}
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stall = Stall(float(cfg.get("stall_s", 0)))
    consumer.subscribe([cfg["input"]])
    emit(ev="ready", pid=os.getpid(), writer=writer)
    processed = 0
    last_stats = time.monotonic()
    while not stop.is_set():
        for m in consumer.consume(500, 0.1):
            if m.error() is not None:
                continue
            stall.maybe()
            processed += 1
            while True:
                try:
                    producer.produce(cfg["topic"], m.value(), m.key(), headers=[("writer", writer.encode())])
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        if time.monotonic() - last_stats > STATS_EVERY_S:
            last_stats = time.monotonic()
            emit(ev="stats", processed=processed, assigned=0, revoked=0, lost=0)
    producer.flush(30)
    consumer.close()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = json.loads(sys.argv[1])
    if cfg.get("sabotage") not in (None, *SABOTAGES):
        raise SystemExit(f"unknown sabotage {cfg['sabotage']!r}")
    if cfg.get("sabotage") == "commit-before-ack":
        run_commit_before_ack(cfg)
    else:
        run_app(cfg)


if __name__ == "__main__":
    main()
