"""Admin request latency beside Kafka: ``python -m bench.admin``.

What a tool waits for, one request at a time, through confluent-kafka's AdminClient:

* ``alter_topic``: IncrementalAlterConfigs SET of a topic's retention.ms (a new value each time; Odradek
  rewrites its topic metadata file with an fsync before answering);
* ``describe_topic``: DescribeConfigs of that topic (all 37 configs);
* ``delete_records``: DeleteRecords moving the log start one offset further (Odradek: fsync of the start
  before the answer);
* ``alter_broker``: IncrementalAlterConfigs SET of a per-broker dynamic config (log.retention.ms, a new
  value each time, every topic reconfigured).

Brokers are the ones of ``python -m bench`` (bench/brokers.py), started at once in fresh directories;
one client process takes turns between them (rotating who goes first), as bench/latency.py does, so the
ratios of one run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/admin.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.side import percentiles, run_client, run_dirs  # noqa: E402 (after the path set-up above)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKERS = ("odradek", "kafka")
TOPIC = "bench-admin"
OPS = ("alter_topic", "describe_topic", "delete_records", "alter_broker")
CLIENT_TIMEOUT_S = 600


class _Target:
    """One broker's admin client and the state the steps move forward."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
        self.node = str(self.admin.describe_cluster().result(30).nodes[0].id)
        self.i = 0
        self.start = 0

    def step(self, op: str) -> float:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        self.i += 1
        t0 = time.perf_counter_ns()
        if op == "alter_topic":
            entry = ConfigEntry(
                "retention.ms", str(3_600_000 + self.i), incremental_operation=AlterConfigOpType.SET
            )
            res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[entry])
            self.admin.incremental_alter_configs([res])[res].result(30)
        elif op == "describe_topic":
            res = ConfigResource(ResourceType.TOPIC, TOPIC)
            self.admin.describe_configs([res])[res].result(30)
        elif op == "delete_records":
            self.start += 1
            futures = self.admin.delete_records([TopicPartition(TOPIC, 0, self.start)])
            list(futures.values())[0].result(30)
        else:
            value = str(604_800_000 + self.i)
            entry = ConfigEntry("log.retention.ms", value, incremental_operation=AlterConfigOpType.SET)
            res = ConfigResource(ResourceType.BROKER, self.node, incremental_configs=[entry])
            self.admin.incremental_alter_configs([res])[res].result(30)
        return (time.perf_counter_ns() - t0) / 1e6

    def cleanup(self) -> None:
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        entry = ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
        res = ConfigResource(ResourceType.BROKER, self.node, incremental_configs=[entry])
        self.admin.incremental_alter_configs([res])[res].result(30)


def client_main(params: dict) -> int:
    targets = {n: _Target(bs) for n, bs in params["brokers"].items()}
    names = list(targets)
    out: dict[str, dict] = {n: {} for n in names}
    for op in OPS:
        samples: dict[str, list[float]] = {n: [] for n in names}
        for i in range(params["warmup"] + params["count"]):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                ms = targets[n].step(op)
                if i >= params["warmup"]:
                    samples[n].append(ms)
        for n in names:
            out[n][op] = percentiles(samples[n])
    for t in targets.values():
        t.cleanup()
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def _prepare(bootstrap: str, records: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    admin.create_topics([NewTopic(TOPIC, 1, 1)], operation_timeout=30)[TOPIC].result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values()):
            break
        time.sleep(0.05)
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i in range(records):
        p.produce(TOPIC, b"%d" % i, partition=0)
        p.poll(0)
    if p.flush(60):
        raise RuntimeError("records for DeleteRecords not all delivered")


def run_all(names: list[str], args: argparse.Namespace, log_dir: Path) -> dict:
    from bench.brokers import SPECS, RunningBroker

    started: dict[str, RunningBroker] = {}
    works: list[Path] = []
    entries: dict[str, dict] = {}
    try:
        for name in names:
            spec = SPECS[name]
            work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-admin-{name}-", dir=args.work_dir))
            works.append(work)
            broker = RunningBroker(spec, work)
            entries[name] = {"label": spec.label}
            print(f"== {spec.label}", flush=True)
            broker.start()
            started[name] = broker
            _prepare(broker.bootstrap, args.warmup + args.count + 10)
        params = {
            "brokers": {n: b.bootstrap for n, b in started.items()},
            "count": args.count,
            "warmup": args.warmup,
        }
        print("   measuring (the brokers take turns, one request each)", flush=True)
        result = run_client("admin", params, log_dir / "client.stderr", CLIENT_TIMEOUT_S)
        if result is None:
            raise RuntimeError(f"the client failed; see {log_dir / 'client.stderr'}")
        for name, results in result.items():
            entries[name]["results"] = results
    finally:
        for name, broker in started.items():
            broker.stop()
            try:
                shutil.copy(broker.log_path, log_dir / f"{name}.broker.log")
            except OSError:
                pass
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
    return entries


def render(report: dict) -> str:
    names = [n for n in report["brokers"] if "results" in report["brokers"][n]]
    ratio = ("odradek", "kafka") if {"odradek", "kafka"} <= set(names) else None
    head = f"{'ms':<24}" + "".join(f"{n:>12}" for n in names) + (f"{'odradek/kafka':>16}" if ratio else "")
    lines = [head, "-" * len(head)]
    for op in OPS:
        for q in ("p50_ms", "p99_ms", "mean_ms"):
            cells = "".join(f"{report['brokers'][n]['results'][op][q]:>12.2f}" for n in names)
            line = f"{(op if q == 'p50_ms' else ''):<18}{q[:-3]:>6}" + cells
            if ratio:
                a = report["brokers"]["odradek"]["results"][op][q]
                b = report["brokers"]["kafka"]["results"][op][q]
                line += f"{a / b:>16.2f}" if b else f"{'-':>16}"
            lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.admin", description=__doc__.splitlines()[0])
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--only", default=",".join(BROKERS), help=f"brokers, from {', '.join(BROKERS)}")
    p.add_argument("--count", type=int, default=200, help="requests measured per operation (default 200)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="30 requests per operation")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.client:
        return client_main(json.loads(args.client))
    if args.quick:
        args.count, args.warmup = 30, 3
    names = [b.strip() for b in args.only.split(",") if b.strip()]
    if any(n not in BROKERS for n in names):
        print(f"choose brokers from {', '.join(BROKERS)}", file=sys.stderr)
        return 2
    stamp, log_dir = run_dirs(args.results_dir, "admin")
    report: dict = {
        "bench": "admin",
        "started": stamp,
        "params": {"count": args.count, "warmup": args.warmup},
    }
    try:
        report["brokers"] = run_all(names, args, log_dir)
    except Exception as e:
        report["brokers"] = report.get("brokers", {})
        report["error"] = f"{type(e).__name__}: {e}"
    out = args.results_dir / f"{stamp}-admin.json"
    out.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nresults: {out}")
    if "error" in report:
        print(f"ERROR {report['error']}", file=sys.stderr)
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
