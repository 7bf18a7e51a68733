"""Throughput over TLS beside Apache Kafka over TLS: ``python -m bench.tls [--quick]``.

The brokers (those of ``python -m bench``, bench/brokers.py) run at once, each in a fresh directory, and
are measured one at a time, the rounds alternating between them (so a shared host that speeds up or
slows down during the run weighs on both alike; the broker not being measured sits idle). Each has two
listeners: PLAINTEXT and SSL (``ssl.client.auth=none``, a PEM keystore made by tests/support/certs.py: EC
P-256 server key, a test CA the clients trust). The like-for-like pair is
``odradek`` against ``kafka-flush`` (Kafka fsyncing every appended batch, as Odradek does for acks=all);
``kafka`` (defaults) may be added with ``--only``. Every workload runs over both listeners of the same
broker, alternating, so the plaintext figures of the same run are there for reference:

* ``produce_1k_acks_all``: 1 KiB values, acks=all, idempotent, 1 partition, for a fixed time;
* ``produce_1k_acks1``: 1 KiB values, acks=1, 1 partition (no fsync wait: the wire and the CPU);
* ``consume``: a 1-partition topic of 1 KiB values read from offset 0 (first record to last).

The client is confluent-kafka (librdkafka) through bench/client.py, in its own process; with
``--clients confluent,kafka-python`` the same workloads also run with kafka-python (pure Python: its
figures are mostly the client's own speed). Reported per row: MB/s (10^6 bytes), records/s, broker CPU
seconds per 100 MB moved, and the ratios Odradek/Kafka and SSL/PLAINTEXT. Medians of ``--rounds``.
The negotiated TLS version and cipher of each broker's SSL listener are recorded too (a Python client's
handshake), since the cipher decides much of the cost.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/tls.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.side import run_client, run_dirs  # noqa: E402 (after the path set-up above)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKERS = ("odradek", "kafka-flush", "kafka")
DEFAULT_BROKERS = ("odradek", "kafka-flush")
LIKE_FOR_LIKE = "kafka-flush"
PROTOCOLS = ("PLAINTEXT", "SSL")
CLIENTS = ("confluent", "kafka-python")
KIB = 1024
CLIENT_TIMEOUT_S = 900

# (name, label, producer settings); consume is its own row.
PRODUCE_ROWS: tuple[tuple[str, str, dict], ...] = (
    (
        "produce_1k_acks_all",
        "produce 1 KiB acks=all idempotent, 1 partition",
        {"acks": "all", "idempotent": True},
    ),
    ("produce_1k_acks1", "produce 1 KiB acks=1, 1 partition", {"acks": "1", "idempotent": False}),
)
WORKLOADS = tuple(name for name, _, _ in PRODUCE_ROWS) + ("consume",)
LABELS = {name: label for name, label, _ in PRODUCE_ROWS} | {"consume": "consume from start, 1 KiB values"}


# --------------------------------------------------------------------------------------------------
# Client settings per protocol


def confluent_conf(protocol: str, ca_file: str) -> dict:
    if protocol == "PLAINTEXT":
        return {}
    return {"security.protocol": "SSL", "ssl.ca.location": ca_file}


def producer_conf(settings: dict) -> dict:
    return {"acks": settings["acks"], "enable.idempotence": settings["idempotent"]}


# --------------------------------------------------------------------------------------------------
# The kafka-python client (a child process): prints one line ``RESULT {json}``


def _kafka_python_common(params: dict) -> dict:
    conf: dict = {"bootstrap_servers": params["bootstrap"], "client_id": "bench-tls"}
    if params["protocol"] == "SSL":
        conf["security_protocol"] = "SSL"
        conf["ssl_context"] = ssl.create_default_context(cafile=params["ca_file"])
    return conf


def kafka_python_produce(params: dict) -> dict:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        **_kafka_python_common(params),
        acks="all" if params["acks"] == "all" else 1,
        enable_idempotence=params["idempotent"],
        linger_ms=5,
        batch_size=1 << 20,
    )
    topic, size = params["topic"], int(params["value_bytes"])
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    producer.partitions_for(topic)  # connect and learn the topic before the clock starts
    failed: list[str] = []

    def on_error(exc: BaseException) -> None:
        if len(failed) < 20:
            failed.append(repr(exc))

    sent = 0
    t0 = time.monotonic()
    deadline = t0 + float(params["seconds"])
    while (sent & 255) != 0 or time.monotonic() < deadline:
        producer.send(topic, value, partition=0).add_errback(on_error)
        sent += 1
    producer.flush(300)
    elapsed = time.monotonic() - t0
    producer.close(10)
    acked = sent - len(failed)
    return {
        "sent": sent,
        "acked": acked,
        "failed": len(failed),
        "unflushed": 0,
        "errors": failed,
        "elapsed_s": elapsed,
        "msg_per_s": acked / elapsed,
        "mb_per_s": acked * size / elapsed / 1e6,
    }


def kafka_python_consume(params: dict) -> dict:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **_kafka_python_common(params),
        enable_auto_commit=False,
        max_partition_fetch_bytes=1 << 20,
        fetch_max_bytes=50 << 20,
    )
    tp = TopicPartition(params["topic"], 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    expected, size = int(params["messages"]), int(params["value_bytes"])
    got = 0
    t0 = time.monotonic()
    t_first = None
    deadline = t0 + float(params.get("timeout_s", 600))
    while got < expected and time.monotonic() < deadline:
        batches = consumer.poll(timeout_ms=500, max_records=10_000)
        for records in batches.values():
            if t_first is None:
                t_first = time.monotonic()
            got += len(records)
    t_end = time.monotonic()
    consumer.close()
    if got < expected or t_first is None:
        raise SystemExit(f"consumed {got} of {expected} records in {t_end - t0:.1f}s")
    read_s = max(1e-9, t_end - t_first)
    return {
        "consumed": got,
        "read_s": read_s,
        "msg_per_s": got / read_s,
        "mb_per_s": got * size / read_s / 1e6,
    }


def client_main(params: dict) -> int:
    role = {"produce": kafka_python_produce, "consume": kafka_python_consume}[params["role"]]
    print("RESULT " + json.dumps(role(params)), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# Brokers with a PLAINTEXT and an SSL listener


def _tls_settings(certs) -> dict[str, str]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.server.bundle),
        "ssl.client.auth": "none",
    }


def start_broker(name: str, work: Path, certs):
    """A bench/brokers.py broker with an SSL listener beside its PLAINTEXT one: (broker, SSL port).

    The launcher picks the PLAINTEXT port (and Kafka's controller port) when it is made; the listeners
    are added to its settings before it starts, so the PLAINTEXT port stays the one it probes."""
    from bench.brokers import SPECS, RunningBroker
    from support.net import free_port

    broker = RunningBroker(SPECS[name], work)
    ssl_port = free_port()
    while ssl_port == broker.port:
        ssl_port = free_port()
    settings = _tls_settings(certs)
    if broker.spec.kind == "kafka":
        controller = broker.proc.controller_port
        settings |= {
            "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},SSL://127.0.0.1:{ssl_port},"
            f"CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port},SSL://127.0.0.1:{ssl_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        }
    else:
        settings |= {
            "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},SSL://127.0.0.1:{ssl_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL",
        }
    broker.proc.settings.update(settings)
    broker.start()
    return broker, ssl_port


def tls_session(port: int, ca_file: str, timeout_s: float = 30.0) -> dict:
    """The TLS version and cipher a Python client negotiates with the listener on ``port``."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            name, version, bits = tls.cipher() or ("?", "?", 0)
            return {"version": tls.version(), "cipher": name, "bits": bits}


# --------------------------------------------------------------------------------------------------
# One broker: every workload over both listeners, rounds interleaved


class Runner:
    def __init__(self, name: str, args: argparse.Namespace, log_dir: Path, certs) -> None:
        self.name = name
        self.args = args
        self.log_dir = log_dir
        self.certs = certs
        self.ca_file = str(certs.ca_file)
        self.runs: dict[str, list[dict]] = {}  # row key -> one result per recorded round
        self.out: dict = {}
        self.work: Path | None = None
        self.broker = None
        self.ctx = None

    def start(self) -> None:
        """Start the broker, note its TLS session and make the topics and data its rows need."""
        from bench.brokers import SPECS
        from bench.workloads import QUICK, Context

        spec = SPECS[self.name]
        self.work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-tls-{self.name}-", dir=self.args.work_dir))
        self.out = {"label": spec.label, "durability": spec.durability, "settings": spec.settings}
        self.broker, ssl_port = start_broker(self.name, self.work, self.certs)
        self.bootstrap = {"PLAINTEXT": self.broker.bootstrap, "SSL": f"127.0.0.1:{ssl_port}"}
        self.ctx = Context(self.broker, QUICK, self.log_dir)
        self.out["tls"] = tls_session(ssl_port, self.ca_file)
        print(
            f"== {spec.label}: SSL listener {self.out['tls']['version']} {self.out['tls']['cipher']}",
            flush=True,
        )
        if "consume" in self.args.workloads:
            self.ctx.ensure_data(self.args.consume_messages)
        for name, _, _ in PRODUCE_ROWS:
            self.ctx.create_topic(f"bench-tls-{name}", 1)

    def round(self, round_: int) -> None:
        """Every row once, over both listeners, alternating which goes first from round to round. Round
        -1 is the warm-up: every row for ``--warmup-seconds``, not recorded (a JVM's first minute is
        slower than its steady state, and the rows should compare steady states)."""
        warmup = round_ < 0
        order = PROTOCOLS if round_ % 2 == 0 else PROTOCOLS[::-1]
        for client in self.args.clients:
            for workload in self.args.workloads:
                for protocol in order:
                    key = f"{client}/{workload}/{protocol}"
                    r = self._one(client, workload, protocol, round_)
                    if not warmup:
                        self.runs.setdefault(key, []).append(r)
                    label = "warm-up" if warmup else f"round {round_ + 1}"
                    print(f"   {label} {self.name:<12} {key:<44} {_line(r)}", flush=True)

    def result(self) -> dict:
        return self.out | {"rows": {key: _median(rs) for key, rs in self.runs.items()}}

    def stop(self) -> None:
        """Stop what :meth:`start` got to start (it may have failed part way) and keep the broker's log."""
        if self.ctx is not None:
            self.ctx.close()
        if self.broker is not None:
            code = self.broker.stop()
            if code not in (0, 143, None) and self.broker.spec.kind == "odradek":
                print(f"   {self.name} exited with {code}", flush=True)
            try:
                shutil.copy(self.broker.log_path, self.log_dir / f"{self.name}.broker.log")
            except OSError:
                pass
        if self.work is not None and not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def _one(self, client: str, workload: str, protocol: str, round_: int) -> dict:
        from bench.brokers import cpu_seconds

        pid = self.broker.pid
        spy = None
        if self.args.py_spy and self.broker.spec.kind == "odradek" and round_ == 0:
            spy = PySpy(pid, self.log_dir / f"{self.name}.{client}.{workload}.{protocol}.pyspy.txt")
        cpu0 = cpu_seconds(pid)
        try:
            r = self._client(client, workload, protocol, round_)
        except Exception as e:  # one failed row does not lose the others
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            if spy is not None:
                spy.stop()
        cpu = cpu_seconds(pid) - cpu0
        if r.get("failed") or r.get("unflushed"):
            return {"error": f"{r['failed']} failed, {r['unflushed']} unacknowledged: {r.get('errors')}"}
        moved_mb = r["mb_per_s"] * (r.get("read_s") or r["elapsed_s"])
        out = {
            "mb_per_s": r["mb_per_s"],
            "msg_per_s": r["msg_per_s"],
            "broker_cpu_s": round(cpu, 3),
            "cpu_s_per_100mb": cpu / max(moved_mb, 1e-9) * 100,
        }
        if spy is not None:
            out["profile"] = spy.summary()
        return out

    def _client(self, client: str, workload: str, protocol: str, round_: int) -> dict:
        ctx = self.ctx
        bootstrap = self.bootstrap[protocol]
        if workload == "consume":
            params = {
                "topic": ctx.data_topic,
                "partitions": 1,
                "messages": ctx.data_messages,
                "value_bytes": KIB,
                "timeout_s": 600,
            }
        else:
            settings = next(s for n, _, s in PRODUCE_ROWS if n == workload)
            params = {
                "topic": f"bench-tls-{workload}",
                "partitions": 1,
                "value_bytes": KIB,
                "seconds": self.args.warmup_seconds if round_ < 0 else self.args.seconds,
            }
        if client == "confluent":
            conf = confluent_conf(protocol, self.ca_file)
            if workload != "consume":
                conf |= producer_conf(settings)
            role = "consume" if workload == "consume" else "produce"
            return ctx.run_client(
                role,
                {**params, "bootstrap": bootstrap, "conf": conf},
                f"tls-{workload}-{protocol}",
                timeout=CLIENT_TIMEOUT_S,
            )
        kp = {
            **params,
            "role": "consume" if workload == "consume" else "produce",
            "bootstrap": bootstrap,
            "protocol": protocol,
            "ca_file": self.ca_file,
        }
        if workload != "consume":
            kp |= settings
        r = run_client("tls", kp, self.log_dir / f"{self.name}.kafka-python.stderr", CLIENT_TIMEOUT_S)
        if r is None:
            raise RuntimeError(f"the kafka-python client failed; see {self.log_dir}")
        return r


class PySpy:
    """``py-spy record`` of the broker while one row runs (``--py-spy``: py-spy on PATH, root or ptrace
    rights): raw collapsed stacks in ``out``, and :meth:`summary`, where the event-loop thread spent its
    busy samples."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--py-spy: py-spy is not on PATH (pip install py-spy)")
        self.out = out
        argv = [exe, "record", "--native", "--rate", "200", "--format", "raw", "-o", str(out), "-p", str(pid)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached before the client starts

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def summary(self, top: int = 15) -> dict:
        """Self and inclusive shares of the event loop's busy samples (idle: waiting in epoll)."""
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        busy = idle = 0
        try:
            lines = self.out.read_text().splitlines()
        except OSError:
            return {"error": f"no profile in {self.out}"}
        for line in lines:
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_frame(f) for f in stack.split(";")]
            if not any(f.startswith("BaseEventLoop._run_once ") for f in frames):
                continue  # another thread (the fsync pool, ...)
            if any(f.startswith(("epoll_wait ", "EpollSelector.select ")) for f in frames):
                idle += int(count)
                continue
            busy += int(count)
            leaf = frames[-1]
            if leaf.startswith("? "):  # an unnamed C frame: name it by its nearest named caller
                leaf += " under " + next((f for f in reversed(frames) if not f.startswith("? ")), "?")
            own[leaf] += int(count)
            for f in set(frames):
                if f.endswith(".py)"):
                    inclusive[f] += int(count)
        share = lambda c: round(100 * c / max(busy, 1), 1)  # noqa: E731
        return {
            "file": str(self.out),
            "event_loop_busy_pct": round(100 * busy / max(busy + idle, 1), 1),
            "self_pct": {f: share(c) for f, c in own.most_common(top)},
            "inclusive_pct": {f: share(c) for f, c in inclusive.most_common(top + 8)},
        }


