"""Odradek vs Apache Kafka 4.4, side by side on this machine: ``python -m bench [--quick]``.

Starts each broker in turn (Odradek, Kafka with defaults, Kafka with log.flush.interval.messages=1) on
loopback in a fresh temporary directory, runs every workload against it with confluent-kafka clients in
separate processes, stops it, and finally prints one table (figures and ratios) and writes the same
data as JSON to ``bench/results/<timestamp>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.brokers import (
    COMMON_SETTINGS,
    KAFKA_HEAP,
    KAFKA_JVM_FLAGS,
    LIKE_FOR_LIKE,
    SPECS,
    RunningBroker,
    rss_mb,
)
from bench.workloads import FULL, QUICK, WORKLOADS, Context, Sizes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKER_ORDER = ["odradek", "kafka", "kafka-flush"]

# (workload, metric, row label, higher is better, format)
ROWS: list[tuple[str, str, str, bool, str]] = [
    (
        "produce_1k_acks_all_p1",
        "mb_per_s",
        "produce 1 KiB acks=all idempotent, 1 partition  MB/s",
        True,
        "{:.1f}",
    ),
    (
        "produce_1k_acks_all_p1",
        "msg_per_s",
        "                                                msg/s",
        True,
        "{:,.0f}",
    ),
    (
        "produce_1k_acks_all_p8",
        "mb_per_s",
        "produce 1 KiB acks=all idempotent, 8 partitions MB/s",
        True,
        "{:.1f}",
    ),
    (
        "produce_1k_acks_all_p8",
        "msg_per_s",
        "                                                msg/s",
        True,
        "{:,.0f}",
    ),
    (
        "produce_100b_acks1",
        "mb_per_s",
        "produce 100 B acks=1, 1 partition               MB/s",
        True,
        "{:.1f}",
    ),
    (
        "produce_100b_acks1",
        "msg_per_s",
        "                                                msg/s",
        True,
        "{:,.0f}",
    ),
    (
        "consume_from_start",
        "mb_per_s",
        "consume from start (1 KiB values)               MB/s",
        True,
        "{:.1f}",
    ),
    (
        "consume_from_start",
        "msg_per_s",
        "                                                msg/s",
        True,
        "{:,.0f}",
    ),
    ("produce_1k_txn_100", "mb_per_s", "produce 1 KiB in transactions of 100, 1 part.  MB/s", True, "{:.1f}"),
    (
        "produce_1k_txn_100",
        "txn_per_s",
        "                                                txn/s",
        True,
        "{:,.0f}",
    ),
    ("e2e_latency", "p50_ms", "end-to-end latency p50                          ms", False, "{:.2f}"),
    ("e2e_latency", "p99_ms", "end-to-end latency p99                          ms", False, "{:.2f}"),
    ("e2e_latency", "p999_ms", "end-to-end latency p99.9                        ms", False, "{:.2f}"),
    ("txn_copy_100", "msg_per_s", "txn consume-transform-produce, 100/txn         msg/s", True, "{:,.0f}"),
    ("txn_copy_1000", "msg_per_s", "txn consume-transform-produce, 1000/txn        msg/s", True, "{:,.0f}"),
    ("rebalance_4", "seconds", "rebalance, 4 members join                       s", False, "{:.3f}"),
    ("startup", "first_produce_s", "process start -> first acked produce            s", False, "{:.3f}"),
    ("memory", "idle_mb", "resident memory, idle                           MB", False, "{:.1f}"),
    ("memory", "load_peak_mb", "resident memory, peak under load                MB", False, "{:.1f}"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="run every workload briefly (CI: keeps the suite working)"
    )
    ap.add_argument(
        "--only",
        default="",
        help="brokers, comma-separated: odradek, odradek-uvloop (not in the default run), kafka (= both "
        "Kafka columns), kafka-default, kafka-flush",
    )
    ap.add_argument("--workloads", default="", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON and logs go")
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the brokers' data dirs (default: $TMPDIR)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the brokers' data dirs")
    args = ap.parse_args(argv)
    brokers: list[str] = []
    for item in filter(None, (x.strip() for x in args.only.split(","))):
        names = {"kafka": ["kafka", "kafka-flush"], "kafka-default": ["kafka"]}.get(item, [item])
        for n in names:
            if n not in SPECS:
                ap.error(f"--only: unknown broker {item!r}")
            if n not in brokers:
                brokers.append(n)
    order = [*BROKER_ORDER, *(n for n in SPECS if n not in BROKER_ORDER)]
    args.brokers = [b for b in order if b in brokers] if brokers else list(BROKER_ORDER)
    wl = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in wl:
        if w not in WORKLOADS:
            ap.error(f"--workloads: unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    args.workload_list = [w for w in WORKLOADS if w in wl] if wl else list(WORKLOADS)
    return args


def _versions() -> dict:
    import confluent_kafka

    java = ""
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30
        ).stderr.splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host_cpus": os.cpu_count(),
        "host_mem_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version(),
        "librdkafka": confluent_kafka.libversion()[0],
        "java": java,
    }


def _clean(value):
    """JSON-safe numbers (NaN/inf become None)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def run_broker(name: str, args: argparse.Namespace, sizes: Sizes, log_dir: Path) -> dict:
    spec = SPECS[name]
    entry: dict = {
        "label": spec.label,
        "durability": spec.durability,
        "settings": {**COMMON_SETTINGS, **spec.settings},
        "workloads": {},
    }
    if spec.kind == "kafka":
        entry["jvm"] = {"heap": KAFKA_HEAP, "flags": list(KAFKA_JVM_FLAGS)}
    results = entry["workloads"]
    work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-{name}-", dir=args.work_dir))
    broker: RunningBroker | None = None
    ctx: Context | None = None
    t_broker = time.monotonic()
    print(f"\n== {spec.label}: {spec.durability}", flush=True)
    try:
        try:
            broker = RunningBroker(spec, work)
        except Exception as e:
            entry["error"] = f"could not prepare the broker: {e}"
            for w in args.workload_list:
                results[w] = {"error": entry["error"]}
            return entry
        ctx = Context(broker, sizes, log_dir)
        # -- start-up (with a client already trying to produce) ------------------------------------
        prober = None
        if "startup" in args.workload_list:
            prober = ctx.client("first_produce", {"topic": "bench-startup", "timeout_s": 180}, "startup")
            try:
                prober.wait_ready(60)
            except Exception as e:
                results["startup"] = {"error": f"prober: {e}"}
                prober.close()
                prober = None
        t0 = time.monotonic_ns()
        try:
            ready_s = broker.start()
        except Exception as e:
            entry["error"] = f"broker did not start: {e}"
            for w in args.workload_list:
                results.setdefault(w, {"error": entry["error"]})
            return entry
        entry["pid"] = broker.pid
        if prober is not None:
            try:
                r = prober.result(180)
                results["startup"] = {
                    "metrics": {"first_produce_s": (r["delivered_ns"] - t0) / 1e9},
                    "details": {"launcher_ready_s": round(ready_s, 3)},
                    "params": {
                        "measure": "broker process launch -> first acks=all produce acknowledged, by a "
                        "client retrying from before the launch (topic auto-created)"
                    },
                }
            except Exception as e:
                results["startup"] = {"error": str(e)}
            finally:
                prober.close()
        print(f"   started in {ready_s:.2f}s (pid {broker.pid}, {broker.bootstrap})", flush=True)
        time.sleep(2.0)
        ctx.rss_idle_mb = rss_mb(broker.pid)
        # -- the workloads ------------------------------------------------------------------------
        for w in args.workload_list:
            fn = WORKLOADS[w]
            if fn is None:
                continue
            if not broker.running:
                results[w] = {"error": f"broker not running; log {broker.log_path}"}
                continue
            t = time.monotonic()
            print(f"   {w} ...", end="", flush=True)
            try:
                res = fn(ctx)
                res["duration_s"] = round(time.monotonic() - t, 1)
                results[w] = res
                shown = ", ".join(f"{k}={v:,.3g}" for k, v in res["metrics"].items())
                print(f" {shown}  ({res['duration_s']}s)", flush=True)
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
                if not broker.running:
                    err += f"\nbroker died; log {broker.log_path}"
                results[w] = {
                    "error": err,
                    "traceback": traceback.format_exc().splitlines()[-8:],
                    "duration_s": round(time.monotonic() - t, 1),
                }
                print(f" ERROR {err.splitlines()[0]}", flush=True)
            finally:
                ctx.close_clients()
        if not broker.running:
            entry["error"] = f"the broker exited during the run; log {broker.log_path}"
    finally:
        if ctx is not None:
            ctx.close()
        if broker is not None:
            code = broker.stop()
            entry["exit_code"] = code
            try:
                shutil.copy(broker.log_path, log_dir / f"{name}.broker.log")
            except OSError:
                pass
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        entry["total_s"] = round(time.monotonic() - t_broker, 1)
    return entry


