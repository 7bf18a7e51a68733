"""The workloads. Each runs its client work in subprocesses (bench/client.py) and returns
``{"metrics": {...}, "details": {...}}``: ``metrics`` are the headline figures (all positive numbers),
``details`` everything else worth keeping. An exception means the workload failed; the runner records it
and goes on with the next one.
"""

from __future__ import annotations

import json
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .brokers import RunningBroker, cpu_seconds, rss_mb

CLIENT = Path(__file__).with_name("client.py")

KIB = 1024


@dataclass(frozen=True)
class Sizes:
    """How much each workload does; ``FULL`` for the report, ``QUICK`` to keep the suite working."""

    produce_s: float
    consume_messages: int  # 1 KiB values
    e2e_rate: int
    e2e_warmup_s: float
    e2e_s: float
    txn_s: float
    txn_messages: int
    rebalance_rounds: int


FULL = Sizes(
    produce_s=15.0,
    consume_messages=1 << 20,  # 1 GiB of 1 KiB values
    e2e_rate=5000,
    e2e_warmup_s=2.0,
    e2e_s=20.0,
    txn_s=20.0,
    txn_messages=400_000,
    rebalance_rounds=3,
)
QUICK = Sizes(
    produce_s=2.0,
    consume_messages=32 * 1024,  # 32 MiB
    e2e_rate=5000,
    e2e_warmup_s=1.0,
    e2e_s=3.0,
    txn_s=3.0,
    txn_messages=5_000,
    rebalance_rounds=1,
)


# --------------------------------------------------------------------------------------------------
# client processes


class ClientError(RuntimeError):
    pass


class Client:
    """``python bench/client.py ROLE PARAMS`` with stdout read by a thread; stderr to a log file."""

    def __init__(self, role: str, params: dict, log_dir: Path, name: str) -> None:
        self.role = role
        self.err_path = log_dir / f"{name}.{role}.stderr"
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENT), role, json.dumps(params)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._result: dict | None = None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next_line(self, deadline: float) -> str | None:
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ClientError(f"{self.role}: timed out; stderr:\n{self.stderr_tail()}") from None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                self.proc.wait(5)
                raise ClientError(
                    f"{self.role}: exited ({self.proc.returncode}) before READY; "
                    f"stderr:\n{self.stderr_tail()}"
                )
            if line == "READY":
                return
            if line.startswith("RESULT "):
                self._result = json.loads(line[7:])

    def result(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        try:
            while self._result is None:
                line = self._next_line(deadline)
                if line is None:
                    break
                if line.startswith("RESULT "):
                    self._result = json.loads(line[7:])
            code = self.proc.wait(max(1.0, deadline - time.monotonic()))
        except (ClientError, subprocess.TimeoutExpired):
            self.kill()
            raise ClientError(
                f"{self.role}: no result within {timeout:.0f}s; stderr:\n{self.stderr_tail()}"
            ) from None
        if code != 0 or self._result is None:
            raise ClientError(f"{self.role}: exit code {code}; stderr:\n{self.stderr_tail()}")
        return self._result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_tail(self, lines: int = 25) -> str:
        self._err.flush()
        try:
            text = self.err_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        self.kill()
        self._err.close()


# --------------------------------------------------------------------------------------------------
# per-broker context


class Context:
    """What a workload gets: the broker, the sizes, a log folder, topic helpers and an RSS/CPU sampler."""

    def __init__(self, broker: RunningBroker, sizes: Sizes, log_dir: Path) -> None:
        self.broker = broker
        self.sizes = sizes
        self.log_dir = log_dir
        self.data_topic = "bench-data"
        self.data_messages = 0  # 1 KiB messages in data_topic so far
        self.rss_idle_mb: float | None = None
        self.rss_load_peak_mb = 0.0
        self.load_workloads = 0
        self._clients: list[Client] = []
        self._admin = None

    # -- clients -----------------------------------------------------------------------------------
    def client(self, role: str, params: dict, name: str) -> Client:
        params = {"bootstrap": self.broker.bootstrap, **params}
        c = Client(role, params, self.log_dir, f"{self.broker.spec.name}.{name}")
        self._clients.append(c)
        return c

    def run_client(self, role: str, params: dict, name: str, timeout: float) -> dict:
        c = self.client(role, params, name)
        try:
            return c.result(timeout)
        finally:
            c.close()

    def close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()

    def close(self) -> None:
        """Stop every client process and drop the admin client (before the broker stops)."""
        self.close_clients()
        self._admin = None

    # -- topics ------------------------------------------------------------------------------------
    def admin(self):
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient({"bootstrap.servers": self.broker.bootstrap, "log_level": 3})
        return self._admin

    def create_topic(self, name: str, partitions: int) -> None:
        from confluent_kafka.admin import NewTopic

        fut = self.admin().create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)[name]
        fut.result(60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until every partition has a leader
            md = self.admin().list_topics(name, timeout=10).topics.get(name)
            if md is not None and md.error is None and len(md.partitions) == partitions:
                if all(p.leader >= 0 and p.error is None for p in md.partitions.values()):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"topic {name}: partitions without a leader after 30 s")

    def ensure_data(self, messages: int) -> dict | None:
        """Make ``bench-data`` (1 partition, 1 KiB values) hold at least ``messages`` records."""
        if self.data_messages == 0:
            self.create_topic(self.data_topic, 1)
        missing = messages - self.data_messages
        if missing <= 0:
            return None
        res = self.run_client(
            "fill",
            {"topic": self.data_topic, "value_bytes": KIB, "messages": missing},
            "fill",
            timeout=1800,
        )
        if res["acked"] != missing:
            raise RuntimeError(f"filling {self.data_topic}: {res['acked']} of {missing} acknowledged: {res}")
        self.data_messages += missing
        return {"fill_messages": missing, "fill_mb_per_s": round(res["mb_per_s"], 1)}

    # -- broker resource sampling ------------------------------------------------------------------
    def measure(self, fn: Callable[[], dict], *, load: bool = True) -> dict:
        """Run ``fn`` while sampling the broker's RSS; adds peak RSS and broker CPU seconds to details."""
        pid = self.broker.pid
        stop = threading.Event()
        peak = [0.0]

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_mb(pid))
                except (OSError, RuntimeError):
                    return
                stop.wait(0.05)

        t = threading.Thread(target=sample, daemon=True)
        cpu0 = cpu_seconds(pid)
        t.start()
        try:
            out = fn()
        finally:
            stop.set()
            t.join(2)
        out.setdefault("details", {})
        out["details"]["broker_cpu_s"] = round(cpu_seconds(pid) - cpu0, 2)
        out["details"]["broker_rss_peak_mb"] = round(peak[0], 1)
        if load:
            self.rss_load_peak_mb = max(self.rss_load_peak_mb, peak[0])
            self.load_workloads += 1
        return out


