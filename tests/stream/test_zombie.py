"""Zombie fencing under exactly-once: a worker frozen (SIGSTOP) while its partitions move to another
worker gets no write in after it is resumed (SIGCONT). Odradek and Apache Kafka 4.4; Kafka transactions
and SQL (SQLite and PostgreSQL).

Two ``worker.py`` processes (w0, w1; static membership, session timeout 6 s) process slowly (1 ms per
record, so a transaction or a batch of rows is open most of the time). Once both are processing, the
one with the most partitions is frozen; the test waits until the other processes records of the frozen
worker's partitions (the takeover), then resumes the zombie, which finds itself in the middle of a
batch it no longer owns. The run ends when the group's positions reach the end of the input.

* Kafka transactions: read_committed, the output holds each input exactly once; read_uncommitted shows
  records the zombie wrote that read_committed does not: its open transaction was aborted, not
  committed.
* SQL: the table holds each input exactly once (the zombie's commit is fenced by the partition epochs,
  or its partitions are dropped as lost before it tries).
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from streamkit import (
    REPORT,
    KafkaProgress,
    SqlProgress,
    Tally,
    Worker,
    produce_seqs,
    read_outputs,
    read_rows,
    tails,
)

from support.databases import new_database
from support.kit import create_topic

N = 12_000
PARTITIONS = 3
SESSION_TIMEOUT_MS = 6000
TAKEOVER_S = 30.0
TXN_TIMEOUT_S = 10.0  # the library's transaction.timeout.ms under exactly-once
BUDGET_S = 90.0


def _consumer_cfg() -> dict:
    return {"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000}


def _zombie_run(
    bootstrap: str, topic_in: str, group: str, sink: dict, progress, ends, hold_s: float = 0.0
) -> dict:
    """Freeze one worker, wait for the takeover (and until ``hold_s`` after the freeze), resume it, and
    run to the end. Returns what happened."""
    base = {
        "bootstrap": bootstrap,
        "group": group,
        "guarantee": "exactly-once",
        "input": topic_in,
        "sleep_ms": 1,
        "consumer": _consumer_cfg(),
        **sink,
    }
    workers = [Worker({**base, "instance_id": f"w{i}"}) for i in range(2)]
    t0 = time.monotonic()
    info: dict = {}
    for w in workers:
        w.start()
    try:
        _wait(lambda: all(w.firsts() for w in workers), 30, "both workers processing", workers)
        time.sleep(1.0)
        zombie = max(workers, key=lambda w: len(w.firsts()))
        other = next(w for w in workers if w is not zombie)
        owned = {e["partition"] for e in zombie.firsts()}
        zombie.freeze()
        frozen_at = time.time()

        def taken_over() -> bool:
            return any(e["partition"] in owned and e["t"] > frozen_at for e in other.firsts())

        _wait(taken_over, TAKEOVER_S, f"{other.name} processing {sorted(owned)} of the frozen one", workers)
        time.sleep(max(0.0, frozen_at + hold_s - time.time()))
        info["frozen_s"] = time.time() - frozen_at
        zombie.thaw()
        deadline = t0 + BUDGET_S

        def done() -> bool:
            p = progress.read()
            return p is not None and all(a >= b for a, b in zip(p, ends, strict=True))

        _wait(done, max(1.0, deadline - time.monotonic()), f"positions reaching {ends}", workers)
        info["zombie"] = zombie.name
        info["owned"] = sorted(owned)
        info["zombie_log"] = "\n".join(zombie.stderr)
    finally:
        codes = {w.name: w.stop() for w in workers}
    info["codes"] = codes
    info["exits"] = {w.name: w.exits for w in workers}
    info["seconds"] = time.monotonic() - t0
    info["tails"] = tails(workers, 30)
    other_name = next(w.name for w in workers if w.name != info["zombie"])
    assert codes[other_name] == 0 and not info["exits"][other_name], (
        f"the surviving worker did not run cleanly to the end: {codes}, {info['exits']}\n{info['tails']}"
    )
    return info


def _wait(pred, timeout: float, what: str, workers) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{tails(workers)}")
        time.sleep(0.1)


def _noticed(log: str) -> str:
    """How the zombie learnt it was one, from the library's log lines."""
    marks = [m for m in ("fenced", "partitions lost", "taken over") if m in log]
    why = re.search(r"transaction aborted, rewinding: (.{0,90})", log)
    if why:
        marks.append(f"commit refused ({why.group(1).strip()})")
    stopped = re.search(r"CRITICAL odradek\.stream: odradek\.stream: (.{0,110})", log)
    if stopped:
        marks.append(f"stopped ({stopped.group(1).strip()})")
    return ", ".join(marks) or "nothing logged"


