"""Helpers for the consumer-group tests: topics, producing, member processes, group admin queries."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from support.kit import admin, create_topic, wait_until  # noqa: F401  (shared; re-exported)
from support.odradek import child_env

HERE = Path(__file__).resolve().parent
MEMBER_SCRIPT = HERE / "member.py"
TIMEOUT_S = 30.0

# Classic members: a small session timeout (the brokers' default minimum) and fast heartbeats.
CLASSIC = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}

for _name in ("kafka", "aiokafka"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def produce(bootstrap: str, topic: str, values: Iterable[str], partition: int | None = None, partitions=1):
    """Produce ``values`` (round-robin over ``partitions`` unless ``partition`` is given); acks=all."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0})
    errors: list = []
    for i, v in enumerate(values):
        part = partition if partition is not None else i % partitions
        p.produce(topic, value=v.encode(), partition=part, on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0 and not errors, errors


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets for ``topic`` (OffsetFetch via the confluent AdminClient)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    a = admin(bootstrap)  # keep the client alive until the future resolves
    res = a.list_consumer_group_offsets([req])[group].result(TIMEOUT_S)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.offset >= 0}


def describe(bootstrap: str, group: str):
    a = admin(bootstrap)
    return a.describe_consumer_groups([group])[group].result(TIMEOUT_S)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-watermarks", "log_level": 0})
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
        }
    finally:
        c.close()


class Member:
    """A ``member.py`` process; its JSON-line events are collected by a reader thread."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: list[str],
        *,
        conf: dict | None = None,
        mode: str = "loop",
        name: str = "",
        **extra,
    ) -> None:
        cfg = {"bootstrap": bootstrap, "group": group, "topics": topics, "conf": conf or {}, "mode": mode}
        cfg.update(extra)
        self.name = name or f"{mode}-{id(self):x}"
        c = conf or {}
        self.cooperative = (
            c.get("partition.assignment.strategy") == "cooperative-sticky"
            or c.get("group.protocol") == "consumer"
        )
        self.events: list[dict] = []
        self.stderr_lines: list[str] = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    # -- state derived from the events -------------------------------------------------------------
    def of(self, *kinds: str, since: int = 0) -> list[dict]:
        with self._cv:
            return [e for e in self.events[since:] if e["ev"] in kinds]

    def mark(self) -> int:
        with self._cv:
            return len(self.events)

    def owned(self) -> set[tuple[str, int]]:
        """Partitions currently owned, replaying assign / revoke / lost (eager: assign replaces)."""
        cooperative = self.cooperative
        own: set[tuple[str, int]] = set()
        for e in self.of("assign", "revoke", "lost"):
            ps = {(t, p) for t, p in e["parts"]}
            if e["ev"] == "assign":
                own = own | ps if cooperative else ps
            else:
                own -= ps
        return own

    def values(self, kind: str = "processed") -> list[str]:
        return [e["v"] for e in self.of(kind)]

    def errors(self) -> list[dict]:
        return self.of("error")

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL this member's process (no LeaveGroup, no commit)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int:
        """Ask for a clean close() (commit + LeaveGroup) and wait for the exit."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"member {self.name} did not stop within {timeout}s") from None

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"member {self.name} still running after {timeout}s: {self.debug()}"
            ) from None

    def debug(self) -> str:
        tail = "\n".join(self.stderr_lines[-15:])
        evs = [e for e in self.events if e["ev"] != "msg"][-25:]
        return f"[{self.name}] events={evs} stderr=\n{tail}"


def ownership(ms: list[Member]) -> dict[str, set[tuple[str, int]]]:
    return {m.name: m.owned() for m in ms}


def exact_partition(ms: list[Member], topic: str, partitions: int, sizes: list[int] | None = None) -> bool:
    """Every partition owned by exactly one of ``ms`` (and, with ``sizes``, the sorted counts match)."""
    owned = [m.owned() for m in ms]
    flat = [tp for o in owned for tp in o]
    if sorted(flat) != sorted((topic, p) for p in range(partitions)):
        return False
    return sizes is None or sorted(len(o) for o in owned) == sorted(sizes)