def _metric(report: dict, broker: str, workload: str, metric: str) -> float | None:
    w = report["brokers"].get(broker, {}).get("workloads", {}).get(workload, {})
    v = w.get("metrics", {}).get(metric)
    return v if isinstance(v, int | float) else None


def render_table(report: dict) -> str:
    names = [
        b for b in [*BROKER_ORDER, *(n for n in SPECS if n not in BROKER_ORDER)] if b in report["brokers"]
    ]
    ratio_cols = []
    if "odradek" in names:
        for k in (LIKE_FOR_LIKE, "kafka"):
            if k in names:
                ratio_cols.append(k)
    header = ["metric", *names, *[f"odradek/{k}" for k in ratio_cols], "better"]
    lines = [header]
    for workload, metric, label, higher, fmt in ROWS:
        if workload not in report["workloads"]:
            continue
        row = [label]
        for b in names:
            v = _metric(report, b, workload, metric)
            err = report["brokers"][b]["workloads"].get(workload, {}).get("error")
            row.append(fmt.format(v) if v is not None else ("ERROR" if err else "-"))
        o = _metric(report, "odradek", workload, metric)
        for k in ratio_cols:
            kv = _metric(report, k, workload, metric)
            row.append(f"{o / kv:.2f}x" if o is not None and kv else "-")
        row.append("higher" if higher else "lower")
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = []
    for i, r in enumerate(lines):
        out.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("Columns and their durability:")
    for b in names:
        out.append(f"  {b:<12} {SPECS[b].label}: {SPECS[b].durability}")
    if any(SPECS[b].kind == "kafka" for b in names):
        out.append(
            f"  {'':<12} Kafka JVM: -Xmx{KAFKA_HEAP} {' '.join(KAFKA_JVM_FLAGS)} (as kafka-server-start.sh)"
        )
    out.append(
        f"Like-for-like durability: odradek vs {LIKE_FOR_LIKE} (both fsync before acknowledging acks=all); "
        "Kafka's defaults acknowledge from the page cache."
    )
    out.append(
        "Ratios are Odradek / Kafka; 'better' says whether a higher or lower figure is better. "
        "MB = 10^6 bytes."
    )
    errors = [
        (b, w, r["error"])
        for b in names
        for w, r in report["brokers"][b]["workloads"].items()
        if r.get("error")
    ]
    if errors:
        out.append("")
        out.append("Errors:")
        for b, w, e in errors:
            out.append(f"  {b} / {w}: {e.splitlines()[0]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log_dir = args.results_dir / f"{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "sizes": sizes.__dict__,
        "host": _versions(),
        "workloads": args.workload_list,
        "like_for_like": ["odradek", LIKE_FOR_LIKE],
        "logs": str(log_dir),
        "brokers": {},
    }
    t = time.monotonic()
    for name in args.brokers:
        report["brokers"][name] = run_broker(name, args, sizes, log_dir)
    report["total_s"] = round(time.monotonic() - t, 1)
    table = render_table(report)
    report["table"] = table
    path = args.results_dir / f"{stamp}.json"
    path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    print()
    print(table)
    print(f"\ntotal {report['total_s']}s; results: {path}")
    return 0


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