@pytest.fixture
def zbroker(request):
    """A private Odradek, or the session's Apache Kafka (started only when asked for)."""
    if request.param == "odradek":
        return request.getfixturevalue("odradek_factory")()
    return request.getfixturevalue("kafka")


@pytest.mark.parametrize("hold_s", [0.0, TXN_TIMEOUT_S + 3], ids=["resumed-at-takeover", "past-txn-timeout"])
@pytest.mark.parametrize("zbroker", ["odradek", "kafka"], indirect=True)
def test_frozen_worker_cannot_commit_its_kafka_transaction(zbroker, hold_s, unique):
    """Resumed as soon as its partitions were taken over (its transaction still open: its commit must be
    refused), or only after the transaction timeout (the broker aborted it: the producer is fenced)."""
    bs = zbroker.bootstrap
    kind = "kafka" if "Kafka" in type(zbroker).__name__ else "odradek"
    topic_in, topic_out, group = unique("in"), unique("out"), unique("g")
    create_topic(bs, topic_in, PARTITIONS)
    create_topic(bs, topic_out, PARTITIONS)
    ends = produce_seqs(bs, topic_in, N, PARTITIONS)
    progress = KafkaProgress(bs, group, topic_in, PARTITIONS)
    try:
        info = _zombie_run(bs, topic_in, group, {"output": topic_out}, progress, ends, hold_s)
    finally:
        progress.close()
    committed = read_outputs(bs, topic_out, PARTITIONS, committed=True)
    everything = read_outputs(bs, topic_out, PARTITIONS, committed=False)
    visible = {(r.partition, r.offset) for r in committed}
    aborted_zombie = [
        r for r in everything if r.writer == info["zombie"] and (r.partition, r.offset) not in visible
    ]
    tally = Tally.of(N, (r.seq for r in committed))
    REPORT.append(
        f"zombie {kind:7} kafka-txn: frozen {info['frozen_s']:.1f}s; {tally.lost} lost, {tally.duplicates} "
        f"duplicates; {len(aborted_zombie)} records of the zombie aborted; zombie noticed: "
        f"{_noticed(info['zombie_log'])}; exit codes {info['codes']}; {info['seconds']:.1f}s"
    )
    assert tally.lost == 0 and tally.duplicates == 0, (
        f"exactly-once broken by the zombie: {tally}\n{info['tails']}"
    )
    assert aborted_zombie, (
        "the frozen worker had no aborted records: it was not frozen inside an open transaction, so the test "
        f"proved nothing\n{info['tails']}"
    )
    # Everything the zombie wrote after its last commit is invisible, and its inputs were written again by
    # the worker that took over.
    again = {r.seq: r.writer for r in committed}
    assert any(again[r.seq] != info["zombie"] for r in aborted_zombie), (
        "no aborted input was redone by the other"
    )


@pytest.mark.parametrize(
    ("zbroker", "db"), [("odradek", "sqlite"), ("kafka", "postgres")], indirect=["zbroker"]
)
def test_frozen_worker_cannot_commit_its_rows(zbroker, db, unique, tmp_path, request):
    bs = zbroker.bootstrap
    kind = "kafka" if "Kafka" in type(zbroker).__name__ else "odradek"
    if db == "sqlite":
        url = f"sqlite:///{tmp_path / 'sink.db'}"
    else:
        url = new_database(request.getfixturevalue("postgres_url"), "zombie")
    topic_in, group, table = unique("in"), unique("g"), f"rows_{uuid.uuid4().hex[:12]}"
    create_topic(bs, topic_in, PARTITIONS)
    ends = produce_seqs(bs, topic_in, N, PARTITIONS)
    progress = SqlProgress(url, group, topic_in, PARTITIONS)
    try:
        info = _zombie_run(bs, topic_in, group, {"sql_url": url, "table": table}, progress, ends)
    finally:
        progress.close()
    rows = read_rows(url, table)
    tally = Tally.of(N, (r.seq for r in rows))
    REPORT.append(
        f"zombie {kind:7} {db:9}: frozen {info['frozen_s']:.1f}s; {tally.lost} lost, {tally.duplicates} "
        f"duplicates; zombie noticed: {_noticed(info['zombie_log'])}; exit codes {info['codes']}; "
        f"{info['seconds']:.1f}s"
    )
    assert tally.lost == 0 and tally.duplicates == 0, (
        f"exactly-once broken by the zombie: {tally}\n{info['tails']}"
    )
    assert len({(r.partition, r.offset) for r in rows}) == N