# --------------------------------------------------------------------------------------------------
# workloads


def _produce(
    ctx: Context, name: str, *, value_bytes: int, partitions: int, conf: dict, txn_size: int = 0
) -> dict:
    topic = f"bench-{name}"
    ctx.create_topic(topic, partitions)
    s = ctx.sizes

    def go() -> dict:
        r = ctx.run_client(
            "produce",
            {
                "topic": topic,
                "partitions": partitions,
                "value_bytes": value_bytes,
                "seconds": s.produce_s,
                "conf": conf,
                "txn_size": txn_size,
            },
            name,
            timeout=s.produce_s + 360,
        )
        if r["failed"] or r["unflushed"]:
            raise RuntimeError(
                f"{r['failed']} failed and {r['unflushed']} unacknowledged messages: {r['errors']}"
            )
        metrics = {"mb_per_s": r["mb_per_s"], "msg_per_s": r["msg_per_s"]}
        if txn_size:
            metrics["txn_per_s"] = r["txn_per_s"]
        return {
            "metrics": metrics,
            "details": {"messages": r["acked"], "elapsed_s": round(r["elapsed_s"], 2)},
        }

    out = ctx.measure(go)
    out["params"] = {
        "value_bytes": value_bytes,
        "partitions": partitions,
        "producer": conf,
        "duration_s": s.produce_s,
    }
    return out


IDEMPOTENT_ALL = {"acks": "all", "enable.idempotence": True}


def produce_1k_acks_all_p1(ctx: Context) -> dict:
    return _produce(ctx, "produce-1k-all-p1", value_bytes=KIB, partitions=1, conf=IDEMPOTENT_ALL)


