"""acks=all delivery latency and transaction commit latency beside Kafka: ``python -m bench.latency``.

One record at a time (the next is sent once the previous one is acknowledged), so each figure is what a
single producer waits for, not a queueing effect:

* ``linger.ms`` 0, 1, 5 and 10 with an idempotent producer (acks=all): time from ``produce()`` to the
  delivery report;
* a transactional producer: ``begin_transaction()``, ``produce()`` one record, then the time of
  ``commit_transaction()`` alone.

The brokers are the ones of ``python -m bench`` (bench/brokers.py): ``odradek`` answers acks=all after
fsync; ``kafka-flush`` (``log.flush.interval.messages=1``, fsync per appended batch) is the like-for-like
column; ``kafka`` (defaults, no fsync) shows what skipping the fsync buys; with ``--baseline-src``, Odradek
from another source tree too (before/after a change). All of them run at once, each in a fresh
directory, and one client process (confluent-kafka) takes turns: one record (or transaction) on each
broker, the first one rotating, while the others sit idle. A shared machine's load drifts; taking turns
makes it weigh on every broker alike, so the ratios of one run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/latency.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.side import percentiles, run_client, run_dirs  # noqa: E402 (after the path set-up above)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKERS = ("odradek", "kafka-flush", "kafka")
BASELINE = "odradek-baseline"  # with --baseline-src: Odradek run from another source tree, first
LINGERS_MS = (0, 1, 5, 10)
TOPIC = "bench-latency"
CLIENT_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------------------
# The client (a child process): prints one line ``RESULT {json}``


def _send_one(producer, linger_ms: int) -> float:
    """Produce one record and wait for its delivery report; returns the latency in ms."""
    done: list[int] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        done.append(time.perf_counter_ns())

    t0 = time.perf_counter_ns()
    producer.produce(TOPIC, b"x" * 100, partition=0, on_delivery=on_delivery)
    deadline = time.monotonic() + 30
    while not done:
        producer.poll(1.0)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no delivery report within 30 s (linger.ms={linger_ms})")
    return (done[0] - t0) / 1e6


def _commit_one(producer) -> float:
    """One transaction of one record; returns the time of commit_transaction() in ms."""
    producer.begin_transaction()
    producer.produce(TOPIC, b"t" * 100, partition=0)
    t0 = time.perf_counter_ns()
    producer.commit_transaction(30)
    return (time.perf_counter_ns() - t0) / 1e6


def _interleaved(producers: dict, step, count: int, warmup: int) -> dict[str, dict[str, float]]:
    """Run ``step`` on each broker's producer in turn (rotating who goes first), so that the load of a
    shared machine, which drifts, weighs on every broker alike; the others sit idle meanwhile."""
    names = list(producers)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + count):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            ms = step(producers[n])
            if i >= warmup:
                samples[n].append(ms)
    return {n: percentiles(samples[n]) for n in names}


def client_main(params: dict) -> int:
    from confluent_kafka import Producer

    brokers: dict[str, str] = params["brokers"]  # name -> bootstrap
    out: dict[str, dict[str, dict[str, float]]] = {n: {} for n in brokers}
    for linger in params["lingers"]:
        producers = {
            n: Producer(
                {
                    "bootstrap.servers": bs,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": linger,
                    "client.id": f"bench-latency-linger-{linger}",
                }
            )
            for n, bs in brokers.items()
        }
        figures = _interleaved(
            producers, lambda p, ln=linger: _send_one(p, ln), params["count"], params["warmup"]
        )
        for n, p in producers.items():
            p.flush(30)
            out[n][f"linger_{linger}"] = figures[n]
    txn = {
        n: Producer(
            {
                "bootstrap.servers": bs,
                "transactional.id": f"bench-latency-{n}-{time.time_ns()}",
                "linger.ms": 0,
                "client.id": "bench-latency-txn",
            }
        )
        for n, bs in brokers.items()
    }
    for p in txn.values():
        p.init_transactions(60)
    for n, figures in _interleaved(txn, _commit_one, params["txns"], params["warmup"]).items():
        out[n]["txn_commit"] = figures
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


def _broker(name: str, args: argparse.Namespace):
    from dataclasses import replace

    from bench.brokers import SPECS, RunningBroker

    if name == BASELINE:
        spec = replace(SPECS["odradek"], name=BASELINE, label=f"Odradek from {args.baseline_src}")
    else:
        spec = SPECS[name]
    work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-latency-{name}-", dir=args.work_dir))
    broker = RunningBroker(spec, work)
    if name == BASELINE:  # the same launcher, another source tree (an earlier commit, say)
        broker.proc.env["PYTHONPATH"] = str(args.baseline_src)  # type: ignore[union-attr]
    return broker, work


def run_all(names: list[str], args: argparse.Namespace, log_dir: Path) -> dict:
    """Start every broker, measure them all from one client that takes turns, stop them."""
    started: dict[str, object] = {}
    works: list[Path] = []
    entries: dict[str, dict] = {}
    try:
        for name in names:
            broker, work = _broker(name, args)
            works.append(work)
            spec = broker.spec
            entries[name] = {"label": spec.label, "durability": spec.durability}
            print(f"== {spec.label}: {spec.durability}", flush=True)
            broker.start()
            started[name] = broker
            _create_topic(broker.bootstrap)
        params = {
            "brokers": {n: b.bootstrap for n, b in started.items()},  # type: ignore[attr-defined]
            "lingers": args.lingers,
            "count": args.count,
            "txns": args.txns,
            "warmup": args.warmup,
        }
        print("   measuring (the brokers take turns, one record or transaction each)", flush=True)
        result = run_client("latency", params, log_dir / "client.stderr", CLIENT_TIMEOUT_S)
        if result is None:
            raise RuntimeError(f"the client failed; see {log_dir / 'client.stderr'}")
        for name, results in result.items():
            entries[name]["results"] = results
    finally:
        for name, broker in started.items():
            broker.stop()  # type: ignore[attr-defined]
            try:
                shutil.copy(broker.log_path, log_dir / f"{name}.broker.log")  # type: ignore[attr-defined]
            except OSError:
                pass
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
    return entries


def render(report: dict) -> str:
    names = [n for n in report["brokers"] if "results" in report["brokers"][n]]
    rows = [(f"linger_{ln}", f"acks=all idempotent, linger.ms={ln}") for ln in report["params"]["lingers"]]
    rows.append(("txn_commit", "commit_transaction (1 record)"))
    ratios = [
        (a, b) for a, b in (("odradek", "kafka-flush"), ("odradek", BASELINE)) if a in names and b in names
    ]
    head = (
        f"{'ms':<38}" + "".join(f"{n:>18}" for n in names) + "".join(f"{a + '/' + b:>26}" for a, b in ratios)
    )
    lines = [head, "-" * len(head)]
    for key, label in rows:
        for q in ("p50_ms", "p99_ms", "mean_ms"):
            cells = []
            for n in names:
                v = report["brokers"][n]["results"].get(key, {}).get(q)
                cells.append(f"{v:>18.2f}" if v is not None else f"{'-':>18}")
            line = f"{(label if q == 'p50_ms' else ''):<32}{q[:-3]:>6}" + "".join(cells)
            for a, b in ratios:
                va = report["brokers"][a]["results"][key][q]
                vb = report["brokers"][b]["results"][key][q]
                line += f"{va / vb:>26.2f}" if vb else f"{'-':>26}"
            lines.append(line)
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
    p.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also run Odradek from this src/ directory (e.g. of `git archive` of an earlier commit), as "
        "the column odradek-baseline: before/after in one run",
    )
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
    if args.baseline_src is not None:
        if not (args.baseline_src / "odradek" / "__init__.py").is_file():
            print(f"--baseline-src {args.baseline_src}: no odradek package there", file=sys.stderr)
            return 2
        brokers.insert(0, BASELINE)
    if unknown:
        print(f"unknown broker(s) {', '.join(unknown)}; choose from {', '.join(BROKERS)}", file=sys.stderr)
        return 2
    stamp, log_dir = run_dirs(args.results_dir, "latency")
    report: dict = {
        "bench": "latency",
        "started": stamp,
        "params": {
            **{k: getattr(args, k) for k in ("count", "txns", "warmup", "lingers")},
            "baseline_src": None if args.baseline_src is None else str(args.baseline_src),
        },
        "brokers": {},
    }
    try:
        report["brokers"] = run_all(brokers, args, log_dir)
    except Exception as e:
        report["error"] = f"{type(e).__name__}: {e}"
    out = args.results_dir / f"{stamp}-latency.json"
    out.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nresults: {out}")
    if "error" in report:
        print(f"ERROR {report['error']}", file=sys.stderr)
    return 0 if "error" not in report and all("results" in b for b in report["brokers"].values()) else 1


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
