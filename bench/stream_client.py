"""Stream-processing benchmark roles, each in its own process: ``python bench/stream_client.py ROLE JSON``.

Roles: ``fill`` (pre-fill the input topic), ``rate`` (produce at a fixed rate until told STOP),
``handwritten`` / ``odradek`` / ``quix`` (the workers: consume-transform-produce until SIGTERM),
``count`` (read the output topic back, read_committed) and ``count_sql`` (count rows in SQLite).

The ``quix`` role runs in a separate venv (Quix Streams pins an older confluent-kafka), so this module
imports only the standard library at the top; each role imports its client library itself.

Protocol with the orchestrator (bench/stream.py): ``READY`` once set up, optional ``EVENT {json}``
lines, exactly one ``RESULT {json}`` at the end; commands arrive as lines on stdin. Timestamps are
``time.monotonic_ns()``, one clock for every process on the host.

Records: value ``rec-<id:10>-<send_ns:19>-`` padded with lower-case letters to ``value_bytes``, key
``k<id>``, input partition ``id % partitions``. The transform is ``value.upper()``, so every output
still carries its id and send time.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

now_ns = time.monotonic_ns
PAD = b"abcdefghijklmnopqrstuvwxyz"


def emit(tag: str, payload: object = None) -> None:
    sys.stdout.write(tag if payload is None else f"{tag} {json.dumps(payload)}")
    sys.stdout.write("\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"[stream client {os.getpid()}] {msg}\n")
    sys.stderr.flush()


def record(i: int, size: int, send_ns: int | None = None) -> bytes:
    head = b"rec-%010d-%019d-" % (i, now_ns() if send_ns is None else send_ns)
    n = max(0, size - len(head))
    return head + (PAD * (n // len(PAD) + 1))[:n]


def record_id(v: bytes) -> int:
    return int(v[4:14])


def record_sent_ns(v: bytes) -> int:
    return int(v[15:34])


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _stdin_lines(handler) -> None:
    def pump() -> None:
        for line in sys.stdin:
            handler(line.strip())
        handler("EOF")

    threading.Thread(target=pump, daemon=True).start()


def _produce(producer, topic: str, value: bytes, key: bytes, partition: int | None = None) -> None:
    kw = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(topic, value, key=key, **kw)
            return
        except BufferError:
            producer.poll(0.005)


# --------------------------------------------------------------------------------------------------
# input


def role_fill(p: dict) -> dict:
    """``messages`` records into ``topic`` (``partitions`` partitions, id % partitions), acks=all."""
    from confluent_kafka import Producer

    failed = [0]

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failed[0] += 1

    prod = Producer(
        {
            "bootstrap.servers": p["bootstrap"],
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
        }
    )
    topic, parts, size = p["topic"], int(p["partitions"]), int(p["value_bytes"])
    t0 = time.monotonic()
    for i in range(int(p["messages"])):
        _produce(prod, topic, record(i, size, 0), b"k%d" % i, i % parts)
        if (i & 1023) == 0:
            prod.poll(0)
    left = prod.flush(300)
    return {"failed": failed[0], "unflushed": left, "elapsed_s": time.monotonic() - t0}


def role_rate(p: dict) -> dict:
    """``rate`` records/s into ``topic`` until a ``STOP`` line on stdin; ids from 0."""
    from confluent_kafka import Producer

    stop = threading.Event()
    _stdin_lines(lambda line: stop.set() if line in ("STOP", "EOF") else None)
    prod = Producer(
        {"bootstrap.servers": p["bootstrap"], "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    topic, parts, size = p["topic"], int(p["partitions"]), int(p["value_bytes"])
    prod.list_topics(topic, timeout=30)
    interval = 1.0 / float(p["rate"])
    emit("READY")
    t0 = time.monotonic()
    i = 0
    while not stop.is_set():
        due = t0 + i * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _produce(prod, topic, record(i, size), b"k%d" % i, i % parts)
        prod.poll(0)
        i += 1
    left = prod.flush(60)
    return {"produced": i, "unflushed": left}


# --------------------------------------------------------------------------------------------------
# workers (each runs until SIGTERM)


def role_handwritten(p: dict) -> dict:
    """The anchor: consume(500) -> produce each -> every ~1 s flush, then commit the positions."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    stop = _stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": p["bootstrap"],
            "group.id": p["group"],
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {"bootstrap.servers": p["bootstrap"], "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    src, out = p["source"], p["sink"]
    consumer.subscribe([src])
    emit("READY")
    positions: dict[tuple[str, int], int] = {}
    last_commit = time.monotonic()
    produce = producer.produce

    def commit() -> None:
        if producer.flush(60):
            raise SystemExit("outputs not acknowledged within 60 s")
        if positions:
            consumer.commit(
                offsets=[TopicPartition(t, q, o) for (t, q), o in positions.items()], asynchronous=False
            )
            positions.clear()

    while not stop.is_set():
        for m in consumer.consume(500, 0.1):
            if m.error() is not None:
                continue
            while True:
                try:
                    produce(out, m.value().upper(), key=m.key())
                    break
                except BufferError:
                    producer.poll(0.005)
            positions[(m.topic(), m.partition())] = m.offset() + 1
        producer.poll(0)
        if time.monotonic() - last_commit >= 1.0:
            commit()
            last_commit = time.monotonic()
    commit()
    consumer.close()
    return {}


def role_odradek(p: dict) -> dict:
    """odradek.stream's App with ``guarantee``; ``sqlite`` (a path) makes the sink a SqlSink."""
    from odradek.stream import App

    app = App(
        bootstrap_servers=p["bootstrap"],
        group_id=p["group"],
        guarantee=p["guarantee"],
        instance_id=p.get("instance_id"),
        commit_interval_ms=p.get("commit_interval_ms"),
        batch_size=int(p.get("batch_size", 500)),
    )
    if p.get("sqlite"):
        import sqlalchemy as sa

        from odradek.stream.sql import SqlSink

        sink = SqlSink(
            f"sqlite:///{p['sqlite']}",
            p["sink"],
            key=["id"],
            columns=[sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("value", sa.LargeBinary)],
        )

        @app.processor(source=p["source"], sink=sink)
        def to_row(msg):
            v = msg.value
            return {"id": record_id(v), "value": v.upper()}

    else:

        @app.processor(source=p["source"], sink=p["sink"])
        def upper(msg):
            return msg.value.upper()

    emit("READY")
    profile = p.get("profile")
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            app.run(exit_on_error=False)
        finally:
            prof.disable()
            prof.dump_stats(profile)
    else:
        app.run(exit_on_error=False)
    return {}


def role_quix(p: dict) -> dict:
    """Quix Streams: topic -> apply(value.upper()) -> topic, with ``guarantee`` and ``commit_interval``."""
    import logging

    from quixstreams import Application

    consumer_extra: dict = {}
    producer_extra: dict = {}
    if p.get("instance_id"):  # the "static" variant: the same names a restart of ours reuses
        consumer_extra["group.instance.id"] = p["instance_id"]
        if p["guarantee"] == "exactly-once":
            producer_extra["transactional.id"] = f"{p['group']}-{p['instance_id']}"
    app = Application(
        broker_address=p["bootstrap"],
        consumer_group=p["group"],
        auto_offset_reset="earliest",
        processing_guarantee=p["guarantee"],
        commit_interval=float(p["commit_interval_s"]),
        state_dir=p["state_dir"],
        loglevel=logging.WARNING,
        consumer_extra_config=consumer_extra,
        producer_extra_config=producer_extra,
    )
    src = app.topic(p["source"], key_deserializer="bytes", value_deserializer="bytes")
    out = app.topic(p["sink"], key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(src)
    sdf = sdf.apply(lambda v: v.upper())
    sdf.to_topic(out)
    emit("READY")
    app.run()  # Quix handles SIGTERM itself: it stops, commits and closes
    return {}


# --------------------------------------------------------------------------------------------------
# reading the outputs back


def role_count(p: dict) -> dict:
    """Read ``topic`` from the beginning (read_committed) and time the outputs.

    Throughput mode (``expected`` > 0): until ids 0..expected-1 have all arrived (or ``timeout_s``);
    first/last arrival times. Recovery mode: stdin ``KILL <ns>`` marks the kill; ``EVENT recovered``
    once every input partition has an output of a record sent after it; ``DRAIN <produced>`` waits for
    ids 0..produced-1 (at most ``drain_s``) and ends. ``STATUS`` answers with per-partition ages.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = p["topic"]
    parts = int(p["input_partitions"])
    expected = int(p.get("expected", 0))
    timeout_s = float(p.get("timeout_s", 600))
    consumer = Consumer(
        {
            "bootstrap.servers": p["bootstrap"],
            "group.id": f"bench-count-{os.getpid()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,
        }
    )
    md = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, q, OFFSET_BEGINNING) for q in sorted(md.partitions)])
    cmds: list[str] = []
    lock = threading.Lock()

    def on_line(line: str) -> None:
        with lock:
            cmds.append(line)

    _stdin_lines(on_line)
    emit("READY")
    seen = bytearray(max(expected, 1 << 16))
    distinct = total = 0
    first_ns = last_ns = 0
    kill_ns = 0
    drain_target = -1
    drain_deadline = 0.0
    recovered_at: dict[int, int] = {}
    recovered_sent = False
    last_arrival = [0] * parts
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with lock:
            todo, cmds[:] = list(cmds), []
        for c in todo:
            if c.startswith("KILL "):
                kill_ns = int(c.split()[1])
            elif c.startswith("DRAIN "):
                drain_target = int(c.split()[1])
                drain_deadline = time.monotonic() + float(p.get("drain_s", 30))
            elif c == "STATUS":
                t = now_ns()
                emit("STATUS", {"ages_s": [(t - a) / 1e9 if a else None for a in last_arrival], "n": total})
            elif c == "EOF":
                drain_target = max(drain_target, 0)
                drain_deadline = min(drain_deadline or time.monotonic(), time.monotonic())
        msgs = consumer.consume(1000, 0.05)
        t = now_ns()
        for m in msgs:
            if m.error() is not None:
                continue
            v = m.value()
            i = record_id(v)
            if i >= len(seen):
                seen.extend(bytearray(max(i + 1 - len(seen), len(seen))))
            total += 1
            if not seen[i]:
                seen[i] = 1
                distinct += 1
            q = i % parts
            last_arrival[q] = t
            if kill_ns and q not in recovered_at and record_sent_ns(v) > kill_ns:
                recovered_at[q] = t
        if msgs:
            if not first_ns:
                first_ns = t
            last_ns = t
        if kill_ns and not recovered_sent and len(recovered_at) == parts:
            recovered_sent = True
            emit("EVENT", {"recovered_ns": max(recovered_at.values())})
        if expected and distinct >= expected and all(seen[:expected]):
            break
        if drain_target >= 0:
            if all(seen[:drain_target]) or time.monotonic() >= drain_deadline:
                break
    target = expected or max(drain_target, 0)
    missing = target - sum(seen[:target]) if target else 0
    consumer.close()
    return {
        "first_ns": first_ns,
        "last_ns": last_ns,
        "total": total,
        "distinct": distinct,
        "duplicates": total - distinct,
        "missing": missing,
        "kill_ns": kill_ns,
        "recovered_ns": {str(q): t for q, t in sorted(recovered_at.items())},
    }


def role_count_sql(p: dict) -> dict:
    """Poll ``SELECT count(*)`` of the SQLite table until it holds ``expected`` rows.

    A SQL sink's rows carry no write time, and one commit can make many (in a short run, all) visible at
    once, so the window starts at the last read that found none, at most one poll (20 ms) before the
    first commit showed; a topic row's window starts at its first output's timestamp."""
    import sqlite3

    expected = int(p["expected"])
    deadline = time.monotonic() + float(p.get("timeout_s", 600))
    emit("READY")
    first_ns = last_ns = 0
    empty_ns = now_ns()
    n = 0
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(p["path"], timeout=30)
            try:
                n = db.execute(f'SELECT count(*) FROM "{p["table"]}"').fetchone()[0]
            finally:
                db.close()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):  # locked past the timeout: read again
                continue
            n = 0
        t = now_ns()
        if not n:
            empty_ns = t
        elif not first_ns:
            first_ns = empty_ns
        if n >= expected:
            last_ns = t
            break
        time.sleep(0.02)
    return {
        "first_ns": first_ns,
        "last_ns": last_ns,
        "total": n,
        "distinct": n,
        "duplicates": 0,
        "missing": max(0, expected - n),
    }


ROLES = {
    "fill": role_fill,
    "rate": role_rate,
    "handwritten": role_handwritten,
    "odradek": role_odradek,
    "quix": role_quix,
    "count": role_count,
    "count_sql": role_count_sql,
}


def main(argv: list[str]) -> int:
    role, params = argv[0], json.loads(argv[1])
    emit("RESULT", ROLES[role](params))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
