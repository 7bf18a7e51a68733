"""Helpers for the tests of odradek.stream: an App run on a thread of the test (``Running``), input
produced, output read back and committed offsets read; and for the crash and zombie tests, worker
processes (``worker.py``), input produced fast, progress (committed offsets in Kafka or in the SQL offset
store), output read back and tallied per input sequence id, and the one-line-per-run report printed in
the terminal summary.

Everything talks to loopback brokers and databases only, and every wait is bounded.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from support.kit import read_to_end
from support.odradek import child_env
from support.process import stop_process

if TYPE_CHECKING:
    from odradek.stream import App

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"

#: Lines for the terminal summary (tests/stream/conftest.py prints them under "odradek.stream runs").
REPORT: list[str] = []


def seq(i: int) -> str:
    return f"{i:06d}"


# --------------------------------------------------------------------------------------------------
# Apps in the test process (test_app.py, test_sql_app.py, test_producer.py)


def produce(bootstrap: str, topic: str, values, *, key=None, headers=None) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 0})
    for v in values:
        p.produce(topic, value=v, key=key, headers=headers)
    assert p.flush(30) == 0


def read_topic(bootstrap: str, topic: str, n: int, partitions: int = 1, timeout: float = 30.0):
    """Every record of ``topic`` (read_committed) until ``n`` were read or ``timeout``; then a short
    grace period, so that a test expecting ``n`` also sees an unexpected extra record."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + timeout
    grace = None
    try:
        while time.monotonic() < deadline:
            for m in c.consume(500, 0.2):
                if m.error() is None:
                    got.append(m)
            if len(got) >= n and grace is None:
                grace = time.monotonic() + 1.0
            if grace is not None and time.monotonic() > grace:
                break
        return got
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], 30)]
    finally:
        c.close()


class Running:
    """An App run on a thread (no signal handlers); ``stop()`` ends it and returns its error, if any."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.app.run(exit_on_error=False, install_signal_handlers=False)
        except BaseException as e:  # handed to the test
            self.error = e

    def stop(self, timeout: float = 30.0) -> BaseException | None:
        self.app.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "App.run did not return after stop()"
        return self.error


# --------------------------------------------------------------------------------------------------
# Workers


class Worker:
    """One ``worker.py`` process at a time for one instance id; restartable. Its stdout JSON events are
    collected (each tagged with ``life``, the number of the incarnation), its stderr kept as a tail."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.name: str = cfg["instance_id"]
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=400)
        self.life = 0  # incarnations started
        self.spawned_at: dict[int, float] = {}  # life -> time.time() just before the spawn
        self.killed_at: dict[int, float] = {}  # life -> time.time() of its SIGKILL
        self.kills = 0
        self.exits: list[tuple[int, int]] = []  # (life, exit code) of exits nobody asked for
        self.frozen = False
        self._expected_exit = False

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.life += 1
        life = self.life
        self._expected_exit = False
        self.spawned_at[life] = time.time()
        self.proc = proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(self.cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )

        def read_out() -> None:
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except ValueError:
                    self.stderr.append(f"[{self.name}#{life} stdout] {line.rstrip()}")
                    continue
                ev["life"] = life
                self.events.append(ev)

        def read_err() -> None:
            for line in proc.stderr:
                self.stderr.append(f"[{self.name}#{life}] {line.rstrip()}")

        threading.Thread(target=read_out, daemon=True).start()
        threading.Thread(target=read_err, daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited_unasked(self) -> bool:
        """True (once) when the process ended although nobody killed or stopped it."""
        if self.proc is None or self._expected_exit or self.proc.poll() is None:
            return False
        self._expected_exit = True
        self.exits.append((self.life, self.proc.returncode))
        return True

    def kill(self) -> None:
        """SIGKILL (the crash) and reap."""
        if self.proc is None:
            return
        self._expected_exit = True
        if self.proc.poll() is None:
            self.kills += 1
            self.killed_at[self.life] = time.time()
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait(10)
        self.frozen = False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the library finishes, commits and leaves); SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        self._expected_exit = True
        if self.frozen:
            self.thaw()
        return stop_process(self.proc, timeout, kill_wait=10)

    def freeze(self) -> None:
        assert self.alive
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def dump_stack(self) -> None:
        """Have a live worker write its Python stacks to stderr (faulthandler on SIGUSR1)."""
        if self.alive and not self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["ev"] == "ready" and e["life"] == self.life for e in self.events):
            if not self.alive:
                raise AssertionError(f"{self.name} exited before it was ready:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready within {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.05)

    def firsts(self, life: int | None = None) -> list[dict]:
        return [e for e in self.events if e["ev"] == "first" and (life is None or e["life"] == life)]

    def tail(self, n: int = 25) -> str:
        return "\n".join(list(self.stderr)[-n:])


def tails(workers: Iterable[Worker], n: int = 25) -> str:
    return "\n".join(f"--- {w.name} (life {w.life}, exits {w.exits}):\n{w.tail(n)}" for w in workers)


# --------------------------------------------------------------------------------------------------
# Input and progress


def produce_seqs(bootstrap: str, topic: str, n: int, partitions: int) -> list[int]:
    """``n`` records with values ``seq(i)`` and keys spread over the partitions, by a fast idempotent
    producer; returns the end offset of each partition (they sum to ``n``)."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "log_level": 0,
        }
    )
    errors: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            errors.append(err.str())

    for i in range(n):
        while True:
            try:
                p.produce(topic, key=f"key-{i}".encode(), value=seq(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0 and not errors, errors[:5]
    ends = end_offsets(bootstrap, topic, partitions)
    assert sum(ends) == n and all(e > 0 for e in ends), ends
    return ends


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "streamkit-unused", "log_level": 0})
    try:
        return [
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        ]
    finally:
        c.close()


class KafkaProgress:
    """The group's committed offsets of the input topic, read with OffsetFetch by a consumer that never
    joins the group. ``read()`` is None while the broker does not answer (down, restarting)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})

    def read(self) -> list[int] | None:
        try:
            got = self.c.committed(self.tps, timeout=3)
        except KafkaException:
            return None
        return [max(0, tp.offset) for tp in got]

    def close(self) -> None:
        self.c.close()


