"""One consumer-group member as a separate process (confluent-kafka), driven by the tests.

    python member.py '<json config>'

The config: ``bootstrap``, ``group``, ``topics``, ``conf`` (extra librdkafka settings), ``mode``:

* ``loop``   subscribe and poll until "stop" arrives on stdin, then close() (LeaveGroup) and exit 0;
* ``amo``    at-most-once: auto-commit on; read one batch with consume(), process ``process`` of its
             messages, wait until the auto-commit has covered the whole batch, then crash (os._exit);
* ``alo``    at-least-once: auto-commit off; process each message, commit synchronously after every
             ``commit_every`` messages; with ``crash_after`` = N, crash (os._exit) right after processing
             the N-th message, before its batch is committed. Without it: run until "stop".

Everything the member does goes to stdout as JSON lines (flushed at once):
``{"ev": "assign" | "revoke" | "lost", "parts": [[topic, p], ...]}``, ``{"ev": "msg", "p", "o", "v"}``,
``{"ev": "processed", "v"}``, ``{"ev": "commit", "offsets": [[topic, p, offset], ...]}``,
``{"ev": "error", "code", "name", "fatal", "str"}``, ``{"ev": "closed"}``.
A crash is ``os._exit(9)``: no close(), so no LeaveGroup and no final commit, like a SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException

cfg = json.loads(sys.argv[1])
_lock = threading.Lock()


def emit(ev: str, **kw) -> None:
    line = json.dumps({"ev": ev, "t": time.time(), **kw})
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def crash() -> None:
    emit("crash")
    os._exit(9)


stop = threading.Event()


def read_stdin() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


threading.Thread(target=read_stdin, daemon=True).start()


def parts(ps) -> list:
    return [[p.topic, p.partition] for p in ps]


fatal = threading.Event()


def report_error(err: KafkaError) -> None:
    """librdkafka hides the code of a fatal error behind _FATAL; its text holds the real error's."""
    emit(
        "error",
        code=err.code(),
        name=err.name(),
        fatal=err.fatal() or err.code() == KafkaError._FATAL,
        str=err.str(),
    )
    if err.code() == KafkaError._FATAL or err.fatal():
        fatal.set()


def on_error(err: KafkaError) -> None:
    report_error(err)


def report_fatal() -> None:
    emit("fatal")
    os._exit(3)


commits: list = []


def on_commit(err, ps) -> None:
    if err is None:
        offs = [[p.topic, p.partition, p.offset] for p in ps if p.error is None]
        commits.append(offs)
        emit("commit", offsets=offs)
    else:
        emit("commit_error", str=str(err))


conf = {
    "bootstrap.servers": cfg["bootstrap"],
    "group.id": cfg["group"],
    "auto.offset.reset": "earliest",
    "error_cb": on_error,
    "on_commit": on_commit,
    "log_level": 3,
    **cfg.get("conf", {}),
}
consumer = Consumer(conf)
consumer.subscribe(
    cfg["topics"],
    on_assign=lambda c, ps: emit("assign", parts=parts(ps)),
    on_revoke=lambda c, ps: emit("revoke", parts=parts(ps)),
    on_lost=lambda c, ps: emit("lost", parts=parts(ps)),
)
mode = cfg.get("mode", "loop")
report_msgs = cfg.get("report_msgs", True)


def handle(msg) -> bool:
    """True when ``msg`` is a record (errors are reported; a fatal one ends the member)."""
    if msg is None:
        return False
    if msg.error() is not None:
        err = msg.error()
        if err.code() != KafkaError._PARTITION_EOF:
            report_error(err)
        return False
    if report_msgs:
        emit("msg", p=msg.partition(), o=msg.offset(), v=(msg.value() or b"").decode())
    return True


def run_loop() -> None:
    while not stop.is_set():
        if fatal.is_set():
            report_fatal()
        try:
            handle(consumer.poll(0.1))
        except KafkaException as e:
            report_error(e.args[0])


def run_amo() -> None:
    # Read a batch; consume() stores the offsets of the whole batch and the auto-commit sends them.
    batch: list = []
    deadline = time.monotonic() + 30
    while not batch and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(num_messages=cfg["batch"], timeout=1.0) if handle(m)]
    assert batch, "no batch"
    end = {(m.topic(), m.partition()): m.offset() + 1 for m in batch}
    emit("batch", values=[m.value().decode() for m in batch])
    for m in batch[: cfg["process"]]:
        emit("processed", v=m.value().decode())

    def covered() -> bool:
        done = {(t, p): o for offs in commits for t, p, o in offs}
        return all(done.get(tp, -1) >= o for tp, o in end.items())

    consumer.pause(consumer.assignment())  # no record past the batch is handed out (or stored)
    deadline = time.monotonic() + 20
    while not covered() and time.monotonic() < deadline:
        handle(consumer.poll(0.05))  # serves the commit callback
    emit("covered", ok=covered())
    crash()  # mid-batch: the rest of the batch is never processed


def run_alo() -> None:
    every = cfg.get("commit_every", 1)
    crash_after = cfg.get("crash_after")
    done = 0
    while not stop.is_set():
        msg = consumer.poll(0.1)
        if not handle(msg):
            continue
        emit("processed", v=msg.value().decode())  # the processing (idempotent: it only records)
        done += 1
        if crash_after is not None and done == crash_after:
            crash()  # processed, not committed
        if done % every == 0:
            consumer.commit(asynchronous=False)  # commits the position: everything processed so far


{"loop": run_loop, "amo": run_amo, "alo": run_alo}[mode]()
consumer.close()
emit("closed")