def produce_1k_acks_all_p8(ctx: Context) -> dict:
    return _produce(ctx, "produce-1k-all-p8", value_bytes=KIB, partitions=8, conf=IDEMPOTENT_ALL)


def produce_1k_txn_100(ctx: Context) -> dict:
    """The cost of transactions: the 1-partition acks=all workload again, committed every 100 messages."""
    conf = {**IDEMPOTENT_ALL, "transactional.id": f"bench-txn-{uuid.uuid4().hex[:8]}"}
    return _produce(ctx, "produce-1k-txn-100", value_bytes=KIB, partitions=1, conf=conf, txn_size=100)


def produce_100b_acks1(ctx: Context) -> dict:
    return _produce(
        ctx,
        "produce-100b-acks1",
        value_bytes=100,
        partitions=1,
        conf={"acks": "1", "enable.idempotence": False},
    )


def consume_from_start(ctx: Context) -> dict:
    n = ctx.sizes.consume_messages
    fill = ctx.ensure_data(n)
    total = ctx.data_messages

    def go() -> dict:
        r = ctx.run_client(
            "consume",
            {
                "topic": ctx.data_topic,
                "partitions": 1,
                "messages": total,
                "value_bytes": KIB,
                "timeout_s": 900,
            },
            "consume",
            timeout=960,
        )
        return {
            "metrics": {"mb_per_s": r["mb_per_s"], "msg_per_s": r["msg_per_s"]},
            "details": {
                "messages": r["consumed"],
                "topic_mb": round(total * KIB / 1e6, 1),
                "elapsed_s": round(r["elapsed_s"], 2),
                "read_s": round(r["read_s"], 2),
                "first_message_s": round(r["first_message_s"], 3),
            },
        }

    out = ctx.measure(go)
    if fill:
        out["details"].update(fill)
    out["params"] = {
        "value_bytes": KIB,
        "partitions": 1,
        "topic_bytes": total * KIB,
        "consumer": "assign() from the beginning, librdkafka defaults",
        "measure": "records / time from the first record delivered to the last",
    }
    return out


E2E_PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 0}