class SqlProgress:
    """The positions exactly-once into SQL keeps in the database (``odradek_offsets``)."""

    def __init__(self, url: str, group: str, topic: str, partitions: int) -> None:
        from odradek.stream.sql import SqlOffsetStore, make_engine

        self.engine = make_engine(url)
        self.store = SqlOffsetStore(self.engine)
        self.group, self.topic, self.partitions = group, topic, partitions

    def read(self) -> list[int] | None:
        try:
            got = self.store.read(self.group)
        except Exception:
            return None
        return [max(0, got.get((self.topic, p), (0, 0))[0]) for p in range(self.partitions)]

    def close(self) -> None:
        self.engine.dispose()


# --------------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True)
class Out:
    partition: int
    offset: int
    seq: str
    writer: str


def read_outputs(bootstrap: str, topic: str, partitions: int, *, committed: bool = True) -> list[Out]:
    """Every record of ``topic`` from the beginning to the end (the LSO for read_committed). Call it when
    no transaction on the topic is open, or read_committed waits for it to end (bounded: 60 s)."""
    out: list[Out] = []
    group = "streamkit-reader-unused"
    for m in read_to_end(bootstrap, topic, partitions, committed=committed, group=group, timeout=60):
        value = m.value()
        assert value.startswith(b"out-"), value
        writer = dict(m.headers() or []).get("writer", b"?").decode()
        out.append(Out(m.partition(), m.offset(), value[4:].decode(), writer))
    return out


def read_rows(url: str, table: str) -> list[Out]:
    """The SQL sink's rows as :class:`Out` (partition/offset of the input, not of an output)."""
    import sqlalchemy as sa

    from odradek.stream.sql import make_engine

    engine = make_engine(url)
    try:
        t = sa.Table(table, sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.src_partition, t.c.src_offset, t.c.seq, t.c.writer)).all()
        return [Out(r.src_partition, r.src_offset, r.seq, r.writer) for r in rows]
    finally:
        engine.dispose()


@dataclass
class Tally:
    """How often each of the ``n`` input sequence ids was written."""

    n: int
    counts: collections.Counter = field(default_factory=collections.Counter)

    @classmethod
    def of(cls, n: int, seqs: Iterable[str]) -> Tally:
        t = cls(n, collections.Counter(seqs))
        unknown = [s for s in t.counts if not (s.isdigit() and int(s) < n)]
        assert not unknown, f"outputs for inputs that were never produced: {unknown[:5]}"
        return t

    @property
    def lost(self) -> int:
        return self.n - len(self.counts)

    @property
    def duplicates(self) -> int:
        """Writes beyond the first, over all inputs."""
        return sum(c - 1 for c in self.counts.values() if c > 1)

    @property
    def max_copies(self) -> int:
        return max(self.counts.values(), default=0)

    def missing_sample(self, k: int = 5) -> list[str]:
        return [seq(i) for i in range(self.n) if seq(i) not in self.counts][:k]

    def duplicated_sample(self, k: int = 5) -> list[str]:
        return sorted(s for s, c in self.counts.items() if c > 1)[:k]

    def __str__(self) -> str:
        return (
            f"{sum(self.counts.values())} writes for {self.n} inputs: {self.lost} lost "
            f"(e.g. {self.missing_sample()}), {self.duplicates} duplicates (e.g. {self.duplicated_sample()}, "
            f"at most {self.max_copies} copies)"
        )