def _frame(text: str) -> str:
    """``name (path/file.py:line)`` -> ``name (file.py)``; unnamed native frames become ``? (lib)``."""
    name, _, where = text.partition(" (")
    source = where.split(":")[0].rstrip(")").rsplit("/", 1)[-1]
    return f"{'?' if name.startswith('0x') else name} ({source})"


def _line(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error'][:200]}"
    return (
        f"{r['mb_per_s']:>8.1f} MB/s {r['msg_per_s']:>10,.0f} rec/s {r['cpu_s_per_100mb']:>6.2f} CPU s/100 MB"
    )


def _median(runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[-1]["error"], "rounds": runs}
    out = {f: statistics.median(r[f] for r in good) for f in ("mb_per_s", "msg_per_s", "cpu_s_per_100mb")}
    out["rounds"] = runs
    if len(good) < len(runs):
        out["failed_rounds"] = len(runs) - len(good)
    return out


# --------------------------------------------------------------------------------------------------
# Report


def _ratio(a: dict, b: dict, field: str = "mb_per_s") -> str:
    if field in a and field in b and b[field] > 0:
        return f"{a[field] / b[field]:.2f}x"
    return "-"


def render(report: dict) -> str:
    brokers = report["brokers"]
    names = [n for n in BROKERS if n in brokers]
    rows = {n: brokers[n].get("rows", {}) for n in names}
    other = [n for n in names if n != "odradek"]
    head = ["workload", "client", "protocol"]
    for n in names:
        head += [f"{n} MB/s", f"{n} rec/s", f"{n} CPU s/100 MB"]
    head += [f"odradek/{n}" for n in other]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for client in report["params"]["clients"]:
        for workload in report["params"]["workloads"]:
            for protocol in PROTOCOLS:
                key = f"{client}/{workload}/{protocol}"
                cells = [LABELS[workload], client, protocol]
                for n in names:
                    r = rows[n].get(key, {})
                    if "mb_per_s" in r:
                        cells += [
                            f"{r['mb_per_s']:.1f}",
                            f"{r['msg_per_s']:,.0f}",
                            f"{r['cpu_s_per_100mb']:.2f}",
                        ]
                    else:
                        cells += ["-", "-", "-"]
                cells += [_ratio(rows.get("odradek", {}).get(key, {}), rows[n].get(key, {})) for n in other]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "TLS cost (SSL MB/s / PLAINTEXT MB/s, same broker, same run):", ""]
    lines += ["| workload | client | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for client in report["params"]["clients"]:
        for workload in report["params"]["workloads"]:
            cells = [LABELS[workload], client]
            for n in names:
                cells.append(
                    _ratio(
                        rows[n].get(f"{client}/{workload}/SSL", {}),
                        rows[n].get(f"{client}/{workload}/PLAINTEXT", {}),
                    )
                )
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Like-for-like: odradek vs {LIKE_FOR_LIKE} (both fsync acks=all writes before the ack); "
        "target >= 1.00x over SSL."
    )
    for key, r in rows.get("odradek", {}).items():
        prof = (r.get("rounds") or [{}])[0].get("profile")
        if prof and "self_pct" in prof:
            top = ", ".join(f"{f} {pct}%" for f, pct in list(prof["self_pct"].items())[:6])
            lines.append(
                f"odradek {key} (py-spy): event loop busy {prof['event_loop_busy_pct']}%; self: {top}"
            )
    for n in names:
        b = brokers[n]
        tls = b.get("tls")
        if tls:
            lines.append(
                f"{n}: SSL listener negotiated {tls['version']} {tls['cipher']} ({tls['bits']} bits)"
            )
        if "error" in b:
            lines.append(f"{n}: ERROR {b['error']}")
        for key, r in b.get("rows", {}).items():
            if "error" in r:
                lines.append(f"{n} {key}: ERROR {r['error'][:300]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.splitlines()[0])
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--only", default=",".join(DEFAULT_BROKERS), help=f"brokers, from {', '.join(BROKERS)}")
    p.add_argument("--clients", default="confluent", help=f"clients, from {', '.join(CLIENTS)}")
    p.add_argument("--seconds", type=float, default=10.0, help="produce time per row (default 10)")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=5.0,
        help="an unrecorded round first, each produce row this long (default 5; 0: none)",
    )
    p.add_argument(
        "--consume-mb", type=int, default=256, help="MiB of 1 KiB records to consume (default 256)"
    )
    p.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"rows to run, from {', '.join(WORKLOADS)}"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of every row; medians reported")
    p.add_argument("--quick", action="store_true", help="one round, 2 s per produce row, 32 MiB consumed")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the brokers' data directories")
    p.add_argument(
        "--py-spy",
        action="store_true",
        help="profile Odradek with py-spy (on PATH) during each row of the first round; summary in the JSON",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.consume_mb, args.warmup_seconds = 2.0, 1, 32, 0.0
    args.consume_messages = args.consume_mb * 1024 * 1024 // KIB
    args.brokers = [b.strip() for b in args.only.split(",") if b.strip()]
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(json.loads(args.client))
    unknown = (
        [b for b in args.brokers if b not in BROKERS]
        + [c for c in args.clients if c not in CLIENTS]
        + [w for w in args.workloads if w not in WORKLOADS]
    )
    if unknown or not args.workloads:
        print(
            f"choose brokers from {', '.join(BROKERS)}, clients from {', '.join(CLIENTS)} and "
            f"workloads from {', '.join(WORKLOADS)}; got {', '.join(unknown) or args.workloads}",
            file=sys.stderr,
        )
        return 2
    from bench.brokers import KAFKA_VERSION
    from support.certs import make_certs

    stamp, log_dir = run_dirs(args.results_dir, "tls")
    certs = make_certs(log_dir / "certs")
    report: dict = {
        "bench": "tls",
        "mode": "quick" if args.quick else "full",
        "started": stamp,
        "params": {
            "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "rounds": args.rounds,
            "consume_messages": args.consume_messages,
            "value_bytes": KIB,
            "clients": args.clients,
            "workloads": args.workloads,
            "ssl": "ssl.client.auth=none, PEM keystore, EC P-256 server key",
        },
        "host": {"python": platform.python_version(), "machine": platform.machine(), "kafka": KAFKA_VERSION},
        "brokers": {},
    }
    # All brokers run at once (the one not measured sits idle) and the rounds alternate between them, so
    # a change in the host's speed during the run (common on a shared machine) falls on both alike.
    runners: list[Runner] = []
    try:
        for name in args.brokers:
            runner = Runner(name, args, log_dir, certs)
            runners.append(runner)  # from here on stopped by the ``finally``, even mid-start (a signal)
            try:
                runner.start()
            except Exception as e:  # one broker failing does not lose the other's figures
                runners.remove(runner)
                runner.stop()
                report["brokers"][name] = {"error": f"{type(e).__name__}: {e}"}
        for round_ in range(-1 if args.warmup_seconds > 0 else 0, args.rounds):
            for runner in runners if round_ % 2 == 0 else runners[::-1]:
                runner.round(round_)
        for runner in runners:
            report["brokers"][runner.name] = runner.result()
    finally:
        for runner in runners:
            runner.stop()
    report["table"] = render(report)
    out = args.results_dir / f"{stamp}-tls.json"
    out.write_text(json.dumps(report, indent=2))
    print(report["table"])
    print(f"\nresults: {out}")
    ok = all(
        "rows" in b and all("error" not in r for r in b["rows"].values()) for b in report["brokers"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
