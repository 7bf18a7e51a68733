"""One odradek.stream worker process, for the crash and zombie tests (which SIGKILL, SIGSTOP and restart it).

    python worker.py '{"bootstrap": ..., "group": ..., "guarantee": "exactly-once", "instance_id": "w0",
                       "input": ..., "output": ...}'

Each input record's value is a sequence id (``b"000123"``); the processor maps it to one output:

* ``"output": TOPIC``: a record ``b"out-000123"`` with the input's key and a ``writer`` header naming this
  instance;
* ``"sql_url": URL, "table": NAME``: a row ``{"row_id": <uuid4>, "seq": "000123", "src_partition",
  "src_offset", "writer"}``. ``row_id`` is new for every write, so the sink's upsert never merges two
  writes of one input: a record written twice shows up as two rows with the same ``seq``.

Optional keys: ``commit_interval_ms``; ``rate`` (records per second this worker processes at most, so
that a run lasts long enough to be disrupted), ``sleep_ms`` (per record, for slow processing);
``consumer`` / ``producer`` (extra client settings).

Stdout, one JSON object per line, flushed: ``{"ev": "ready", "pid", "t"}`` once the App is built, then
``{"ev": "first", "partition", "offset", "t"}`` the first time a record of a partition is processed since
this process started (``t`` is ``time.time()``). Stderr is the library's log (INFO).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import time
import uuid

from odradek.stream import App, Output


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


class Pace:
    """At most ``rate`` records per second (a token bucket with a burst of 50 ms of records)."""

    def __init__(self, rate: float | None, sleep_ms: float) -> None:
        self.step = 1.0 / rate if rate else 0.0
        self.sleep_s = sleep_ms / 1000.0
        self.next_at = 0.0

    def wait(self) -> None:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if not self.step:
            return
        now = time.monotonic()
        self.next_at = max(self.next_at, now - 0.05) + self.step
        ahead = self.next_at - now
        if ahead > 0.005:
            time.sleep(ahead)


def build(cfg: dict) -> App:
    instance = cfg["instance_id"]
    app = App(
        cfg["bootstrap"],
        cfg["group"],
        cfg["guarantee"],
        instance_id=instance,
        commit_interval_ms=cfg.get("commit_interval_ms"),
        consumer_config=cfg.get("consumer"),
        producer_config=cfg.get("producer"),
    )
    pace = Pace(cfg.get("rate"), cfg.get("sleep_ms", 0))
    seen: set[int] = set()
    writer = instance.encode()

    def note(msg) -> None:
        if msg.partition not in seen:
            seen.add(msg.partition)
            emit(ev="first", partition=msg.partition, offset=msg.offset, t=time.time())
        pace.wait()

    if "sql_url" in cfg:
        import sqlalchemy as sa

        from odradek.stream.sql import SqlSink

        sink = SqlSink(
            cfg["sql_url"],
            cfg["table"],
            key=["row_id"],
            columns=[
                sa.Column("row_id", sa.String(32), primary_key=True),
                sa.Column("seq", sa.String(16), nullable=False, index=True),
                sa.Column("src_partition", sa.Integer, nullable=False),
                sa.Column("src_offset", sa.BigInteger, nullable=False),
                sa.Column("writer", sa.String(16), nullable=False),
            ],
        )

        @app.processor(source=cfg["input"], sink=sink)
        def to_row(msg):
            note(msg)
            return {
                "row_id": uuid.uuid4().hex,
                "seq": msg.value.decode(),
                "src_partition": msg.partition,
                "src_offset": msg.offset,
                "writer": instance,
            }

    else:

        @app.processor(source=cfg["input"], sink=cfg["output"])
        def to_topic(msg):
            note(msg)
            return Output(b"out-" + msg.value, headers=[("writer", writer)])

    return app


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps where a stuck worker is
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = json.loads(sys.argv[1])
    app = build(cfg)
    emit(ev="ready", pid=os.getpid(), t=time.time())
    app.run(exit_on_error=True)


if __name__ == "__main__":
    main()
