"""Consume-transform-produce exactly once, under SIGKILL.

A ``copier.py`` process (read_committed consumer in a group + transactional producer,
``send_offsets_to_transaction``, ~500 records per transaction) copies 100,000 records from a 3-partition
input topic to the same partitions of an output topic. The test SIGKILLs the copier 4 times at random
points (both brokers), or SIGKILLs and restarts the broker (a private Odradek) twice, restarting the copier
whenever it exits. At the end, read_committed, each output partition equals its input partition: every
record exactly once, in order.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from eoskit import committed_offsets, create_topic, produce_values, read_all, values_of

from support.odradek import child_env

HERE = Path(__file__).resolve().parent
N = 100_000
PARTITIONS = 3
BUDGET_S = 150
STALL_S = 10


class Copier:
    """The copier process, restartable; its JSON lines are collected by a reader thread."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self.starts = 0
        self.stall_restarts = 0

    def start(self) -> None:
        self.starts += 1
        self.proc = proc = subprocess.Popen(
            [sys.executable, str(HERE / "copier.py"), json.dumps(self.cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )

        def read(stream, sink, parse):
            for line in stream:
                if parse:
                    try:
                        sink.append(json.loads(line))
                    except ValueError:
                        pass
                else:
                    sink.append(line.rstrip())

        threading.Thread(target=read, args=(proc.stdout, self.events, True), daemon=True).start()
        threading.Thread(target=read, args=(proc.stderr, self.stderr, False), daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def ensure_running(self) -> None:
        if not self.alive:
            self.start()

    def commits(self) -> int:
        return sum(1 for e in self.events if e.get("ev") == "commit")

    def aborts(self) -> int:
        return sum(1 for e in self.events if e.get("ev") == "abort")


def _progress(bootstrap: str, group: str, topic: str) -> int:
    try:
        return sum(committed_offsets(bootstrap, group, topic, PARTITIONS).values())
    except Exception:
        return -1  # broker down or coordinator moving: unknown


def _run(
    bootstrap_of, copier: Copier, group: str, topic_in: str, disrupt_at: list[float], disrupt
) -> list[int]:
    """Run the copier to completion, calling ``disrupt()`` when progress passes each fraction.

    A copier that makes no progress for STALL_S seconds is SIGKILLed and restarted (counted in
    ``copier.stall_restarts``): after an Odradek restart librdkafka's send_offsets_to_transaction can
    hang past its timeout, because Odradek forgets group membership on restart (see the report).
    """
    copier.start()
    deadline = time.monotonic() + BUDGET_S
    seen_at: list[int] = []
    pending = sorted(disrupt_at)
    last, last_change = -1, time.monotonic()
    while True:
        assert time.monotonic() < deadline, (
            f"copy not finished in {BUDGET_S}s: progress {_progress(bootstrap_of(), group, topic_in)}/{N}, "
            f"copier starts {copier.starts}; last events {copier.events[-3:]}; "
            f"stderr tail: {copier.stderr[-10:]}"
        )
        done = _progress(bootstrap_of(), group, topic_in)
        if done >= N:
            break
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL_S and copier.alive:
            copier.stall_restarts += 1
            copier.kill()
            last_change = time.monotonic()
        if pending and done >= pending[0] * N and (not seen_at or done > seen_at[-1]):
            pending.pop(0)
            time.sleep(random.uniform(0, 0.3))  # somewhere inside a transaction, most likely
            seen_at.append(done)
            disrupt()
            last_change = time.monotonic()
        copier.ensure_running()
        time.sleep(0.2)
    copier.kill()
    return seen_at


def _verify(bootstrap: str, topic_in: str, topic_out: str) -> None:
    inp = read_all(bootstrap, topic_in, PARTITIONS, committed=True, timeout=60)
    out = read_all(bootstrap, topic_out, PARTITIONS, committed=True, timeout=60)
    assert len(inp) == N
    for part in range(PARTITIONS):
        want = values_of(r for r in inp if r.partition == part)
        got = values_of(r for r in out if r.partition == part)
        if got != want:
            dups = len(got) - len(set(got))
            missing = len(set(want) - set(got))
            raise AssertionError(
                f"output partition {part}: {len(got)} records for {len(want)} inputs, {dups} duplicates, "
                f"{missing} missing, in input order: {[v for v in want if v in set(got)] == got}"
            )


def _setup(bootstrap: str, unique) -> tuple[str, str, str, dict]:
    topic_in, topic_out, group = unique("copy-in"), unique("copy-out"), unique("copy-group")
    create_topic(bootstrap, topic_in, PARTITIONS)
    create_topic(bootstrap, topic_out, PARTITIONS)
    produce_values(bootstrap, topic_in, (f"id-{i:06d}" for i in range(N)), PARTITIONS)
    cfg = {
        "bootstrap": bootstrap,
        "input": topic_in,
        "output": topic_out,
        "group": group,
        "txn_id": unique("copier-txn"),
        "instance": "copier-0",
        "batch": 500,
    }
    return topic_in, topic_out, group, cfg


def test_copy_survives_copier_kills(broker, unique):
    """Odradek and Kafka: the copier is SIGKILLed 4 times at random points."""
    rng = random.Random()
    topic_in, topic_out, group, cfg = _setup(broker.bootstrap, unique)
    copier = Copier(cfg)
    t0 = time.monotonic()
    try:
        # One point in each of four strata, leaving a third of the copy after the last kill: Odradek copies
        # fast enough that points drawn close together, or late, could finish before their kill.
        points = [rng.uniform(lo, lo + 0.12) for lo in (0.05, 0.2, 0.35, 0.5)]
        seen = _run(lambda: broker.bootstrap, copier, group, topic_in, points, copier.kill)
    finally:
        copier.kill()
    elapsed = time.monotonic() - t0
    assert len(seen) == 4 and all(0 < s < N for s in seen), seen
    assert copier.starts >= 5
    _verify(broker.bootstrap, topic_in, topic_out)
    assert copier.stall_restarts == 0, "the copier stalled without any broker disruption"
    print(f"{broker.kind}: copied {N} with {copier.starts - 1} copier kills at {seen} in {elapsed:.1f}s")


def test_copy_survives_broker_kills(fresh_odradek, unique):
    """Odradek only: the broker is SIGKILLed and restarted (same port, same data) twice mid-copy."""
    b = fresh_odradek
    rng = random.Random()
    topic_in, topic_out, group, cfg = _setup(b.bootstrap, unique)
    copier = Copier(cfg)
    t0 = time.monotonic()

    def crash_broker():
        b.restart(hard=True)

    try:
        # One point in each of two strata, leaving almost half of the copy after the second kill: with
        # acks written behind, a copier that catches up after a restart can pass a late or close second
        # point, and the end, between two looks at its progress.
        points = [rng.uniform(lo, lo + 0.2) for lo in (0.1, 0.35)]
        seen = _run(lambda: b.bootstrap, copier, group, topic_in, points, crash_broker)
    finally:
        copier.kill()
    elapsed = time.monotonic() - t0
    assert len(seen) == 2 and all(0 < s < N for s in seen), seen
    _verify(b.bootstrap, topic_in, topic_out)
    print(
        f"odradek: copied {N} with 2 broker kills at {seen} in {elapsed:.1f}s; "
        f"copier starts {copier.starts} ({copier.stall_restarts} after a stall), aborts {copier.aborts()}"
    )
