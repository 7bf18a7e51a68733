"""Benchmark client roles, each run in its own process: ``python bench/client.py ROLE 'JSON-PARAMS'``.

Only the standard library and confluent-kafka (librdkafka) are used, so the broker under test and
the process that measures it never share a CPU-bound interpreter with the client. Protocol with the
orchestrator (bench/run.py):

* a line ``READY`` on stdout when a role that has to be synchronised is set up;
* exactly one line ``RESULT {json}`` on stdout when the role is done (exit code 0);
* anything else (librdkafka errors, tracebacks) goes to stderr; a failure exits non-zero.

All timestamps are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, one clock for every process on the host),
so the orchestrator can compare them with its own clock.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

now_ns = time.monotonic_ns


def emit(tag: str, payload: object = None) -> None:
    line = tag if payload is None else f"{tag} {json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"[bench client {os.getpid()}] {msg}\n")
    sys.stderr.flush()


def _error_cb(err: KafkaError) -> None:
    # Transient errors (connection refused before the broker is up, ...) are expected; keep a trace.
    log(f"librdkafka: {err}")


def base_conf(p: dict) -> dict:
    conf = {
        "bootstrap.servers": p["bootstrap"],
        "error_cb": _error_cb,
        "client.id": p.get("client_id", "bench"),
    }
    conf.update(p.get("conf", {}))
    return conf


# --------------------------------------------------------------------------------------------------
# produce: as fast as the broker takes it, for a fixed time (or a fixed count)


def role_produce(p: dict) -> dict:
    """Keep the producer's queue full for ``seconds`` (or until ``messages`` are queued), then flush.

    Throughput = acknowledged bytes / (time from the first produce() to the end of flush()).
    Per-message delivery reports are off (only errors come back), so Python does no work per ack.
    """
    errors: list[str] = []
    failed = 0

    def on_delivery_count(err, _msg) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            if len(errors) < 20:
                errors.append(str(err))

    conf = base_conf(p)
    conf.update({"delivery.report.only.error": True, "on_delivery": on_delivery_count})
    producer = Producer(conf)
    topic = p["topic"]
    partitions = int(p.get("partitions", 1))
    size = int(p["value_bytes"])
    value = os.urandom(size)
    seconds = float(p.get("seconds", 0) or 0)
    limit = int(p.get("messages", 0) or 0)
    # Connect and learn the topic before the clock starts.
    producer.list_topics(topic, timeout=30)
    txn_size = int(p.get("txn_size", 0) or 0)
    if txn_size:
        return _produce_transactions(producer, topic, partitions, value, seconds, txn_size, errors)
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + seconds if seconds else float("inf")
    produce = producer.produce
    poll = producer.poll
    part = 0
    while True:
        if limit and sent >= limit:
            break
        if (sent & 1023) == 0 and time.monotonic() >= deadline:
            break
        try:
            produce(topic, value, partition=part)
        except BufferError:
            poll(0.002)
            continue
        sent += 1
        part += 1
        if part == partitions:
            part = 0
    left = producer.flush(300)
    elapsed = time.monotonic() - t0
    acked = sent - failed - left
    return {
        "sent": sent,
        "acked": acked,
        "failed": failed,
        "unflushed": left,
        "errors": errors,
        "elapsed_s": elapsed,
        "msg_per_s": acked / elapsed,
        "mb_per_s": acked * size / elapsed / 1e6,
    }


def _produce_transactions(
    producer: Producer, topic: str, partitions: int, value: bytes, seconds: float, txn_size: int, errors: list
) -> dict:
    """Transactions of ``txn_size`` messages, each committed before the next begins, for ``seconds``."""
    producer.init_transactions(30)
    sent = committed = txns = 0
    part = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        producer.begin_transaction()
        for _ in range(txn_size):
            while True:
                try:
                    producer.produce(topic, value, partition=part)
                    break
                except BufferError:
                    producer.poll(0.002)
            sent += 1
            part = (part + 1) % partitions
        producer.commit_transaction(60)
        committed += txn_size
        txns += 1
    elapsed = time.monotonic() - t0
    return {
        "sent": sent,
        "acked": committed,
        "failed": sent - committed,
        "unflushed": 0,
        "errors": errors,
        "elapsed_s": elapsed,
        "msg_per_s": committed / elapsed,
        "mb_per_s": committed * len(value) / elapsed / 1e6,
        "txn_per_s": txns / elapsed,
    }


# --------------------------------------------------------------------------------------------------
# first successful produce after the broker process starts


def role_first_produce(p: dict) -> dict:
    """Started before the broker: retry until one acks=all produce is acknowledged."""
    conf = base_conf(p)
    conf.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "message.timeout.ms": int(p.get("timeout_s", 120) * 1000),
            "reconnect.backoff.ms": 5,
            "reconnect.backoff.max.ms": 20,
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": 20,
            "topic.metadata.refresh.fast.interval.ms": 10,
            "socket.connection.setup.timeout.ms": 1000,
            "log_level": 0,
        }
    )
    conf.pop("error_cb", None)  # connection refused is the normal state here; don't spam
    producer = Producer(conf)
    done: dict = {}

    def on_delivery(err, msg) -> None:
        done["t_ns"] = now_ns()
        done["err"] = None if err is None else str(err)
        if msg is not None and err is None:
            done["offset"] = msg.offset()

    emit("READY")
    producer.produce(p["topic"], b"first", on_delivery=on_delivery)
    deadline = time.monotonic() + float(p.get("timeout_s", 120))
    while "t_ns" not in done and time.monotonic() < deadline:
        producer.poll(0.001)
    if "t_ns" not in done:
        raise SystemExit("no delivery report before the deadline")
    if done["err"]:
        raise SystemExit(f"first produce failed: {done['err']}")
    producer.flush(5)
    return {"delivered_ns": done["t_ns"], "offset": done.get("offset")}


# --------------------------------------------------------------------------------------------------
# fill a topic (setup for consume / transactional copy)


def role_fill(p: dict) -> dict:
    p = dict(p)
    p.setdefault("conf", {})
    p["conf"] = {
        "acks": "1",
        "enable.idempotence": False,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 262144,
        **p["conf"],
    }
    return role_produce(p)


# --------------------------------------------------------------------------------------------------
# consume from the start of a topic


def role_consume(p: dict) -> dict:
    conf = base_conf(p)
    conf.update(
        {
            "group.id": f"bench-consume-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # librdkafka >= 2.3 stops fetching for fetch.queue.backoff.ms (default 1 s) whenever its local
            # queue is full. A broker that fills the queue faster than this process drains it then shows
            # whole-second stalls, so the figure would measure the pause's timing, not the broker. Same
            # setting for every broker.
            "fetch.queue.backoff.ms": 1,
        }
    )
    consumer = Consumer(conf)
    topic = p["topic"]
    partitions = int(p.get("partitions", 1))
    expected = int(p["messages"])
    size = int(p["value_bytes"])
    timeout_s = float(p.get("timeout_s", 600))
    got = 0
    errors: list[str] = []
    t0 = time.monotonic()
    consumer.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
    deadline = t0 + timeout_s
    consume = consumer.consume
    t_first = None
    while got < expected and time.monotonic() < deadline:
        msgs = consume(min(10_000, expected - got), 0.5)
        if not msgs:
            continue
        if t_first is None:
            t_first = time.monotonic()
        for m in msgs:
            if m.error() is None:
                got += 1
            elif len(errors) < 20:
                errors.append(str(m.error()))
    t_end = time.monotonic()
    consumer.close()
    if got < expected:
        raise SystemExit(f"consumed {got} of {expected} messages in {t_end - t0:.1f}s; errors {errors}")
    # Steady-state read rate: from the first record delivered to the last (client start-up, connection
    # and the first offset lookup are reported separately as first_message_s).
    assert t_first is not None
    read_s = max(1e-9, t_end - t_first)
    return {
        "consumed": got,
        "errors": errors,
        "elapsed_s": t_end - t0,
        "read_s": read_s,
        "first_message_s": t_first - t0,
        "msg_per_s": got / read_s,
        "mb_per_s": got * size / read_s / 1e6,
    }


# --------------------------------------------------------------------------------------------------
# end-to-end latency: a paced producer and a consumer in another process

_HDR = struct.Struct(
    "<qqb"
)  # send time (monotonic ns), sequence number, phase (0 warm-up, 1 measured, 2 end)


def role_e2e_consume(p: dict) -> dict:
    conf = base_conf(p)
    conf.update({"group.id": f"bench-e2e-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(p["topic"], 0, OFFSET_BEGINNING)])
    consumer.poll(0.1)  # connect, resolve the start offset
    emit("READY")
    lat_ns: list[int] = []
    seqs_seen = 0
    errors: list[str] = []
    deadline = time.monotonic() + float(p.get("timeout_s", 300))
    ended = False
    unpack = _HDR.unpack_from
    poll = consumer.poll
    while not ended and time.monotonic() < deadline:
        m = poll(0.2)
        if m is None:
            continue
        t = now_ns()
        if m.error() is not None:
            if len(errors) < 20:
                errors.append(str(m.error()))
            continue
        sent, _seq, phase = unpack(m.value())
        if phase == 1:
            lat_ns.append(t - sent)
            seqs_seen += 1
        elif phase == 2:
            ended = True
    consumer.close()
    if not ended:
        raise SystemExit(f"no end marker before the deadline ({len(lat_ns)} measured messages seen)")
    lat_ns.sort()

    def pct(q: float) -> float:
        if not lat_ns:
            return float("nan")
        i = min(len(lat_ns) - 1, max(0, int(round(q * len(lat_ns) + 0.5)) - 1))
        return lat_ns[i] / 1e6

    return {
        "received": len(lat_ns),
        "errors": errors,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": lat_ns[-1] / 1e6 if lat_ns else float("nan"),
        "mean_ms": sum(lat_ns) / len(lat_ns) / 1e6 if lat_ns else float("nan"),
    }


def role_e2e_produce(p: dict) -> dict:
    conf = base_conf(p)
    producer = Producer(conf)
    topic = p["topic"]
    rate = float(p["rate"])
    size = max(_HDR.size, int(p["value_bytes"]))
    pad = os.urandom(size - _HDR.size)
    warm = float(p.get("warmup_s", 2.0))
    seconds = float(p["seconds"])
    failed = 0

    def on_delivery(err, _msg) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    producer.list_topics(topic, timeout=30)
    interval = 1.0 / rate
    t0 = time.monotonic()
    measured_from = t0 + warm
    end = measured_from + seconds
    seq = 0
    measured = 0
    produce = producer.produce
    while True:
        nxt = t0 + seq * interval
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
            now = time.monotonic()
        if now >= end:
            break
        phase = 1 if now >= measured_from else 0
        while True:
            try:
                produce(topic, _HDR.pack(now_ns(), seq, phase) + pad, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.001)
        measured += phase
        seq += 1
        producer.poll(0)
    actual_rate = measured / max(1e-9, time.monotonic() - measured_from)
    producer.produce(topic, _HDR.pack(now_ns(), seq, 2) + pad, partition=0, on_delivery=on_delivery)
    left = producer.flush(60)
    return {
        "measured_sent": measured,
        "total_sent": seq + 1,
        "failed": failed,
        "unflushed": left,
        "achieved_rate": actual_rate,
    }


# --------------------------------------------------------------------------------------------------
# transactional consume-transform-produce


def role_txn_copy(p: dict) -> dict:
    """read_committed consumer (group member) + transactional producer; each transaction carries
    ``txn_size`` transformed records and the consumer's offsets (send_offsets_to_transaction)."""
    in_topic, out_topic = p["input"], p["output"]
    txn_size = int(p["txn_size"])
    limit = int(p["messages"])
    seconds = float(p["seconds"])
    cconf = base_conf(p)
    cconf.update(
        {
            "group.id": p["group"],
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "heartbeat.interval.ms": 500,
        }
    )
    consumer = Consumer(cconf)
    pconf = base_conf(p)
    pconf.update({"transactional.id": f"bench-txn-{uuid.uuid4().hex[:8]}", "linger.ms": 5})
    producer = Producer(pconf)
    producer.init_transactions(60)
    assigned = threading.Event()
    consumer.subscribe([in_topic], on_assign=lambda c, parts: assigned.set())
    # Wait for the assignment and the first batch of records before starting the clock.
    buf: list = []
    setup_deadline = time.monotonic() + 60
    while not buf and time.monotonic() < setup_deadline:
        buf = [m for m in consumer.consume(txn_size, 0.5) if m.error() is None]
    if not buf:
        raise SystemExit("no input records within 60 s of subscribing")
    t0 = time.monotonic()
    deadline = t0 + seconds
    done = 0
    txns = 0
    commit_ms: list[float] = []
    produce = producer.produce
    while done < limit:
        want = min(txn_size, limit - done)
        fetch_deadline = time.monotonic() + 10
        while len(buf) < want and time.monotonic() < fetch_deadline:
            for m in consumer.consume(want - len(buf), 0.2):
                if m.error() is None:
                    buf.append(m)
                else:
                    log(f"consume error: {m.error()}")
        if not buf:
            break
        batch, buf = buf[:want], buf[want:]
        producer.begin_transaction()
        for m in batch:
            v = m.value()
            while True:
                try:
                    produce(out_topic, v[::-1], key=m.key())  # the "transform"
                    break
                except BufferError:
                    producer.poll(0.001)
        # Offsets of what this transaction consumed (not of records still buffered here).
        nxt: dict = {}
        for m in batch:
            nxt[(m.topic(), m.partition())] = m.offset() + 1
        offsets = [TopicPartition(t, part, off) for (t, part), off in nxt.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
        tc = time.monotonic()
        producer.commit_transaction(60)
        commit_ms.append((time.monotonic() - tc) * 1000)
        done += len(batch)
        txns += 1
        if time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - t0
    consumer.close()
    size = int(p.get("value_bytes", 0))
    commit_ms.sort()
    return {
        "copied": done,
        "transactions": txns,
        "elapsed_s": elapsed,
        "msg_per_s": done / elapsed,
        "mb_per_s": done * size / elapsed / 1e6,
        "txn_per_s": txns / elapsed,
        "commit_ms_p50": commit_ms[len(commit_ms) // 2] if commit_ms else None,
        "commit_ms_max": commit_ms[-1] if commit_ms else None,
    }


# --------------------------------------------------------------------------------------------------
# consumer-group rebalance: 4 members join


class _RebalanceRound:
    """One group of members; ``complete_at`` is set when the assignments are complete."""

    def __init__(self, p: dict, group: str) -> None:
        self.topic = p["topic"]
        self.members = int(p.get("members", 4))
        self.everything = {(self.topic, i) for i in range(int(p["partitions"]))}
        self.lock = threading.Lock()
        self.current: list[set] = [set() for _ in range(self.members)]
        self.complete_at: int | None = None
        self.stop = threading.Event()
        self.consumers = []
        for i in range(self.members):
            conf = base_conf(p)
            conf.update(
                {
                    "group.id": group,
                    "client.id": f"bench-member-{i}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "latest",
                }
            )
            self.consumers.append(Consumer(conf))

    def _check(self) -> None:
        union: set = set()
        total = 0
        for s in self.current:
            if not s:
                return
            union |= s
            total += len(s)
        if union == self.everything and total == len(self.everything) and self.complete_at is None:
            self.complete_at = now_ns()

    def _on_assign(self, i: int, parts) -> None:
        with self.lock:
            self.current[i] = {(tp.topic, tp.partition) for tp in parts}
            self._check()

    def _on_revoke(self, i: int) -> None:
        with self.lock:
            self.current[i] = set()

    def _poll(self, i: int) -> None:
        c = self.consumers[i]
        while not self.stop.is_set():
            m = c.poll(0.05)
            if m is not None and m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
                log(f"member {i}: {m.error()}")

    def run(self, timeout_s: float) -> float:
        threads = [threading.Thread(target=self._poll, args=(i,), daemon=True) for i in range(self.members)]
        t_sub = 0
        for i, c in enumerate(self.consumers):
            c.subscribe(
                [self.topic],
                on_assign=lambda _c, parts, i=i: self._on_assign(i, parts),
                on_revoke=lambda _c, _parts, i=i: self._on_revoke(i),
            )
            t_sub = now_ns()
            threads[i].start()
        deadline = time.monotonic() + timeout_s
        while self.complete_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        self.stop.set()
        for t in threads:
            t.join(10)
        for c in self.consumers:
            try:
                c.close()
            except KafkaException as e:
                log(f"close: {e}")
        if self.complete_at is None:
            raise SystemExit(f"{self.members} members got no complete assignment in time: {self.current}")
        return (self.complete_at - t_sub) / 1e9


def role_rebalance(p: dict) -> dict:
    """Four members (one thread each, each its own librdkafka instance) subscribe to one topic.

    Time is measured from the 4th subscribe() until the four current assignments are non-empty,
    disjoint and cover every partition. ``rounds`` fresh groups; every round is reported.
    """
    rounds = [
        _RebalanceRound(p, f"{p['group']}-{rnd}").run(float(p.get("timeout_s", 120)))
        for rnd in range(int(p.get("rounds", 1)))
    ]
    return {"rounds_s": rounds}


ROLES = {
    "produce": role_produce,
    "first_produce": role_first_produce,
    "fill": role_fill,
    "consume": role_consume,
    "e2e_consume": role_e2e_consume,
    "e2e_produce": role_e2e_produce,
    "txn_copy": role_txn_copy,
    "rebalance": role_rebalance,
}


def main(argv: list[str]) -> int:
    role, params = argv[0], json.loads(argv[1])
    result = ROLES[role](params)
    emit("RESULT", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
