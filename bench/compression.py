"""The cost of topic ``compression.type`` beside Kafka: ``python -m bench.compression``.

One row per (topic ``compression.type``, producer codec): the producer's codec kept (``producer``, and
``lz4`` into ``lz4``, stored as sent) against the broker recompressing (``zstd``, ``gzip`` from lz4;
``zstd`` from uncompressed). Each row produces 1 KiB JSON-like values (compressible, about 3:1 with zstd,
not one repeated byte) with confluent-kafka, ``acks=1`` so that neither broker waits for a disk flush
and the figure is the broker's CPU work, into a fresh one-partition topic for a fixed time. Reported:
acknowledged msg/s, broker CPU (user + system, all threads) per message, and the bytes the topic's
segments take on disk per message: medians of ``--rounds`` rounds (3), the rows interleaved.

The brokers are those of ``python -m bench`` (bench/brokers.py), each alone in turn in a fresh
directory: ``odradek`` and ``kafka`` (defaults). Compare the ratios of one run; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/compression.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.side import run_client, run_dirs  # noqa: E402 (after the path set-up above)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKERS = ("odradek", "kafka")
# (topic compression.type, producer compression.type)
ROWS: tuple[tuple[str, str], ...] = (
    ("producer", "lz4"),
    ("lz4", "lz4"),
    ("zstd", "lz4"),
    ("gzip", "lz4"),
    ("zstd", "none"),
)
VALUE_BYTES = 1024
CLIENT_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------------------
# The client (a child process): prints one line ``RESULT {json}``


def sample_values(n: int, size: int, seed: int = 7) -> list[bytes]:
    """``n`` distinct JSON-like documents of ``size`` bytes: field names repeat, numbers and ids vary."""
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    out = []
    for i in range(n):
        parts = [f'{{"id": {i}, "user": "user-{rng.randrange(10**6)}", "tags": [']
        while sum(map(len, parts)) < size - 40:
            parts.append(f'"{rng.choice(words)}-{rng.randrange(1000)}", {rng.random():.6f}, ')
        doc = "".join(parts)[: size - 3] + "]}"
        out.append(doc.encode().ljust(size, b" "))
    return out


def client_main(params: dict) -> int:
    from confluent_kafka import Producer

    errors: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None and len(errors) < 20:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": params["bootstrap"],
            "compression.type": params["codec"],
            "acks": "1",
            "linger.ms": 5,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "client.id": "bench-compression",
        }
    )
    topic = params["topic"]
    values = sample_values(1000, VALUE_BYTES)
    producer.list_topics(topic, timeout=30)
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + params["seconds"]
    while True:
        if (sent & 1023) == 0 and time.monotonic() >= deadline:
            break
        try:
            producer.produce(topic, values[sent % len(values)], partition=0)
        except BufferError:
            producer.poll(0.002)
            continue
        sent += 1
    left = producer.flush(300)
    elapsed = time.monotonic() - t0
    acked = sent - left - len(errors)
    print("RESULT " + json.dumps({"sent": sent, "acked": acked, "errors": errors, "elapsed_s": elapsed}))
    return 0


# --------------------------------------------------------------------------------------------------
# The orchestrator


def _create_topic(bootstrap: str, topic: str, compression_type: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    new = NewTopic(topic, 1, 1, config={"compression.type": compression_type})
    admin.create_topics([new], operation_timeout=30)[topic].result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a leader for the partition (Kafka propagates with a delay)
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic}: no leader after 30 s")


def _stored_bytes(work: Path, topic: str) -> int:
    """Bytes of the topic's segment files (both brokers keep a partition in ``<topic>-<n>/*.log``)."""
    return sum(f.stat().st_size for f in work.rglob(f"{topic}-0/*.log") if f.is_file())


def run_broker(name: str, args: argparse.Namespace, log_dir: Path) -> dict:
    from bench.brokers import SPECS, RunningBroker

    spec = SPECS[name]
    work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-compression-{name}-", dir=args.work_dir))
    print(f"== {spec.label}", flush=True)
    broker = RunningBroker(spec, work)
    rows: dict[str, dict] = {}
    try:
        broker.start()
        rounds: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            for i, (topic_codec, producer_codec) in enumerate(ROWS):
                key = f"{topic_codec}<-{producer_codec}"
                topic = f"bench-compression-{round_}-{i}-{topic_codec}"
                r = _run_row(
                    broker, topic, topic_codec, producer_codec, args, log_dir / f"{name}.client.stderr"
                )
                if "error" not in r:
                    if spec.kind == "kafka":
                        time.sleep(1.0)  # let Kafka's log appends settle before the sizes are read
                    r["stored_bytes_per_msg"] = _stored_bytes(work, topic) / max(r["acked"], 1)
                    print(
                        f"   round {round_ + 1} {key:<18} {r['msg_per_s']:>10,.0f} msg/s "
                        f"{r['broker_cpu_us_per_msg']:>7.1f} us CPU/msg "
                        f"{r['stored_bytes_per_msg']:>7.0f} B/msg on disk",
                        flush=True,
                    )
                rounds.setdefault(key, []).append(r)
        for key, runs in rounds.items():
            good = [r for r in runs if "error" not in r]
            if not good:
                rows[key] = runs[-1]
                continue
            rows[key] = {
                field: statistics.median(r[field] for r in good)
                for field in ("msg_per_s", "broker_cpu_us_per_msg", "stored_bytes_per_msg")
            }
            rows[key]["rounds"] = runs
        return {"label": spec.label, "rows": rows}
    finally:
        broker.stop()
        try:
            shutil.copy(broker.log_path, log_dir / f"{name}.broker.log")
        except OSError:
            pass
        shutil.rmtree(work, ignore_errors=True)


