"""The runner of ``odradek verify``: the I/O shell around the workload, the faults and the checker.

A run has two phases (see ``docs/verify.md``):

1. **throughput**: for each pipeline alone, a prefilled input drained by one worker, no faults;
2. **faults**: every pipeline at once on one paced input topic, ``workers`` processes each, while the
   fault schedule drawn from the seed is carried out; then the pipelines drain, the workers stop, every
   sink is read back and judged by :func:`~odradek.verify.checker.check`.

Pipelines are child processes (:mod:`odradek.verify.worker`) built with :mod:`odradek.stream`, so what is
verified is the library as users run it. On the embedded broker (no ``bootstrap``) the broker is a child
process too (``odradek serve``) behind the fault proxy, and it advertises the proxy, so every connection
after bootstrap passes through it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import faults as faults_mod
from . import metrics
from .checker import GUARANTEES, acked_then_missing, check
from .faults import Fault
from .proxy import ChaosProxy
from .workload import produce, read

VERSION = "0.1.0"
SQL_ROW = "exactly-once → SQL"
POLL_S = 0.25
STUCK_S = 30.0  # a pipeline whose committed positions do not move for this long has its workers restarted


class SetupError(Exception):
    """The run cannot start (exit status 2): one plain line for the user."""


@dataclass
class Options:
    bootstrap: str | None = None  # None: an embedded broker in a temporary directory
    guarantees: tuple[str, ...] = GUARANTEES
    faults: tuple[str, ...] = faults_mod.DEFAULT
    messages: int = 30_000
    rate: float = 500.0
    partitions: int = 6
    workers: int = 2
    seed: int = 1
    sql_url: str | None = None  # the exactly-once SQL sink; default a SQLite file in the work dir
    sql: bool = True  # the exactly-once into SQL pipeline
    broker_kill_cmd: str | None = None
    broker_start_cmd: str | None = None
    throughput_messages: int = 20_000
    sabotage: str | None = None
    work_dir: Path | None = None
    keep: bool = False
    command: str = "odradek verify"
    session_timeout_ms: int = 6000
    max_poll_interval_ms: int = 6000
    drain_timeout_s: float = 120.0
    replication_factor: int = -1  # the cluster's default
    # External cluster: fault proxies to start, (listen host, port, target host, port), for brokers that
    # advertise the listen addresses; the partition fault acts on all of them.
    proxies: tuple[tuple[str, int, str, int], ...] = ()


@dataclass(frozen=True)
class Row:
    name: str
    guarantee: str
    sink: str  # "topic" or "sql"


def rows_for(opts: Options) -> list[Row]:
    out = []
    for g in GUARANTEES:
        if g in opts.guarantees:
            out.append(Row(g, g, "topic"))
            if g == "exactly-once" and opts.sql:
                out.append(Row(SQL_ROW, g, "sql"))
    return out


# -- child processes --------------------------------------------------------------------------------


class Worker:
    """One worker process of one pipeline; its stdout events are read on a thread."""

    def __init__(self, cfg: dict, log_path: Path, on_txn: Callable[[str, str], None]) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.on_txn = on_txn
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = threading.Event()
        self.stats: dict[str, int] = {}
        self.assigned_total = 0  # over every incarnation
        self._base = 0
        self.stalls: list[float] = []

    def start(self) -> None:
        self.ready.clear()
        self._base = self.assigned_total
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "odradek.verify.worker", json.dumps(self.cfg)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("ev")
            if kind == "ready":
                self.ready.set()
            elif kind == "txn":
                self.on_txn(ev["id"], ev["outcome"])
            elif kind == "stats":
                self.stats = ev
                self.assigned_total = self._base + int(ev.get("assigned", 0))
            elif kind == "stall":
                self.stalls.append(float(ev["t"]))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)

    def stall(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGUSR2)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


class BrokerProcess:
    """``odradek serve`` as a child process, so that a broker crash is a real SIGKILL."""

    def __init__(self, data_dir: Path, log_path: Path, advertised_port: int) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.advertised_port = advertised_port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        argv = [
            sys.executable,
            "-m",
            "odradek",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "WARNING",
            "--set",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.advertised_port}",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        found: list[str] = []
        done = threading.Event()

        def first_line(proc: subprocess.Popen[bytes]) -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if not done.is_set():
                    found.append(raw.decode(errors="replace"))
                    done.set()

        threading.Thread(target=first_line, args=(self.proc,), daemon=True).start()
        if not done.wait(timeout) or "listening on" not in found[0]:
            self.kill()
            raise SetupError(f"the embedded broker did not start; its log: {self.log_path}")
        addr = found[0].split("listening on ", 1)[1].split()[0]
        self.port = int(addr.rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class _Pipeline:
    row: Row
    group: str
    topic: str  # the sink topic, or the table for SQL rows
    workers: list[Worker] = field(default_factory=list)
    txns: Counter[str] = field(default_factory=Counter)  # outcome -> transactions
    assigned_before: int = 0  # partition assignments before the workload began


class Run:
    def __init__(self, opts: Options, live: Any = None) -> None:
        self.opts = opts
        self.live = live
        self.rows = rows_for(opts)
        if opts.sabotage == "commit-before-ack":  # the hand-made loop writes to topics only
            self.rows = [r for r in self.rows if r.sink == "topic"]
        if not self.rows:
            raise SetupError("no guarantee to verify")
        self.run_id = uuid.uuid4().hex[:8]
        self.errors: list[str] = []
        self.txn_outcomes: dict[str, str] = {}
        self._txn_lock = threading.Lock()
        self.proxy: ChaosProxy | None = None
        self.extra_proxies: list[ChaosProxy] = []
        self._offset_readers: dict[str, Any] = {}
        self._engine: Any = None  # the SQL sink's database, for reading it back
        self._offset_store: Any = None
        self.broker: BrokerProcess | None = None
        self.bootstrap = ""
        self._own_dir = opts.work_dir is None
        self.work = Path(opts.work_dir or tempfile.mkdtemp(prefix="odradek-verify-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self._admin: Any = None
        self.phase = "starting"
        self.produced = 0
        self.t0 = 0.0  # wall clock (time.time()) of the fault phase's start
        self.schedule: list[Fault] = []
        self.fault_log: list[dict] = []
        self.pipelines: list[_Pipeline] = []

    # -- set-up and tear-down ----------------------------------------------------------------------
    def _sql_url(self) -> str:
        return self.opts.sql_url or f"sqlite:///{self.work / 'sink.db'}"

    def _sql_engine(self) -> Any:
        if self._engine is None:
            from odradek.stream.sql import make_engine

            self._engine = make_engine(self._sql_url())
        return self._engine

    def start(self) -> None:
        if self.opts.bootstrap:
            self.bootstrap = self.opts.bootstrap
            for i, (lh, lp, th, tp) in enumerate(self.opts.proxies):
                try:
                    px = ChaosProxy(seed=self.opts.seed + i, listen=(lh, lp)).start()
                except Exception as e:
                    raise SetupError(f"cannot listen on {lh}:{lp} for the proxy: {e}") from None
                px.target = (th, tp)
                self.extra_proxies.append(px)
        else:
            self.proxy = ChaosProxy(seed=self.opts.seed).start()
            self.broker = BrokerProcess(self.work / "broker", self.logs / "broker.log", self.proxy.port)
            self.broker.start()
            self.proxy.target = ("127.0.0.1", self.broker.port)
            self.bootstrap = self.proxy.address
        from confluent_kafka.admin import AdminClient

        self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            md = self._admin.list_topics(timeout=15)
        except Exception as e:
            raise SetupError(f"cannot reach the cluster at {self.bootstrap}: {e}") from None
        if not md.brokers:
            raise SetupError(f"cannot reach the cluster at {self.bootstrap}")
        self.target = "external cluster" if self.opts.bootstrap else "embedded Odradek broker"

    def close(self, keep: bool = False) -> None:
        if self._engine is not None:
            self._engine.dispose()
        for c in self._offset_readers.values():
            with contextlib.suppress(Exception):
                c.close()
        for p in self.pipelines:
            for w in p.workers:
                w.kill()
        if self.broker is not None:
            self.broker.stop()
        for px in self._proxies():
            px.stop()
        if self._own_dir and not (self.opts.keep or keep):
            shutil.rmtree(self.work, ignore_errors=True)

    def _proxies(self) -> list[ChaosProxy]:
        return ([self.proxy] if self.proxy is not None else []) + self.extra_proxies

    def _create_topics(self, names: list[str], partitions: int) -> None:
        from confluent_kafka.admin import NewTopic

        futures = self._admin.create_topics(
            [NewTopic(n, partitions, self.opts.replication_factor) for n in names], operation_timeout=30
        )
        for name, f in futures.items():
            try:
                f.result(60)
            except Exception as e:
                raise SetupError(f"cannot create topic {name}: {e}") from None

    def _note_txn(self, p: _Pipeline, txn_id: str, outcome: str) -> None:
        with self._txn_lock:
            self.txn_outcomes[txn_id] = outcome
            p.txns[outcome] += 1

    def _worker(self, p: _Pipeline, i: int, source: str, tag: str) -> Worker:
        o = self.opts
        cfg: dict[str, Any] = {
            "bootstrap": self.bootstrap,
            "group": p.group,
            "guarantee": p.row.guarantee,
            "instance_id": f"w{i}",
            "input": source,
            "stall_s": o.max_poll_interval_ms / 1000 + 2.0,
            "consumer": {
                "session.timeout.ms": o.session_timeout_ms,
                "max.poll.interval.ms": o.max_poll_interval_ms,
                "heartbeat.interval.ms": max(500, o.session_timeout_ms // 6),
            },
        }
        if o.sabotage:
            cfg["sabotage"] = o.sabotage
        if p.row.sink == "sql":
            cfg["sql_url"] = self._sql_url()
            cfg["table"] = p.topic
        else:
            cfg["topic"] = p.topic
        slug = p.row.name.replace(" → ", "-to-").replace(" ", "-")
        return Worker(cfg, self.logs / f"{tag}-{slug}-w{i}.log", lambda t, o: self._note_txn(p, t, o))

    def _pipeline(self, row: Row, tag: str) -> _Pipeline:
        slug = row.name.replace(" → SQL", "-sql").replace("-", "_" if row.sink == "sql" else "-")
        base = f"odradek-verify-{self.run_id}-{tag}-{slug}"
        topic = base.replace("-", "_") if row.sink == "sql" else f"{base}-out"
        return _Pipeline(row, f"{base}-group", topic)

    # -- progress ----------------------------------------------------------------------------------
    def _show(self, total: int) -> None:
        if self.live is None:
            return
        rows = {
            p.row.name: {
                "outputs": sum(int(w.stats.get("processed", 0)) for w in p.workers),
                "workers": sum(1 for w in p.workers if w.alive),
                "status": "running",
            }
            for p in self.pipelines
        }
        faults = [{**f, "done": True} for f in self.fault_log]
        elapsed = time.time() - self.t0 if self.t0 else 0.0
        with contextlib.suppress(Exception):
            self.live.update(self.phase, elapsed, self.produced, total, rows, faults)

    # -- draining ----------------------------------------------------------------------------------
    def _ends(self, topic: str) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "odradek-verify-ends", "log_level": 0})
        try:
            md = c.list_topics(topic, timeout=30).topics[topic]
            return {
                p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
                for p in md.partitions
            }
        finally:
            c.close()

    def _committed(self, p: _Pipeline, source: str, ends: dict[int, int]) -> dict[int, int]:
        if p.row.sink == "sql":
            from odradek.stream.sql import SqlOffsetStore

            try:  # the positions the App commits with its rows (the library's own table)
                if self._offset_store is None:
                    self._offset_store = SqlOffsetStore(self._sql_engine())
                got = self._offset_store.read(p.group)
            except Exception:
                return {}
            return {part: pos for (topic, part), (pos, _epoch) in got.items() if topic == source}
        # Read by a consumer of the group that never joins it (committed() only). Not with the
        # AdminClient's list_consumer_group_offsets: librdkafka 2.16 crashes (SIGSEGV in
        # rd_kafka_cgrp_op) handling an OffsetFetch error answer there, seen on a fresh Kafka cluster.
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        c = self._offset_readers.get(p.group)
        if c is None:
            c = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": p.group,
                    "enable.auto.commit": False,
                    "log_level": 0,
                }
            )
            self._offset_readers[p.group] = c
        try:
            got = c.committed([TopicPartition(source, part) for part in ends], timeout=15)
        except KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in got if tp.error is None}

    def _drain(self, pipelines: list[_Pipeline], source: str, total: int) -> None:
        """Wait until every pipeline's committed positions reach the input's end offsets."""
        ends = self._ends(source)
        deadline = time.monotonic() + self.opts.drain_timeout_s
        waiting = list(pipelines)
        last: dict[str, tuple[dict[int, int], float]] = {}
        while waiting:
            for p in list(waiting):
                done = self._committed(p, source, ends)
                if all(done.get(part, -1) >= end for part, end in ends.items()):
                    waiting.remove(p)
                    continue
                seen, since = last.get(p.row.name, ({}, time.monotonic()))
                if done != seen:
                    last[p.row.name] = (done, time.monotonic())
                elif time.monotonic() - since > STUCK_S:
                    # Live but making no progress: what a supervisor's liveness check would do. The
                    # guarantees are about data, so the run goes on; the stall is reported.
                    self.errors.append(
                        f"{p.row.name}: no progress for {STUCK_S:.0f} s while draining; its workers "
                        f"were SIGKILLed and started again (logs: {self.logs})"
                    )
                    for w in p.workers:
                        w.kill()
                        w.start()
                    last[p.row.name] = (done, time.monotonic())
            self._show(total)
            if not waiting:
                break
            if time.monotonic() > deadline:
                names = ", ".join(p.row.name for p in waiting)
                self.errors.append(f"not drained after {self.opts.drain_timeout_s:.0f} s: {names}")
                break
            for p in waiting:  # a worker that died on its own is started again
                for w in p.workers:
                    if not w.alive:
                        code = w.proc.returncode if w.proc else "?"
                        self.errors.append(f"{p.row.name} worker exited ({code}); started again")
                        w.start()
            time.sleep(POLL_S)

    def _stop_workers(self, pipelines: list[_Pipeline]) -> None:
        for p in pipelines:
            for w in p.workers:
                if w.alive and w.proc is not None:
                    w.proc.terminate()
        for p in pipelines:
            for w in p.workers:
                code = w.stop(30)
                if code not in (0, None, -signal.SIGTERM):
                    self.errors.append(f"{p.row.name} worker w{p.workers.index(w)} exited with {code}")

    # -- reading sinks back ------------------------------------------------------------------------
    def _read_sink(self, p: _Pipeline) -> tuple[list, list[int]]:
        """(deliveries, write times in ms) of one pipeline's sink, in read order."""
        from .checker import Delivery

        if p.row.sink == "sql":
            import sqlalchemy as sa

            engine = self._sql_engine()
            try:  # reflected, so the identifiers are quoted as the database wants
                table = sa.Table(p.topic, sa.MetaData(), autoload_with=engine)
                with engine.connect() as conn:
                    rows = conn.execute(
                        sa.select(table.c.seq, table.c.written_ms).order_by(table.c.written_ms)
                    ).all()
            except sa.exc.NoSuchTableError:
                rows = []  # nothing was written
            return [Delivery(int(r[0])) for r in rows], [int(r[1]) for r in rows]
        with self._txn_lock:
            aborted = {k.encode() for k, v in self.txn_outcomes.items() if v == "aborted"}
        rb = read(self.bootstrap, p.topic, aborted_txns=aborted, timeout_s=120)
        if rb.corrupt:
            self.errors.append(f"{p.row.name}: {rb.corrupt} corrupt records in the sink")
        return rb.deliveries, rb.times_ms

    # -- phase 1 -----------------------------------------------------------------------------------
    def throughput_phase(self) -> dict[str, float | None]:
        n = self.opts.throughput_messages
        out: dict[str, float | None] = {}
        if n <= 0:
            return {r.name: None for r in self.rows}
        source = f"odradek-verify-{self.run_id}-tp-in"
        self._create_topics([source], self.opts.partitions)
        self.phase = "throughput: filling the input"
        produced = produce(self.bootstrap, source, n, value_bytes=100)
        if produced.failed:
            raise SetupError(f"could not fill the throughput input: {produced.failed} sends failed")
        for row in self.rows:
            p = self._pipeline(row, "tp")
            if row.sink == "topic":
                self._create_topics([p.topic], self.opts.partitions)
            p.workers = [self._worker(p, 0, source, "tp")]
            self.pipelines = [p]
            self.phase = f"throughput: {row.name}"
            p.workers[0].start()
            self._drain([p], source, n)
            self._stop_workers([p])
            _deliveries, times = self._read_sink(p)
            if len(times) >= 2 and max(times) > min(times):
                out[row.name] = len(times) / ((max(times) - min(times)) / 1000.0)
            else:
                out[row.name] = None
                self.errors.append(f"throughput of {row.name}: too few outputs to time ({len(times)})")
        self.pipelines = []
        return out

    # -- phase 2 -----------------------------------------------------------------------------------
    def fault_phase(self) -> dict:
        o = self.opts
        source = f"odradek-verify-{self.run_id}-in"
        acks_topics = {a: f"odradek-verify-{self.run_id}-acks-{a}" for a in ("0", "1", "all")}
        self.pipelines = [self._pipeline(r, "f") for r in self.rows]
        self._create_topics(
            [source, *(p.topic for p in self.pipelines if p.row.sink == "topic"), *acks_topics.values()],
            o.partitions,
        )
        for p in self.pipelines:
            p.workers = [self._worker(p, i, source, "f") for i in range(o.workers)]
            for w in p.workers:
                w.start()
        self.phase = "faults: starting workers"
        deadline = time.monotonic() + 60
        for p in self.pipelines:
            for w in p.workers:
                while not w.ready.wait(0.5):
                    if not w.alive or time.monotonic() > deadline:
                        raise SetupError(f"a {p.row.name} worker did not start; its log: {w.log_path}")
        while not all(w.assigned_total for p in self.pipelines for w in p.workers):
            if time.monotonic() > deadline:  # not fatal: the run shows what it cost
                self.errors.append("not every worker had partitions before the workload started")
                break
            time.sleep(0.1)
        time.sleep(0.5)  # let the groups settle before the first record
        for p in self.pipelines:
            p.assigned_before = sum(w.assigned_total for w in p.workers)

        window_s = o.messages / o.rate
        self.schedule = faults_mod.schedule(
            list(o.faults), o.seed, window_s, workers=o.workers, stall_s=o.max_poll_interval_ms / 1000 + 2.0
        )
        results: dict[str, Any] = {}
        side = self._side_producers(acks_topics, window_s, results)
        self.t0 = time.time()
        self.phase = "faults: producing"

        def on_sent(n: int) -> None:
            self.produced = n

        fault_thread = threading.Thread(target=self._carry_out, args=(self.t0,), daemon=True)
        fault_thread.start()
        main_result: list = []

        def main_producer() -> None:
            main_result.append(produce(self.bootstrap, source, o.messages, rate=o.rate, on_sent=on_sent))

        prod = threading.Thread(target=main_producer, daemon=True)
        prod.start()
        while prod.is_alive() or fault_thread.is_alive():
            self._show(o.messages)
            time.sleep(POLL_S)
        for t in side:
            t.join()
        if not main_result:
            raise SetupError("the workload producer failed")
        produced = main_result[0]
        self.phase = "faults: draining"
        self._drain(self.pipelines, source, o.messages)
        self.phase = "faults: stopping workers"
        self._stop_workers(self.pipelines)
        self.phase = "faults: reading back"
        return {"source": source, "produced": produced, "acks": results, "acks_topics": acks_topics}

    def _side_producers(
        self, topics: dict[str, str], window_s: float, results: dict
    ) -> list[threading.Thread]:
        """The producer-side check: one producer per acks setting, through the same faults."""
        n = max(100, int(self.opts.messages / 10))
        rate = n / window_s
        threads = []
        for acks, topic in topics.items():

            def go(acks: str = acks, topic: str = topic) -> None:
                try:
                    results[acks] = produce(self.bootstrap, topic, n, acks=acks, rate=rate)
                except Exception as e:  # reported, and judged as not run
                    self.errors.append(f"acks={acks} producer: {e}")

            t = threading.Thread(target=go, daemon=True)
            t.start()
            threads.append(t)
        return threads

    def _carry_out(self, t0: float) -> None:
        for f in self.schedule:
            wait = t0 + f.at_s - time.time()
            if wait > 0:
                time.sleep(wait)
            started = time.time() - t0
            try:
                ran, note = self._inject(f)
            except Exception as e:
                ran, note = False, f"failed: {e}"
                self.errors.append(f"{f.label}: {e}")
            self.fault_log.append(
                {
                    "kind": f.kind,
                    "at_s": round(started, 3),
                    "duration_s": round(max(f.duration_s, time.time() - t0 - started), 3),
                    "ran": ran,
                    "note": note,
                    "mode": f.mode,
                    "target": f.target,
                }
            )

    def _inject(self, f: Fault) -> tuple[bool, str]:
        if f.kind == "consumer-crash":
            victims = [p.workers[f.target] for p in self.pipelines]
            for w in victims:
                w.kill()
            time.sleep(f.duration_s)
            for w in victims:
                w.start()
            return True, (
                f"SIGKILL of worker w{f.target} of every pipeline, restarted after {f.duration_s:.1f} s"
            )
        if f.kind == "slow":
            for p in self.pipelines:
                p.workers[f.target].stall()
            time.sleep(f.duration_s)
            return True, (
                f"worker w{f.target} of every pipeline stalled {f.duration_s:.1f} s on one record "
                f"(max.poll.interval.ms={self.opts.max_poll_interval_ms})"
            )
        if f.kind == "partition":
            proxies = self._proxies()
            if not proxies:
                return False, "not run: an external cluster needs --proxy (brokers advertising the proxies)"
            if f.mode == "blackhole":
                for px in proxies:
                    px.blackhole(f.duration_s)
                time.sleep(f.duration_s)
                return True, f"all traffic black-holed for {f.duration_s:.1f} s"
            for px in proxies:
                px.chaos = True
                px.cut_all()
            time.sleep(f.duration_s)
            for px in proxies:
                px.chaos = False
            return True, f"connections cut, mid-request too, for {f.duration_s:.1f} s"
        if f.kind == "broker-crash":
            if self.broker is not None:
                self.broker.kill()
                time.sleep(f.duration_s)
                self.broker.start()
                return True, f"SIGKILL of the broker, restarted after {f.duration_s:.1f} s"
            if not (self.opts.broker_kill_cmd and self.opts.broker_start_cmd):
                return False, "not run: an external cluster needs --broker-kill-cmd and --broker-start-cmd"
            env = {**os.environ, "ODRADEK_FAULT_INDEX": str(f.index)}
            for what, cmd in (("kill", self.opts.broker_kill_cmd), ("start", self.opts.broker_start_cmd)):
                res = subprocess.run(cmd, shell=True, env=env, capture_output=True, timeout=300)
                if res.returncode != 0:
                    err = res.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                    return False, f"the broker {what} command failed ({res.returncode}): {err[0]}"
                if what == "kill":
                    time.sleep(f.duration_s)
            return True, f"broker kill command, restart command after {f.duration_s:.1f} s"
        raise ValueError(f.kind)

    # -- judging -----------------------------------------------------------------------------------
    def judge(self, throughput: dict[str, float | None], phase: dict) -> dict:
        o = self.opts
        produced = phase["produced"]
        source_rb = read(self.bootstrap, phase["source"], isolation="read_uncommitted", timeout_s=120)
        produced_s: dict[int, float] = {}
        for d, ts in zip(source_rb.deliveries, source_rb.times_ms, strict=True):
            produced_s.setdefault(d.seq, ts / 1000.0 - self.t0)
        acked = {s.seq for s in produced.sent if s.acked}
        windows = [("before faults", float("-inf"))] + [
            (f"{f['kind']} @{f['at_s']:.1f}s", f["at_s"]) for f in self.fault_log
        ]
        base = throughput.get("at-most-once")
        rows = []
        recoveries: list[dict[str, float | None]] = [{} for _ in self.fault_log]
        for p in self.pipelines:
            deliveries, times = self._read_sink(p)
            verdict = check(p.row.guarantee, produced.sent, deliveries)
            arrivals: Counter[int] = Counter()
            first_s: dict[int, float] = {}
            latencies = []
            for d, ts in zip(deliveries, times, strict=True):
                if d.aborted:
                    continue
                arrivals[d.seq] += 1
                t = ts / 1000.0 - self.t0
                if d.seq not in first_s or t < first_s[d.seq]:
                    first_s[d.seq] = t
            for seq, t in first_s.items():
                if seq in produced_s:
                    latencies.append((t - produced_s[seq]) * 1000.0)
            for i, f in enumerate(self.fault_log):
                recoveries[i][p.row.name] = metrics.catch_up_s(
                    f["at_s"], f["at_s"] + f["duration_s"], produced_s, first_s
                )
            txns = None
            if p.row.guarantee == "exactly-once" and p.row.sink == "topic":
                with self._txn_lock:
                    c, a = p.txns["committed"], p.txns["aborted"]
                txns = {"committed": c, "aborted": a, "abort_rate": metrics.abort_rate(c, a)}
            thr = throughput.get(p.row.name)
            rows.append(
                {
                    "name": p.row.name,
                    "guarantee": p.row.guarantee,
                    "sink": p.row.sink,
                    "sink_name": p.topic,
                    "verdict": {
                        "inputs": verdict.inputs,
                        "lost": verdict.lost,
                        "duplicated": verdict.duplicated,
                        "extra_copies": verdict.extra_copies,
                        "reordered": verdict.reordered,
                        "aborted_reads": verdict.aborted_reads,
                        "unknown": verdict.unknown,
                        "examples": {k: list(v) for k, v in verdict.examples.items()},
                        "broken": verdict.broken,
                        "kept": verdict.kept,
                    },
                    "throughput_msg_s": thr,
                    "overhead": metrics.overhead(thr, base) if p.row.name != "at-most-once" else 0.0,
                    "latency_ms": metrics.latency_summary(latencies),
                    "latency_hist": metrics.latency_histogram(latencies),
                    "timeline": metrics.timeline(
                        [
                            ts / 1000.0 - self.t0
                            for d, ts in zip(deliveries, times, strict=True)
                            if not d.aborted
                        ],
                        bucket_s=1.0,
                        start_s=0.0,
                    ),
                    "transactions": txns,
                    "rebalances": sum(w.assigned_total for w in p.workers) - p.assigned_before,
                    "per_fault": metrics.per_fault(windows, produced_s, arrivals, acked),
                }
            )
        for i, f in enumerate(self.fault_log):
            f["recovery_s"] = recoveries[i]
        producer_checks = self._producer_checks(phase)
        kept = all(r["verdict"]["kept"] for r in rows) and all(
            not c["judged"] or c["acked_then_missing"] == 0 for c in producer_checks
        )
        return {
            "version": 1,
            "tool": f"odradek verify {VERSION}",
            "command": o.command,
            "seed": o.seed,
            "bootstrap": self.opts.bootstrap or "embedded",
            "target": self.target,
            "messages": o.messages,
            "input_topic": phase["source"],
            "workload": {
                "sent": len(produced.sent),
                "acked": len(acked),
                "failed": produced.failed,
                "acked_then_missing": len(acked_then_missing(produced.acks, source_rb.log)),
            },
            "partitions": o.partitions,
            "rate": o.rate,
            "workers": o.workers,
            "sabotage": o.sabotage,
            "kept": kept,
            "exit_code": 0 if kept else 1,
            "faults": self.fault_log,
            "rows": rows,
            "producer": producer_checks,
            "errors": self.errors,
        }

    def _producer_checks(self, phase: dict) -> list[dict]:
        out = []
        for acks, topic in phase["acks_topics"].items():
            res = phase["acks"].get(acks)
            if res is None:
                out.append(
                    {
                        "acks": acks,
                        "sent": 0,
                        "acked": 0,
                        "failed": 0,
                        "acked_then_missing": 0,
                        "missing": 0,
                        "judged": False,
                    }
                )
                continue
            rb = read(self.bootstrap, topic, isolation="read_uncommitted", timeout_s=120)
            in_log = {d.seq for d in rb.deliveries}
            out.append(
                {
                    "acks": acks,
                    "sent": len(res.sent),
                    "acked": sum(1 for s in res.sent if s.acked),
                    "failed": res.failed,
                    "acked_then_missing": len(acked_then_missing(res.acks, rb.log)),
                    "missing": sum(1 for s in res.sent if s.seq not in in_log),
                    "judged": acks == "all",
                }
            )
        return out


def verify(opts: Options, live: Any = None) -> dict:
    """Run ``odradek verify`` with ``opts``; the result dict (see ``docs/verify.md``)."""
    started = time.time()
    run = Run(opts, live)
    result: dict = {}
    try:
        run.start()
        throughput = run.throughput_phase()
        phase = run.fault_phase()
        result = run.judge(throughput, phase)
    finally:
        # A broken or troubled run keeps its directory (the workers' and the broker's logs) to look at.
        troubled = not result or not result.get("kept") or bool(run.errors)
        run.close(keep=troubled)
    result["started_at"] = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["duration_s"] = round(time.time() - started, 1)
    if troubled or opts.keep or not run._own_dir:
        result["work_dir"] = str(run.work)
    return result


def command_line(argv: list[str]) -> str:
    return "odradek verify" + "".join(" " + shlex.quote(a) for a in argv)


__all__ = ["Options", "Run", "SetupError", "verify", "command_line"]
