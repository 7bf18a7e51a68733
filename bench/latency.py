"""acks=all delivery latency and transaction commit latency beside Kafka: ``python -m bench.latency``.

One record at a time (the next is sent once the previous one is acknowledged), so each figure is what a
single producer waits for, not a queueing effect:

* ``linger.ms`` 0, 1, 5 and 10 with an idempotent producer (acks=all): time from ``produce()`` to the
  delivery report;
* a transactional producer: ``begin_transaction()``, ``produce()`` one record, then the time of
  ``commit_transaction()`` alone.

The brokers are the ones of ``python -m bench`` (bench/brokers.py): ``odradek`` answers acks=all after
fsync; ``kafka-flush`` (``log.flush.interval.messages=1``, fsync per appended batch) is the like-for-like
column; ``kafka`` (defaults, no fsync) shows what skipping the fsync buys. Each broker runs alone, in
turn, in a fresh directory; the client is confluent-kafka in a child process. The figures to compare are
the ratios of one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/latency.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKERS = ("odradek", "kafka-flush", "kafka")
LINGERS_MS = (0, 1, 5, 10)
TOPIC = "bench-latency"
CLIENT_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------------------
# The client (a child process): prints one line ``RESULT {json}``


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "max_ms": round(ordered[-1], 3),
        "n": len(ordered),
    }


def _delivery_latency(bootstrap: str, linger_ms: int, count: int, warmup: int) -> dict[str, float]:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "client.id": f"bench-latency-linger-{linger_ms}",
        }
    )
    done: list[object] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        done.append(time.perf_counter_ns())

    samples: list[float] = []
    value = b"x" * 100
    for i in range(warmup + count):
        done.clear()
        t0 = time.perf_counter_ns()
        producer.produce(TOPIC, value, partition=0, on_delivery=on_delivery)
        deadline = time.monotonic() + 30
        while not done:
            producer.poll(1.0)
            if time.monotonic() > deadline:
                raise RuntimeError(f"no delivery report within 30 s (linger.ms={linger_ms})")
        if i >= warmup:
            samples.append((done[0] - t0) / 1e6)  # type: ignore[operator]
    producer.flush(30)
    return _percentiles(samples)


def _commit_latency(bootstrap: str, count: int, warmup: int) -> dict[str, float]:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"bench-latency-{time.time_ns()}",
            "linger.ms": 0,
            "client.id": "bench-latency-txn",
        }
    )
    producer.init_transactions(60)
    samples: list[float] = []
    for i in range(warmup + count):
        producer.begin_transaction()
        producer.produce(TOPIC, b"t" * 100, partition=0)
        t0 = time.perf_counter_ns()
        producer.commit_transaction(30)
        if i >= warmup:
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return _percentiles(samples)


def client_main(params: dict) -> int:
    out: dict[str, dict[str, float]] = {}
    for linger in params["lingers"]:
        out[f"linger_{linger}"] = _delivery_latency(
            params["bootstrap"], linger, params["count"], params["warmup"]
        )
    out["txn_commit"] = _commit_latency(params["bootstrap"], params["txns"], params["warmup"])
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# The orchestrator


def _create_topic(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    admin.create_topics([NewTopic(TOPIC, 1, 1)], operation_timeout=30)[TOPIC].result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every partition has a leader (Kafka propagates with a delay)
        md = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {TOPIC}: no leader after 30 s")


def run_one(name: str, args: argparse.Namespace, log_dir: Path) -> dict:
    from bench.brokers import SPECS, RunningBroker

    spec = SPECS[name]
    work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-latency-{name}-", dir=args.work_dir))
    print(f"== {spec.label}: {spec.durability}", flush=True)
    broker = RunningBroker(spec, work)
    try:
        broker.start()
        _create_topic(broker.bootstrap)
        params = {
            "bootstrap": broker.bootstrap,
            "lingers": args.lingers,
            "count": args.count,
            "txns": args.txns,
            "warmup": args.warmup,
        }
        with open(log_dir / f"{name}.client.stderr", "w") as err:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.latency", "--client", json.dumps(params)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=CLIENT_TIMEOUT_S,
                cwd=Path(__file__).resolve().parents[1],
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            return {"error": f"client exit {proc.returncode}; see {log_dir / f'{name}.client.stderr'}"}
        return {"label": spec.label, "durability": spec.durability, "results": json.loads(lines[-1][7:])}
    finally:
        broker.stop()
        try:
            shutil.copy(broker.log_path, log_dir / f"{name}.broker.log")
        except OSError:
            pass
        shutil.rmtree(work, ignore_errors=True)


def render(report: dict) -> str:
    names = [n for n in report["brokers"] if "results" in report["brokers"][n]]
    rows = [(f"linger_{ln}", f"acks=all idempotent, linger.ms={ln}") for ln in report["params"]["lingers"]]
    rows.append(("txn_commit", "commit_transaction (1 record)"))
    ratio = "odradek" in names and "kafka-flush" in names
    head = f"{'ms':<38}" + "".join(f"{n:>24}" for n in names) + ("  odradek/kafka-flush" if ratio else "")
    lines = [head, "-" * len(head)]
    for key, label in rows:
        for q in ("p50_ms", "p99_ms", "mean_ms"):
            cells = []
            for n in names:
                v = report["brokers"][n]["results"].get(key, {}).get(q)
                cells.append(f"{v:>24.2f}" if v is not None else f"{'-':>24}")
            line = f"{(label if q == 'p50_ms' else ''):<32}{q[:-3]:>6}" + "".join(cells)
            if ratio:
                a = report["brokers"]["odradek"]["results"][key][q]
                b = report["brokers"]["kafka-flush"]["results"][key][q]
                line += f"{a / b:>21.2f}" if b else f"{'-':>21}"
            lines.append(line)
    for n in report["brokers"]:
        if "error" in report["brokers"][n]:
            lines.append(f"{n}: ERROR {report['brokers'][n]['error']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--only", default=",".join(BROKERS), help=f"brokers, from {', '.join(BROKERS)}")
    p.add_argument("--count", type=int, default=300, help="records measured per linger.ms (default 300)")
    p.add_argument("--txns", type=int, default=200, help="transactions measured (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="sends or transactions not measured first")
    p.add_argument("--lingers", default=",".join(map(str, LINGERS_MS)), help="linger.ms values")
    p.add_argument("--quick", action="store_true", help="50 records per linger, 30 transactions")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=None)
    args = p.parse_args(argv)
    args.lingers = [int(x) for x in str(args.lingers).split(",") if x]
    if args.quick:
        args.count, args.txns, args.warmup = 50, 30, 5
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
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log_dir = args.results_dir / f"{stamp}-latency-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "bench": "latency",
        "started": stamp,
        "params": {k: getattr(args, k) for k in ("count", "txns", "warmup", "lingers")},
        "brokers": {},
    }
    for name in brokers:
        try:
            report["brokers"][name] = run_one(name, args, log_dir)
        except Exception as e:  # one broker failing does not lose the others' figures
            report["brokers"][name] = {"error": f"{type(e).__name__}: {e}"}
    out = args.results_dir / f"{stamp}-latency.json"
    out.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nresults: {out}")
    return 0 if all("results" in b for b in report["brokers"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