def _run_row(broker, topic: str, topic_codec: str, producer_codec: str, args, stderr: Path) -> dict:
    from bench.brokers import cpu_seconds

    _create_topic(broker.bootstrap, topic, topic_codec)
    params = {"bootstrap": broker.bootstrap, "topic": topic, "codec": producer_codec, "seconds": args.seconds}
    cpu0 = cpu_seconds(broker.pid)
    r = run_client("compression", params, stderr, CLIENT_TIMEOUT_S)
    cpu = cpu_seconds(broker.pid) - cpu0
    if r is None:
        return {"error": f"the client failed; see {stderr}"}
    if r["errors"]:
        return {"error": f"delivery errors: {r['errors'][:3]}"}
    r["msg_per_s"] = r["acked"] / r["elapsed_s"]
    r["broker_cpu_us_per_msg"] = cpu / max(r["acked"], 1) * 1e6
    return r


def render(report: dict) -> str:
    o = report["brokers"].get("odradek", {}).get("rows", {})
    k = report["brokers"].get("kafka", {}).get("rows", {})
    head = (
        "| topic compression.type | producer sends | Odradek msg/s | Kafka msg/s | Odradek/Kafka "
        "| Odradek CPU µs/msg | Kafka CPU µs/msg | Odradek B/msg stored | Kafka B/msg stored |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for topic_codec, producer_codec in ROWS:
        key = f"{topic_codec}<-{producer_codec}"
        a, b = o.get(key, {}), k.get(key, {})

        def cell(row: dict, field: str, fmt: str) -> str:
            return fmt.format(row[field]) if field in row else "-"

        ratio = f"{a['msg_per_s'] / b['msg_per_s']:.2f}" if "msg_per_s" in a and "msg_per_s" in b else "-"
        lines.append(
            f"| {topic_codec} | {producer_codec} | {cell(a, 'msg_per_s', '{:,.0f}')} "
            f"| {cell(b, 'msg_per_s', '{:,.0f}')} | {ratio} "
            f"| {cell(a, 'broker_cpu_us_per_msg', '{:.1f}')} | {cell(b, 'broker_cpu_us_per_msg', '{:.1f}')} "
            f"| {cell(a, 'stored_bytes_per_msg', '{:.0f}')} | {cell(b, 'stored_bytes_per_msg', '{:.0f}')} |"
        )
    for name, data in report["brokers"].items():
        if "error" in data:
            lines.append(f"{name}: ERROR {data['error']}")
        for key, row in data.get("rows", {}).items():
            if "error" in row:
                lines.append(f"{name} {key}: ERROR {row['error']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.splitlines()[0])
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--only", default=",".join(BROKERS), help=f"brokers, from {', '.join(BROKERS)}")
    p.add_argument("--seconds", type=float, default=5.0, help="produce time per row (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every row; medians reported")
    p.add_argument("--quick", action="store_true", help="one round of 2 s per row")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(json.loads(args.client))
    brokers = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in brokers if b not in BROKERS]
    if unknown:
        print(f"unknown broker(s) {', '.join(unknown)}; choose from {', '.join(BROKERS)}", file=sys.stderr)
        return 2
    stamp, log_dir = run_dirs(args.results_dir, "compression")
    report: dict = {
        "bench": "compression",
        "started": stamp,
        "params": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "value_bytes": VALUE_BYTES,
            "acks": 1,
            "linger_ms": 5,
        },
        "brokers": {},
    }
    for name in brokers:
        try:
            report["brokers"][name] = run_broker(name, args, log_dir)
        except Exception as e:  # one broker failing does not lose the other's figures
            report["brokers"][name] = {"error": f"{type(e).__name__}: {e}"}
    out = args.results_dir / f"{stamp}-compression.json"
    out.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nresults: {out}")
    ok = all(
        "rows" in b and all("error" not in r for r in b["rows"].values()) for b in report["brokers"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
