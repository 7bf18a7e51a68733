"""odradek.stream vs a hand-written loop vs Quix Streams, side by side: ``python -m bench.stream [--quick]``.

One Odradek broker (started as ``python -m bench`` starts it), one 3-partition input topic pre-filled
with N records, the same transform (``value.upper()``) into a fresh 3-partition output topic per row.
Every worker runs in its own process; a counting consumer (another process, read_committed) times the
outputs from the first to the last. Then, unless ``--no-recovery``: two workers of each kind under a
steady input rate, one SIGKILLed and restarted at once; time until every input partition's new records
come out again, and the duplicates. One table (figures and ratios) and ``bench/results/stream-*.json``.
See bench/README.md, section "Stream processing".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/stream.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.brokers import SPECS, RunningBroker, cpu_seconds
from bench.workloads import QUICK, Context

REPO = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).with_name("stream_client.py")
RESULTS_DIR = Path(__file__).resolve().parent / "results"

QUIX_VERSION = "3.28.1"  # pins confluent-kafka <2.13, so it gets a venv of its own
CACHE = Path(os.environ.get("ODRADEK_CACHE", Path.home() / ".cache" / "odradek"))
QUIX_VENV = CACHE / f"bench-quix-{QUIX_VERSION}-venv"

PARTITIONS = 3
RECOVERY_GIVE_UP_S = 90.0


@dataclass(frozen=True)
class Sizes:
    records: int
    value_bytes: int
    rounds: int
    recovery: bool
    rate: int  # records/s into the input during the recovery runs
    warmup_s: float  # steady flow before the kill


FULL = Sizes(records=200_000, value_bytes=150, rounds=3, recovery=True, rate=1000, warmup_s=5.0)
QUICK_SIZES = Sizes(records=20_000, value_bytes=150, rounds=1, recovery=False, rate=500, warmup_s=3.0)


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    role: str  # handwritten | odradek | quix
    guarantee: str = ""
    quix_python: bool = False  # run with the Quix venv's interpreter (its confluent-kafka)
    sqlite: bool = False
    params: dict = field(default_factory=dict)


# Commit cadence is the same for every row of one guarantee: 1 s under at-least-once (ours' default, the
# hand-written loop's), 100 ms under exactly-once (ours' default; Quix's own default is 5 s for both).
ROWS: list[Row] = [
    Row("handwritten", "hand-written confluent-kafka loop", "handwritten"),
    Row("odradek-amo", "odradek.stream at-most-once", "odradek", "at-most-once"),
    Row("odradek-alo", "odradek.stream at-least-once", "odradek", "at-least-once"),
    Row("odradek-eos", "odradek.stream exactly-once", "odradek", "exactly-once"),
    Row(
        "odradek-eos-sqlite",
        "odradek.stream exactly-once into SQLite",
        "odradek",
        "exactly-once",
        sqlite=True,
    ),
    Row(
        "handwritten-ck-quix",
        "hand-written loop on Quix's confluent-kafka",
        "handwritten",
        quix_python=True,
    ),
    Row(
        "quix-alo",
        "Quix Streams at-least-once",
        "quix",
        "at-least-once",
        True,
        params={"commit_interval_s": 1.0},
    ),
    Row(
        "quix-eos",
        "Quix Streams exactly-once",
        "quix",
        "exactly-once",
        True,
        params={"commit_interval_s": 0.1},
    ),
]

# (name, label, role, guarantee, quix, params)
RECOVERY: list[tuple[str, str, str, str, dict]] = [
    ("odradek-alo", "odradek.stream at-least-once (instance_id)", "odradek", "at-least-once", {}),
    ("odradek-eos", "odradek.stream exactly-once (instance_id)", "odradek", "exactly-once", {}),
    (
        "quix-alo",
        "Quix Streams at-least-once (defaults)",
        "quix",
        "at-least-once",
        {"commit_interval_s": 1.0},
    ),
    ("quix-eos", "Quix Streams exactly-once (defaults)", "quix", "exactly-once", {"commit_interval_s": 0.1}),
    (
        "quix-alo-static",
        "Quix Streams at-least-once + group.instance.id",
        "quix",
        "at-least-once",
        {"commit_interval_s": 1.0, "static": True},
    ),
    (
        "quix-eos-static",
        "Quix Streams exactly-once + group.instance.id, fixed transactional.id",
        "quix",
        "exactly-once",
        {"commit_interval_s": 0.1, "static": True},
    ),
]

# (numerator, denominator, target, what)
RATIOS: list[tuple[str, str, float, str]] = [
    ("odradek-alo", "handwritten", 0.9, "at-least-once / hand-written"),
    ("odradek-amo", "handwritten", 0.0, "at-most-once / hand-written"),
    ("odradek-eos", "odradek-alo", 0.8, "exactly-once / our at-least-once"),
    ("odradek-eos-sqlite", "odradek-eos", 0.0, "exactly-once into SQLite / exactly-once (Kafka)"),
    ("odradek-alo", "quix-alo", 1.0, "ours / Quix, at-least-once"),
    ("odradek-eos", "quix-eos", 1.0, "ours / Quix, exactly-once"),
    ("quix-alo", "handwritten-ck-quix", 0.0, "Quix at-least-once / hand-written on its confluent-kafka"),
    ("handwritten-ck-quix", "handwritten", 0.0, "hand-written: Quix's confluent-kafka / ours"),
]


# --------------------------------------------------------------------------------------------------
# processes


class Proc:
    """``python bench/stream_client.py ROLE PARAMS``: stdin for commands, stdout lines read by a thread."""

    def __init__(self, python: str, role: str, params: dict, log_path: Path) -> None:
        self.role = role
        self.log_path = log_path
        self._err = open(log_path, "a")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [python, str(CLIENT), role, json.dumps(params)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.result_: dict | None = None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        """The next line starting with ``prefix`` (RESULT lines are kept); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                if prefix == "RESULT " and self.result_ is not None:
                    return "RESULT " + json.dumps(self.result_)
                raise RuntimeError(
                    f"{self.role}: exited ({self.proc.wait()}) waiting for {prefix.strip()}; "
                    f"log {self.log_path}:\n{self.tail()}"
                )
            if line.startswith("RESULT "):
                self.result_ = json.loads(line[7:])
            if line.startswith(prefix):
                return line

    def result(self, timeout: float) -> dict:
        line = self.wait_for("RESULT ", timeout)
        if line is None:
            raise RuntimeError(
                f"{self.role}: no result within {timeout:.0f}s; log {self.log_path}:\n{self.tail()}"
            )
        return json.loads(line[7:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, n: int = 20) -> str:
        self._err.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def close(self) -> None:
        self.kill()
        self._err.close()


# --------------------------------------------------------------------------------------------------
# Quix Streams in a venv of its own


def quix_python() -> str:
    """The Quix venv's interpreter, made (``pip install quixstreams==QUIX_VERSION``) on first use."""
    py = QUIX_VENV / "bin" / "python"
    check = [str(py), "-c", f"import quixstreams as q; assert q.__version__ == {QUIX_VERSION!r}"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(py)
    print(f"   installing quixstreams=={QUIX_VERSION} into {QUIX_VENV} ...", flush=True)
    shutil.rmtree(QUIX_VENV, ignore_errors=True)
    QUIX_VENV.parent.mkdir(parents=True, exist_ok=True)
    tmp = QUIX_VENV.with_name(QUIX_VENV.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    subprocess.run(
        [
            str(tmp / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"quixstreams=={QUIX_VERSION}",
            "-c",
            str(Path(__file__).resolve().parent / "quix-constraints.txt"),
        ],
        check=True,
        timeout=900,
    )
    try:
        tmp.rename(QUIX_VENV)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    # venv scripts carry the tmp path in their shebangs; only `bin/python` (a symlink) is used here.
    if subprocess.run(check, capture_output=True).returncode != 0:
        raise RuntimeError(f"quixstreams=={QUIX_VERSION} did not install into {QUIX_VENV}")
    return str(py)


def _versions(qpy: str | None) -> dict:
    import confluent_kafka

    out = {
        "host_cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version(),
        "librdkafka": confluent_kafka.libversion()[0],
    }
    try:
        import sqlalchemy

        out["sqlalchemy"] = sqlalchemy.__version__
    except ImportError:
        pass
    if qpy:
        r = subprocess.run(
            [
                qpy,
                "-c",
                "import quixstreams as q, confluent_kafka as c; "
                "print(q.__version__, c.version(), c.libversion()[0])",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            q, ck, lib = r.stdout.split()
            out.update({"quixstreams": q, "quix_confluent_kafka": ck, "quix_librdkafka": lib})
    return out


def sql_available() -> str | None:
    """None if odradek.stream.sql has a SqlSink to use, else why not."""
    try:
        from odradek.stream.sql import SqlSink  # noqa: F401
    except Exception as e:  # not written yet, or SQLAlchemy missing
        return f"odradek.stream.sql unavailable: {type(e).__name__}: {e}"
    return None


# --------------------------------------------------------------------------------------------------
# the run


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, log_dir: Path, work: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.log_dir = log_dir
        self.work = work
        self.qpy: str | None = None
        self.broker = RunningBroker(SPECS["odradek"], work / "broker")
        self.ctx: Context | None = None
        self.procs: list[Proc] = []

    def proc(self, role: str, params: dict, name: str, quix: bool = False) -> Proc:
        python = self.qpy if quix else sys.executable
        assert python is not None
        p = Proc(python, role, {"bootstrap": self.broker.bootstrap, **params}, self.log_dir / f"{name}.log")
        self.procs.append(p)
        return p

    def close_procs(self) -> None:
        for p in self.procs:
            p.close()
        self.procs.clear()

    def worker_params(
        self, role: str, guarantee: str, group: str, source: str, sink: str, extra: dict
    ) -> dict:
        params: dict = {"group": group, "source": source, "sink": sink}
        if role in ("odradek", "quix"):
            params["guarantee"] = guarantee
        if role == "quix":
            params["commit_interval_s"] = extra.get("commit_interval_s", 1.0)
            params["state_dir"] = str(self.work / f"quix-state-{group}")
        return params

    # -- throughput --------------------------------------------------------------------------------
    def throughput(self, row: Row, rnd: int) -> dict:
        assert self.ctx is not None
        s = self.sizes
        tag = f"{row.name}-r{rnd}"
        out = f"out-{tag}"
        group = f"g-{tag}"
        params = self.worker_params(row.role, row.guarantee, group, "in", out, row.params)
        timeout = 120 + s.records / 500
        if row.sqlite:
            db = self.work / f"{tag}.db"
            out = params["sink"] = out.replace("-", "_")  # the table
            params["sqlite"] = str(db)
            counter = self.proc(
                "count_sql",
                {"path": str(db), "table": out, "expected": s.records, "timeout_s": timeout},
                f"{tag}.count",
            )
        else:
            self.ctx.create_topic(out, PARTITIONS)
            counter = self.proc(
                "count",
                {"topic": out, "input_partitions": PARTITIONS, "expected": s.records, "timeout_s": timeout},
                f"{tag}.count",
            )
        if row.role == "odradek" and self.args.profile == row.name:
            params["profile"] = str(self.log_dir / f"{tag}.prof")
        if counter.wait_for("READY", 60) is None:
            raise RuntimeError(f"counter not ready; log {counter.log_path}")
        worker = self.proc(row.role, params, f"{tag}.worker", quix=row.quix_python)
        cpu_w0 = cpu_b0 = 0.0
        try:
            if worker.wait_for("READY", 120) is None:
                raise RuntimeError(f"worker not ready; log {worker.log_path}")
            cpu_b0 = cpu_seconds(self.broker.pid)
            cpu_w0 = cpu_seconds(worker.pid)
            deadline = time.monotonic() + timeout + 30
            while (line := counter.wait_for("RESULT ", 1.0)) is None:
                if not worker.alive:
                    raise RuntimeError(f"worker exited ({worker.proc.returncode}); log {worker.log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"outputs incomplete after {timeout:.0f}s; log {counter.log_path}")
            res = json.loads(line[7:])
            cpu_w = cpu_seconds(worker.pid) - cpu_w0 if worker.alive else None
            cpu_b = cpu_seconds(self.broker.pid) - cpu_b0
        finally:
            code = worker.terminate(30)
            counter.close()
            worker.close()
            if not row.sqlite:  # every row starts with the same topics on the broker
                self.delete_topic(out)
        if res["missing"]:
            raise RuntimeError(f"{res['missing']} of {s.records} outputs missing; log {worker.log_path}")
        secs = (res["last_ns"] - res["first_ns"]) / 1e9
        if secs <= 0:
            raise RuntimeError(f"no time between first and last output: {res}")
        return {
            "msg_per_s": s.records / secs,
            "seconds": secs,
            "outputs": res["total"],
            "distinct": res["distinct"],
            "duplicates": res["duplicates"],
            "worker_cpu_s": cpu_w,
            "worker_cpu_us_per_msg": cpu_w / s.records * 1e6 if cpu_w else None,
            "broker_cpu_s": round(cpu_b, 2),
            "worker_exit_code": code,
        }

    def delete_topic(self, name: str) -> None:
        assert self.ctx is not None
        try:
            self.ctx.admin().delete_topics([name], operation_timeout=30)[name].result(60)
        except Exception as e:  # not fatal: the next row only finds one more topic
            print(f" (deleting {name}: {e})", end="", flush=True)

    # -- recovery after SIGKILL ----------------------------------------------------------------------
    def recovery(self, name: str, role: str, guarantee: str, extra: dict) -> dict:
        assert self.ctx is not None
        s = self.sizes
        src, out, group = f"rin-{name}", f"rout-{name}", f"rg-{name}"
        self.ctx.create_topic(src, PARTITIONS)
        self.ctx.create_topic(out, PARTITIONS)
        quix = role == "quix"
        base = self.worker_params(role, guarantee, group, src, out, extra)

        def start(i: int, n: int) -> Proc:
            params = dict(base)
            if role == "odradek" or extra.get("static"):
                params["instance_id"] = f"w{i}"
            if quix:
                params["state_dir"] = str(self.work / f"quix-state-{group}-w{i}-{n}")
            return self.proc(role, params, f"recovery-{name}.w{i}.{n}", quix=quix)

        counter = self.proc(
            "count",
            {"topic": out, "input_partitions": PARTITIONS, "timeout_s": 600, "drain_s": 60},
            f"recovery-{name}.count",
        )
        counter.wait_for("READY", 60)
        producer = self.proc(
            "rate",
            {"topic": src, "partitions": PARTITIONS, "value_bytes": s.value_bytes, "rate": s.rate},
            f"recovery-{name}.rate",
        )
        producer.wait_for("READY", 60)
        w1, w2 = start(1, 0), start(2, 0)
        try:
            for w in (w1, w2):
                if w.wait_for("READY", 120) is None:
                    raise RuntimeError(f"worker not ready; log {w.log_path}")
            # Steady: every input partition's outputs flowing (arrived within 0.5 s) for warmup_s.
            steady_since = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                counter.send("STATUS")
                line = counter.wait_for("STATUS", 10)
                ages = json.loads(line[7:])["ages_s"] if line else [None]
                if all(a is not None and a < 0.5 for a in ages):
                    steady_since = steady_since or time.monotonic()
                    if time.monotonic() - steady_since >= s.warmup_s:
                        break
                else:
                    steady_since = None
                time.sleep(0.2)
            else:
                raise RuntimeError("outputs never flowed steadily on every partition")
            kill_ns = time.monotonic_ns()
            os.kill(w1.pid, signal.SIGKILL)
            w1.proc.wait(10)
            counter.send(f"KILL {kill_ns}")
            w1b = start(1, 1)
            ev = counter.wait_for("EVENT ", RECOVERY_GIVE_UP_S)
            recovered_s = (json.loads(ev[6:])["recovered_ns"] - kill_ns) / 1e9 if ev else None
            time.sleep(1.0)
            producer.send("STOP")
            produced = producer.result(60)
            counter.send(f"DRAIN {produced['produced']}")
            res = counter.result(120)
            w1b.terminate(30)
            w2.terminate(30)
            for t in (src, out):
                self.delete_topic(t)
        finally:
            for p in list(self.procs):
                p.close()
            self.procs.clear()
        return {
            "recovery_s": recovered_s,
            "gave_up": recovered_s is None,
            "per_partition_s": {q: (t - kill_ns) / 1e9 for q, t in res["recovered_ns"].items()},
            "produced": produced["produced"],
            "outputs": res["total"],
            "duplicates": res["duplicates"],
            "missing": res["missing"],
        }

    # -- everything ----------------------------------------------------------------------------------
    def run(self) -> dict:
        args, s = self.args, self.sizes
        report: dict = {"rows": {}, "recovery": {}, "skipped": {}}
        rows = [r for r in ROWS if not args.rows or r.name in args.rows]
        need_quix = any(r.quix_python for r in rows) or (s.recovery and not args.no_quix)
        if args.no_quix:
            for r in rows:
                if r.quix_python:
                    report["skipped"][r.name] = "--no-quix"
            rows = [r for r in rows if not r.quix_python]
        elif need_quix:
            try:
                self.qpy = quix_python()
            except Exception as e:
                for r in rows:
                    if r.quix_python:
                        report["skipped"][r.name] = f"Quix Streams unavailable: {e}"
                rows = [r for r in rows if not r.quix_python]
        why = sql_available()
        if why:
            for r in rows:
                if r.sqlite:
                    report["skipped"][r.name] = why
            rows = [r for r in rows if not r.sqlite]
        report["host"] = _versions(self.qpy)
        self.broker.start()
        print(f"   broker pid {self.broker.pid} on {self.broker.bootstrap}", flush=True)
        self.ctx = Context(self.broker, QUICK, self.log_dir)
        try:
            self.ctx.create_topic("in", PARTITIONS)
            fill = self.proc(
                "fill",
                {
                    "topic": "in",
                    "partitions": PARTITIONS,
                    "messages": s.records,
                    "value_bytes": s.value_bytes,
                },
                "fill",
            )
            r = fill.result(900)
            fill.close()
            if r["failed"] or r["unflushed"]:
                raise RuntimeError(f"filling the input: {r}")
            print(
                f"   input: {s.records:,} records of {s.value_bytes} B in {r['elapsed_s']:.1f}s", flush=True
            )
            for rnd in range(s.rounds):
                order = rows if rnd % 2 == 0 else list(reversed(rows))  # drift hits both ends alike
                for row in order:
                    entry = report["rows"].setdefault(
                        row.name, {"label": row.label, "guarantee": row.guarantee, "rounds": []}
                    )
                    print(f"   [{rnd + 1}/{s.rounds}] {row.label} ...", end="", flush=True)
                    t = time.monotonic()
                    try:
                        res = self.throughput(row, rnd)
                        entry["rounds"].append(res)
                        print(f" {res['msg_per_s']:,.0f} msg/s  ({time.monotonic() - t:.1f}s)", flush=True)
                    except Exception as e:
                        entry["rounds"].append(
                            {
                                "error": f"{type(e).__name__}: {e}",
                                "traceback": traceback.format_exc().splitlines()[-6:],
                            }
                        )
                        print(f" ERROR {str(e).splitlines()[0]}", flush=True)
                    finally:
                        self.close_procs()
            for entry in report["rows"].values():
                ok = [x["msg_per_s"] for x in entry["rounds"] if "msg_per_s" in x]
                entry["msg_per_s"] = statistics.median(ok) if ok and len(ok) == len(entry["rounds"]) else None
                cpu = [x["worker_cpu_us_per_msg"] for x in entry["rounds"] if x.get("worker_cpu_us_per_msg")]
                entry["worker_cpu_us_per_msg"] = statistics.median(cpu) if cpu else None
                entry["duplicates"] = sum(x.get("duplicates", 0) for x in entry["rounds"])
            if s.recovery and not args.no_recovery:
                for name, label, role, g, extra in RECOVERY:
                    if role == "quix" and self.qpy is None:
                        report["skipped"][f"recovery {name}"] = "Quix Streams unavailable"
                        continue
                    print(f"   recovery: {label} ...", end="", flush=True)
                    t = time.monotonic()
                    try:
                        res = self.recovery(name, role, g, extra)
                        shown = f"{res['recovery_s']:.2f}s" if res["recovery_s"] is not None else "gave up"
                        print(
                            f" {shown}, {res['duplicates']} duplicates ({time.monotonic() - t:.0f}s)",
                            flush=True,
                        )
                    except Exception as e:
                        res = {"error": f"{type(e).__name__}: {e}"}
                        print(f" ERROR {str(e).splitlines()[0]}", flush=True)
                    res.update({"label": label, "guarantee": g})
                    report["recovery"][name] = res
        finally:
            self.close_procs()
            self.ctx.close()
            report["broker_exit_code"] = self.broker.stop()
            try:
                shutil.copy(self.broker.log_path, self.log_dir / "broker.log")
            except OSError:
                pass
        return report


# --------------------------------------------------------------------------------------------------
# output


def ratio(report: dict, a: str, b: str) -> float | None:
    x = report["rows"].get(a, {}).get("msg_per_s")
    y = report["rows"].get(b, {}).get("msg_per_s")
    return x / y if x and y else None


def render(report: dict) -> str:
    out = []
    rows = [["row", "msg/s (median)", "rounds", "worker CPU us/msg", "dups"]]
    for r in report["rows"].values():
        each = " ".join(f"{x['msg_per_s']:,.0f}" if "msg_per_s" in x else "ERROR" for x in r["rounds"])
        rate = f"{r['msg_per_s']:,.0f}" if r.get("msg_per_s") else "ERROR"
        cpu = f"{r['worker_cpu_us_per_msg']:.1f}" if r.get("worker_cpu_us_per_msg") else "-"
        rows.append([r["label"], rate, each, cpu, str(r.get("duplicates", 0))])
    out += _table(rows)
    out.append("")
    rrows = [["ratio", "value", "target", ""]]
    for a, b, target, what in RATIOS:
        v = ratio(report, a, b)
        if v is None:
            continue
        verdict = ("met" if v >= target else "NOT met") if target else ""
        rrows.append([what, f"{v:.2f}x", f">= {target:.1f}" if target else "-", verdict])
    if len(rrows) > 1:
        out += _table(rrows)
    if report["recovery"]:
        out.append("")
        rec = [["after SIGKILL + restart of 1 of 2 workers", "recovered in", "duplicates", "missing"]]
        for r in report["recovery"].values():
            if "error" in r:
                rec.append([r["label"], "ERROR", "-", "-"])
                continue
            t = f"{r['recovery_s']:.2f} s" if r["recovery_s"] is not None else f"> {RECOVERY_GIVE_UP_S:.0f} s"
            rec.append([r["label"], t, f"{r['duplicates']:,}", f"{r['missing']:,}"])
        out += _table(rec)
    out.append("")
    out.append(
        f"Same broker (Odradek), same {report['sizes']['records']:,} input records of "
        f"{report['sizes']['value_bytes']} B on {PARTITIONS} partitions, same transform (value.upper()), a "
        "fresh 3-partition output topic per row; throughput = records / (last output - first output) as "
        "read back by a read_committed consumer in another process. Commit cadence: 1 s at-least-once, "
        "100 ms exactly-once, for every library."
    )
    if report["skipped"]:
        out.append("Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()))
    errors = [
        f"{r['label']}: {x['error'].splitlines()[0]}"
        for r in report["rows"].values()
        for x in r["rounds"]
        if "error" in x
    ] + [
        f"recovery {r['label']}: {r['error'].splitlines()[0]}"
        for r in report["recovery"].values()
        if "error" in r
    ]
    if errors:
        out.append("Errors:")
        out += [f"  {e}" for e in errors]
    return "\n".join(out)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def profile_summary(path: Path, top: int = 15) -> list[str]:
    """Top functions by own time, and app.py's, of a cProfile dump."""
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(str(path), stream=buf)
    st.sort_stats("tottime").print_stats(top)
    buf.write("\n--- odradek/stream only, by cumulative time ---\n")
    st.sort_stats("cumulative").print_stats("odradek/stream", top)
    return buf.getvalue().splitlines()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k records, one round, no recovery (CI)")
    ap.add_argument("--records", type=int, default=0, help="input records (default 200k; quick 20k)")
    ap.add_argument("--rounds", type=int, default=0, help="rounds of every row (default 3; quick 1)")
    ap.add_argument(
        "--rows", default="", help=f"comma-separated subset of: {', '.join(r.name for r in ROWS)}"
    )
    ap.add_argument("--no-quix", action="store_true", help="leave out the Quix Streams rows")
    ap.add_argument("--no-recovery", action="store_true", help="leave out the SIGKILL recovery runs")
    ap.add_argument("--recovery", action="store_true", help="run the recovery runs in quick mode too")
    ap.add_argument("--profile", default="", help="run this odradek row under cProfile (e.g. odradek-alo)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the temporary data (default $TMPDIR)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the broker's data and the SQLite files")
    args = ap.parse_args(argv)
    known = {r.name for r in ROWS}
    args.rows = [x.strip() for x in args.rows.split(",") if x.strip()]
    for x in args.rows:
        if x not in known:
            ap.error(f"--rows: unknown row {x!r}")
    if args.profile and args.profile not in known:
        ap.error(f"--profile: unknown row {args.profile!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK_SIZES if args.quick else FULL
    sizes = Sizes(
        records=args.records or base.records,
        value_bytes=base.value_bytes,
        rounds=args.rounds or base.rounds,
        recovery=(base.recovery or args.recovery) and not args.no_recovery,
        rate=base.rate,
        warmup_s=base.warmup_s,
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log_dir = args.results_dir / f"stream-{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="odradek-bench-stream-", dir=args.work_dir))
    t = time.monotonic()
    started = dt.datetime.now().isoformat(timespec="seconds")
    print(f"== odradek.stream benchmark ({'quick' if args.quick else 'full'}): {sizes}", flush=True)
    try:
        report = Bench(args, sizes, log_dir, work).run()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report.update(
        {
            "started": started,
            "command": " ".join(["python -m bench.stream", *(argv if argv is not None else sys.argv[1:])]),
            "mode": "quick" if args.quick else "full",
            "sizes": sizes.__dict__,
            "quix_version": QUIX_VERSION,
            "logs": str(log_dir),
            "total_s": round(time.monotonic() - t, 1),
        }
    )
    report["ratios"] = {
        what: {"value": ratio(report, a, b), "target": target or None, "of": [a, b]}
        for a, b, target, what in RATIOS
    }
    table = render(report)
    report["table"] = table
    if args.profile:
        prof = sorted(log_dir.glob(f"{args.profile}-r*.prof"))
        if prof:
            report["profile"] = profile_summary(prof[0])
    path = args.results_dir / f"stream-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(table)
    if report.get("profile"):
        print("\nprofile of " + args.profile + ":\n" + "\n".join(report["profile"]))
    print(f"\ntotal {report['total_s']}s; results: {path}")
    return 0


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