def e2e_latency(ctx: Context) -> dict:
    s = ctx.sizes
    topic = "bench-e2e"
    ctx.create_topic(topic, 1)

    def go() -> dict:
        timeout = s.e2e_warmup_s + s.e2e_s + 120
        cons = ctx.client("e2e_consume", {"topic": topic, "timeout_s": timeout}, "e2e")
        try:
            cons.wait_ready(60)
            prod = ctx.run_client(
                "e2e_produce",
                {
                    "topic": topic,
                    "rate": s.e2e_rate,
                    "value_bytes": KIB,
                    "warmup_s": s.e2e_warmup_s,
                    "seconds": s.e2e_s,
                    "conf": E2E_PRODUCER,
                },
                "e2e",
                timeout=timeout,
            )
            r = cons.result(timeout)
        finally:
            cons.close()
        if prod["failed"] or prod["unflushed"]:
            raise RuntimeError(f"producer: {prod}")
        if r["received"] != prod["measured_sent"]:
            raise RuntimeError(
                f"sent {prod['measured_sent']} measured messages, consumer saw {r['received']}"
            )
        return {
            "metrics": {"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "p999_ms": r["p999_ms"]},
            "details": {
                "p90_ms": r["p90_ms"],
                "max_ms": r["max_ms"],
                "mean_ms": r["mean_ms"],
                "messages": r["received"],
                "achieved_rate": round(prod["achieved_rate"]),
            },
        }

    out = ctx.measure(go)
    out["params"] = {
        "rate_msg_per_s": s.e2e_rate,
        "duration_s": s.e2e_s,
        "warmup_s": s.e2e_warmup_s,
        "value_bytes": KIB,
        "producer": E2E_PRODUCER,
        "consumer": "librdkafka defaults (fetch.wait.max.ms=500, fetch.min.bytes=1)",
    }
    return out


def _txn_copy(ctx: Context, txn_size: int) -> dict:
    s = ctx.sizes
    fill = ctx.ensure_data(s.txn_messages)
    out_topic = f"bench-txn-out-{txn_size}"
    ctx.create_topic(out_topic, 1)

    def go() -> dict:
        r = ctx.run_client(
            "txn_copy",
            {
                "input": ctx.data_topic,
                "output": out_topic,
                "group": f"bench-txn-{txn_size}",
                "txn_size": txn_size,
                "messages": s.txn_messages,
                "seconds": s.txn_s,
                "value_bytes": KIB,
            },
            f"txn{txn_size}",
            timeout=s.txn_s + 300,
        )
        return {
            "metrics": {"msg_per_s": r["msg_per_s"], "txn_per_s": r["txn_per_s"]},
            "details": {
                "copied": r["copied"],
                "transactions": r["transactions"],
                "elapsed_s": round(r["elapsed_s"], 2),
                "mb_per_s": round(r["mb_per_s"], 2),
                "commit_ms_p50": r["commit_ms_p50"],
                "commit_ms_max": r["commit_ms_max"],
            },
        }

    out = ctx.measure(go)
    if fill:
        out["details"].update(fill)
    out["params"] = {
        "txn_size": txn_size,
        "value_bytes": KIB,
        "max_messages": s.txn_messages,
        "max_duration_s": s.txn_s,
        "consumer": "read_committed, subscribe()",
        "producer": "transactional, linger.ms=5; send_offsets_to_transaction per transaction",
    }
    return out


def txn_copy_100(ctx: Context) -> dict:
    return _txn_copy(ctx, 100)


def txn_copy_1000(ctx: Context) -> dict:
    return _txn_copy(ctx, 1000)


REBALANCE_PARTITIONS = 8
REBALANCE_CONSUMER = {"heartbeat.interval.ms": 250}


def rebalance_4(ctx: Context) -> dict:
    topic = "bench-rebalance"
    ctx.create_topic(topic, REBALANCE_PARTITIONS)
    rounds = ctx.sizes.rebalance_rounds

    def go() -> dict:
        r = ctx.run_client(
            "rebalance",
            {
                "topic": topic,
                "partitions": REBALANCE_PARTITIONS,
                "members": 4,
                "group": "bench-rebalance",
                "rounds": rounds + 1,
                "conf": REBALANCE_CONSUMER,
                "timeout_s": 120,
            },
            "rebalance",
            timeout=150 * (rounds + 1),
        )
        measured = r["rounds_s"][1:]  # round 0 warms up the group coordinator (__consumer_offsets)
        return {
            "metrics": {"seconds": statistics.median(measured)},
            "details": {
                "rounds_s": [round(x, 3) for x in measured],
                "warmup_round_s": round(r["rounds_s"][0], 3),
            },
        }

    out = ctx.measure(go, load=False)
    out["params"] = {
        "members": 4,
        "partitions": REBALANCE_PARTITIONS,
        "protocol": "classic (librdkafka default)",
        "consumer": REBALANCE_CONSUMER,
        "rounds": rounds,
        "measure": "4th subscribe() -> 4 non-empty disjoint assignments covering all partitions",
    }
    return out


def memory(ctx: Context) -> dict:
    """Idle RSS (measured after start-up, before any workload) and peak RSS during the load workloads."""
    if ctx.rss_idle_mb is None:
        raise RuntimeError("idle RSS was not measured")
    if not ctx.load_workloads:
        # Nothing ran yet: put some load on it so the figure means something.
        produce_1k_acks_all_p8(ctx)
    time.sleep(1.0)
    return {
        "metrics": {"idle_mb": ctx.rss_idle_mb, "load_peak_mb": ctx.rss_load_peak_mb},
        "details": {
            "rss_after_load_mb": round(rss_mb(ctx.broker.pid), 1),
            "load_workloads": ctx.load_workloads,
        },
        "params": {"source": "/proc/<pid>/status VmRSS, sampled every 50 ms during each load workload"},
    }


# Order matters only for "memory", which must come last.
WORKLOADS: dict[str, Callable[[Context], dict] | None] = {
    "startup": None,  # measured while the broker starts (runner)
    "produce_1k_acks_all_p1": produce_1k_acks_all_p1,
    "produce_1k_acks_all_p8": produce_1k_acks_all_p8,
    "produce_1k_txn_100": produce_1k_txn_100,
    "produce_100b_acks1": produce_100b_acks1,
    "consume_from_start": consume_from_start,
    "e2e_latency": e2e_latency,
    "txn_copy_100": txn_copy_100,
    "txn_copy_1000": txn_copy_1000,
    "rebalance_4": rebalance_4,
    "memory": memory,
}
