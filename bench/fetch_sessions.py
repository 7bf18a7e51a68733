"""What incremental fetch sessions (KIP-227) save: ``python -m bench.fetch_sessions [--quick]``.

One consumer of a 500-partition topic (kafka-python, which keeps fetch sessions), in its own process,
against three brokers in turn: Odradek with sessions (the default), Odradek with
``max.incremental.fetch.session.cache.slots=0`` (every fetch a full one) and Apache Kafka 4.4 with its
defaults; a fourth column reads Odradek with librdkafka (confluent-kafka), which never asks for a
session. Every connection goes through a counting proxy in this process (the broker advertises the
proxy's address), which sees each request and response frame: Fetch requests per second and bytes per
Fetch request and response. Broker CPU is ``utime+stime`` of its process per wall second. Two phases:
``idle`` (nothing produced: the consumer long-polls) and ``trickle`` (a producer here sends one 100-byte
record every 20 ms to a random partition; the consumer measures each record's latency from send to
receipt on the machine's monotonic clock).

Prints a table and writes ``bench/results/fetch-sessions-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/fetch_sessions.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.brokers import KAFKA_VERSION, BrokerSpec, RunningBroker, cpu_seconds, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FETCH = 1
PARTITIONS = 500
TRICKLE_INTERVAL_S = 0.02
VALUE_BYTES = 100
FRAME_MAX_BYTES = 100 * 1024 * 1024  # the proxy's bound on one frame (the brokers' default request limit)

SPECS = [
    BrokerSpec("odradek", "odradek", "Odradek, sessions", "", {}),
    BrokerSpec(
        "odradek-nosessions",
        "odradek",
        "Odradek, slots=0",
        "",
        {"max.incremental.fetch.session.cache.slots": "0"},
    ),
    BrokerSpec("kafka", "kafka", f"Kafka {KAFKA_VERSION}", "", {}),
    # The same broker as the first column, read by librdkafka (which never asks for a session).
    BrokerSpec("odradek-librdkafka", "odradek", "Odradek, librdkafka", "", {}),
]
CLIENTS = {"odradek-librdkafka": "confluent-kafka"}  # the consumer of each column; else kafka-python


# --------------------------------------------------------------------------------------------------
# The counting proxy


class CountingProxy:
    """A loopback TCP proxy that counts Kafka frames per API key (requests and their responses)."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._stats: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0, 0])  # n, req B, resp B
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def snapshot(self) -> dict[int, tuple[int, int, int]]:
        with self._lock:
            return {k: (v[0], v[1], v[2]) for k, v in self._stats.items()}

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        pending: collections.deque[int] = collections.deque()  # api keys of requests awaiting a response

        async def frames(src: asyncio.StreamReader, dst: asyncio.StreamWriter, requests: bool) -> None:
            while True:
                head = await src.readexactly(4)
                size = int.from_bytes(head, "big", signed=True)
                if not 0 <= size <= FRAME_MAX_BYTES:
                    raise ConnectionError(f"frame of {size} bytes")
                body = await src.readexactly(size)
                with self._lock:
                    if requests:
                        api_key = int.from_bytes(body[:2], "big")
                        pending.append(api_key)
                        entry = self._stats[api_key]
                        entry[0] += 1
                        entry[1] += 4 + size
                    elif pending:
                        self._stats[pending.popleft()][2] += 4 + size
                dst.write(head + body)
                await dst.drain()

        tasks = [
            asyncio.ensure_future(frames(reader, up_writer, True)),
            asyncio.ensure_future(frames(up_reader, writer, False)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy stops: this connection ends quietly
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()


# --------------------------------------------------------------------------------------------------
# The consumer (its own process)


def consume(client: str, bootstrap: str, topic: str, partitions: int, seconds: float) -> None:
    """Assign every partition, say ``ready`` once positioned, then record each record's latency (ns) until
    a line on stdin (or ``seconds``), and print them as JSON."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    if client == "confluent-kafka":
        _consume_librdkafka(bootstrap, topic, partitions, seconds, stop)
        return
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="latest", enable_auto_commit=False
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.position(tp)
    print("ready", flush=True)
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            now = time.monotonic_ns()
            seen.extend((now, now - int(r.value[:19])) for r in records)
    sessions = [h.next_metadata.session_id for h in consumer._fetcher._session_handlers.values()]
    consumer.close()
    print(json.dumps({"records": seen, "session_ids": sessions}), flush=True)


def _consume_librdkafka(bootstrap: str, topic: str, partitions: int, seconds: float, stop: threading.Event):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-fetch-sessions", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    settle = time.monotonic() + 3  # librdkafka resolves the start offsets in the background
    while time.monotonic() < settle:
        consumer.poll(0.1)
    print("ready", flush=True)
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        for m in consumer.consume(num_messages=1000, timeout=0.2):
            if m.error() is None:
                now = time.monotonic_ns()
                seen.append((now, now - int(m.value()[:19])))
    consumer.close()
    print(json.dumps({"records": seen, "session_ids": []}), flush=True)


# --------------------------------------------------------------------------------------------------
# One broker


def _phase(proc_pid: int, proxy: CountingProxy, seconds: float, trickle: bool, bootstrap: str, topic: str):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1}) if trickle else None
    rng = random.Random(1)
    before = proxy.snapshot().get(FETCH, (0, 0, 0))
    cpu0, t0, t0_ns = cpu_seconds(proc_pid), time.monotonic(), time.monotonic_ns()
    sent = 0
    while time.monotonic() - t0 < seconds:
        if producer is not None:
            value = f"{time.monotonic_ns():019d}".encode().ljust(VALUE_BYTES, b".")
            producer.produce(topic, value=value, partition=rng.randrange(PARTITIONS))
            producer.poll(0)
            sent += 1
        time.sleep(TRICKLE_INTERVAL_S)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(proc_pid) - cpu0
    after = proxy.snapshot().get(FETCH, (0, 0, 0))
    if producer is not None:
        producer.flush(10)
    n, req_b, resp_b = (a - b for a, b in zip(after, before, strict=True))
    return {
        "seconds": wall,
        "window_ns": (t0_ns, time.monotonic_ns()),
        "broker_cpu_pct": 100 * cpu / wall,
        "fetches_per_s": n / wall,
        "fetch_request_bytes": req_b / n if n else 0.0,
        "fetch_response_bytes": resp_b / n if n else 0.0,
        "fetch_request_bytes_per_s": req_b / wall,
        "broker_cpu_ms_per_fetch": 1000 * cpu / n if n else float("nan"),
        "records_sent": sent,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_one(spec: BrokerSpec, args: argparse.Namespace, work: Path) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    proxy_port = free_port()
    settings = {**spec.settings, "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"}
    broker = RunningBroker(BrokerSpec(spec.name, spec.kind, spec.label, "", settings), work / spec.name)
    broker.start()
    proxy = CountingProxy(proxy_port, broker.port).start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    topic = f"fetch-sessions-{spec.name}"
    consumer: subprocess.Popen[str] | None = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(
            120
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            md = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
            ready = md is not None and md.error is None and len(md.partitions) == PARTITIONS
            if ready and all(p.leader >= 0 for p in md.partitions.values()):
                break
            time.sleep(0.2)
        limit_s = args.warmup + args.idle + args.trickle + 120
        client = CLIENTS.get(spec.name, "kafka-python")
        argv = [
            sys.executable,
            "-m",
            "bench.fetch_sessions",
            "consume",
            client,
            bootstrap,
            topic,
            str(PARTITIONS),
        ]
        consumer = subprocess.Popen(
            [*argv, str(limit_s)],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert consumer.stdin is not None and consumer.stdout is not None
        line = consumer.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the consumer did not start: {line!r}")
        time.sleep(args.warmup)
        idle = _phase(broker.pid, proxy, args.idle, False, bootstrap, topic)
        trickle = _phase(broker.pid, proxy, args.trickle, True, bootstrap, topic)
        time.sleep(1.0)  # the last records reach the consumer
        consumer.stdin.write("stop\n")
        consumer.stdin.flush()
        out, _ = consumer.communicate(timeout=60)
        seen = json.loads(out.strip().splitlines()[-1])
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.kill()
            consumer.wait(10)
        proxy.stop()
        broker.proc.kill()  # measured; its data directory goes with the run (a clean stop takes seconds)
    start_ns, end_ns = trickle.pop("window_ns")
    idle.pop("window_ns")
    latencies_ms = [lat / 1e6 for recv, lat in seen["records"] if start_ns <= recv - lat <= end_ns]
    trickle["records_received"] = len(latencies_ms)
    trickle["latency_p50_ms"] = _percentile(latencies_ms, 0.50)
    trickle["latency_p99_ms"] = _percentile(latencies_ms, 0.99)
    trickle["latency_mean_ms"] = statistics.fmean(latencies_ms) if latencies_ms else float("nan")
    return {
        "label": spec.label,
        "consumer": client,
        "settings": spec.settings,
        "session_ids": seen["session_ids"],
        "idle": idle,
        "trickle": trickle,
    }


ROWS = [
    ("idle", "fetches_per_s", "idle: Fetch requests/s", "{:.1f}"),
    ("idle", "fetch_request_bytes", "idle: bytes per Fetch request", "{:,.0f}"),
    ("idle", "fetch_response_bytes", "idle: bytes per Fetch response", "{:,.0f}"),
    ("idle", "broker_cpu_pct", "idle: broker CPU % of a core", "{:.1f}"),
    ("idle", "broker_cpu_ms_per_fetch", "idle: broker CPU ms per Fetch", "{:.2f}"),
    ("trickle", "fetches_per_s", "trickle: Fetch requests/s", "{:.1f}"),
    ("trickle", "fetch_request_bytes", "trickle: bytes per Fetch request", "{:,.0f}"),
    ("trickle", "fetch_response_bytes", "trickle: bytes per Fetch response", "{:,.0f}"),
    ("trickle", "fetch_request_bytes_per_s", "trickle: Fetch request bytes/s", "{:,.0f}"),
    ("trickle", "broker_cpu_pct", "trickle: broker CPU % of a core", "{:.1f}"),
    ("trickle", "broker_cpu_ms_per_fetch", "trickle: broker CPU ms per Fetch", "{:.2f}"),
    ("trickle", "latency_p50_ms", "trickle: record latency p50 ms", "{:.1f}"),
    ("trickle", "latency_p99_ms", "trickle: record latency p99 ms", "{:.1f}"),
]


def table(results: dict[str, dict]) -> str:
    names = list(results)
    width = max(len(r[2]) for r in ROWS) + 2
    head = "".join(f"{results[n]['label']:>20}" for n in names)
    ratio = "odradek" in results and "odradek-nosessions" in results
    lines = [f"{'':<{width}}{head}" + (f"{'sessions/off':>14}" if ratio else "")]
    for phase, metric, label, fmt in ROWS:
        cells = "".join(f"{fmt.format(results[n][phase][metric]):>20}" for n in names)
        if ratio:
            on, off = results["odradek"][phase][metric], results["odradek-nosessions"][phase][metric]
            cells += f"{(on / off if off else float('nan')):>14.2f}"
        lines.append(f"{label:<{width}}{cells}")
    lines.append(
        f"{'session granted (consumer)':<{width}}"
        + "".join(f"{('yes' if any(results[n]['session_ids']) else 'no'):>20}" for n in names)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "consume":
        consume(argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]))
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench.fetch_sessions", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short phases (2 s each)")
    ap.add_argument("--only", default="", help="a subset of: " + ", ".join(s.name for s in SPECS))
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--work-dir", type=Path, default=None, help="parent of the brokers' data directories")
    args = ap.parse_args(argv)
    args.warmup, args.idle, args.trickle = (1.0, 2.0, 2.0) if args.quick else (5.0, 15.0, 15.0)
    wanted = [s for s in SPECS if not args.only or s.name in args.only.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="odradek-bench-fs-", dir=args.work_dir) as tmp:
        for spec in wanted:
            print(f"== {spec.label}", file=sys.stderr, flush=True)
            results[spec.name] = run_one(spec, args, Path(tmp))
    print(
        f"consumer: kafka-python (librdkafka where named), {PARTITIONS} partitions; trickle: a record every "
        f"{TRICKLE_INTERVAL_S * 1000:.0f} ms; idle {args.idle:.0f} s, trickle {args.trickle:.0f} s"
    )
    print(table(results))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"fetch-sessions-{stamp}.json"
    doc = {"when": stamp, "host_cpus": os.cpu_count(), "partitions": PARTITIONS, "results": results}
    path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
