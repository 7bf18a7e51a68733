"""odradek.stream under SIGKILL: each guarantee keeps exactly its promise, on Odradek and on Apache Kafka.

Every run: 100,000 input records (values ``000000``..``099999``, keys spread over 3 partitions) are
mapped one to one by 3 ``worker.py`` processes (instance ids w0..w2, so static membership and, under
exactly-once, stable transactional ids). Each worker processes at most ``RATE`` records per second, so
that the run lasts long enough for 10 SIGKILLs of a random worker at random points spread over it (seeded
RNG; each killed worker restarts after a random 0.2-1.5 s). On Odradek the broker is also SIGKILLed and
restarted on the same port and data twice. The run ends when the group's committed positions reach the
end of every input partition (for exactly-once into SQL: the positions in the database); then the
workers get SIGTERM and the output is read back (read_committed) and counted per input:

* at-most-once: no input written twice (losses are the price, reported and bounded);
* at-least-once: no input missing (duplicates are the price, reported and bounded by what the commit
  interval allows per crash);
* exactly-once, into a topic, SQLite or PostgreSQL: every input exactly once.

Recovery: every restarted worker must process its first record within ``RECOVERY_S`` of its App being
built (its "ready" line; interpreter start-up and imports come before, and are reported besides), as
static membership gives its partitions back at once, whenever work was left for it and no broker kill
was near. Each run prints one line in the terminal summary ("odradek.stream runs").
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
import zlib
from dataclasses import dataclass, field

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

N = 100_000
PARTITIONS = 3
WORKERS = 3
RATE = 1000  # records per second per worker: 100k take about 35 s of processing
WORKER_KILLS = 10
BROKER_KILLS = 2
BUDGET_S = 110
STALL_S = 25  # no progress for this long: the workers are stuck (their stacks are dumped into the failure)
RECOVERY_S = 5.0
RESTART_DELAY_S = (0.2, 1.5)
BATCH = 500  # the App's default batch_size: what at-most-once may lose per crash
ALO_INTERVAL_S = 1.0  # the at-least-once default commit interval

GUARANTEES = ["at-most-once", "at-least-once", "exactly-once"]


@dataclass
class Outcome:
    tally: Tally
    seconds: float
    worker_kills: int
    broker_kills: int
    broker_down_s: float
    unasked_exits: list[tuple[str, int, int]]
    recoveries: list[tuple[float, float]]  # (from spawn, from ready) per judged restart
    late: list[str] = field(default_factory=list)  # restarts that did not recover in time


def _strata(rng: random.Random, k: int, lo: float, hi: float) -> list[float]:
    """One point drawn in each of ``k`` equal slices of [lo, hi): random, yet spread over the run."""
    width = (hi - lo) / k
    return [rng.uniform(lo + i * width, lo + (i + 1) * width) for i in range(k)]


def _chaos(
    workers: list[Worker],
    progress,
    ends: list[int],
    rng: random.Random,
    *,
    restart_broker=None,
) -> Outcome:
    """Start the workers, disrupt them at the planned points, restart what died, and return once the
    committed positions reach ``ends`` (the workers are stopped with SIGTERM then)."""
    plan = [(f, "worker") for f in _strata(rng, WORKER_KILLS, 0.04, 0.80)]
    if restart_broker is not None:
        plan += [(f, "broker") for f in _strata(rng, BROKER_KILLS, 0.20, 0.70)]
    plan.sort()
    n = sum(ends)
    restarts: dict[str, float] = {}
    by_name = {w.name: w for w in workers}
    broker_kills: list[tuple[float, float]] = []  # (time.time() at the kill, seconds until serving again)
    timeline: list[tuple[float, list[int]]] = []
    unasked: list[tuple[str, int, int]] = []
    t0 = time.monotonic()
    moved_at, last = t0, None
    for w in workers:
        w.start()
    try:
        while True:
            now = time.monotonic()
            stalled = now - moved_at > STALL_S
            if now - t0 > BUDGET_S or stalled:
                for w in workers:
                    w.dump_stack()
                time.sleep(1)
                raise AssertionError(
                    f"{f'no progress for {STALL_S}s' if stalled else f'not done in {BUDGET_S}s'}: positions "
                    f"{last} of {ends} after {now - t0:.0f}s, broker kills {len(broker_kills)}, "
                    f"plan left {plan}; "
                    f"workers:\n{tails(workers, 40)}"
                )
            for w in workers:
                if w.exited_unasked():
                    unasked.append((w.name, w.life, w.exits[-1][1]))
                    restarts[w.name] = now
            for name, due in list(restarts.items()):
                if now >= due:
                    by_name[name].start()
                    del restarts[name]
            positions = progress.read()
            if positions is not None:
                timeline.append((time.time(), positions))
                if positions != last:
                    moved_at, last = time.monotonic(), positions
                if all(p >= e for p, e in zip(positions, ends, strict=True)):
                    break
                if plan and sum(positions) >= plan[0][0] * n:
                    what = plan[0][1]
                    if what == "broker":
                        plan.pop(0)
                        at = time.time()
                        restart_broker()
                        broker_kills.append((at, time.time() - at))
                    else:
                        alive = [w for w in workers if w.alive and w.name not in restarts]
                        if alive:
                            plan.pop(0)
                            victim = rng.choice(alive)
                            time.sleep(rng.uniform(0, 0.3))  # anywhere in a batch or transaction
                            victim.kill()
                            restarts[victim.name] = time.monotonic() + rng.uniform(*RESTART_DELAY_S)
            time.sleep(0.1)
        seconds = time.monotonic() - t0
        assert not plan, f"the run ended before every disruption happened: left {plan}"
    finally:
        codes = {w.name: w.stop() for w in workers}
    assert all(c == 0 for c in codes.values()), f"a worker did not stop cleanly on SIGTERM: {codes}"
    recoveries, late = _recoveries(workers, timeline, ends, broker_kills)
    return Outcome(
        tally=Tally(0),
        seconds=seconds,
        worker_kills=sum(w.kills for w in workers),
        broker_kills=len(broker_kills),
        broker_down_s=max((d for _, d in broker_kills), default=0.0),
        unasked_exits=unasked,
        recoveries=recoveries,
        late=late,
    )


def _recoveries(workers, timeline, ends, broker_kills) -> tuple[list[tuple[float, float]], list[str]]:
    """For each restart: (seconds from its spawn, seconds from its App being built (the "ready" line,
    after the interpreter started and imported everything)) to its first processed record; and the
    restarts judged late: they had work left (every partition short of its end RECOVERY_S after the
    spawn) and lived long enough, but did not process within RECOVERY_S of being ready. Restarts within
    10 s after or RECOVERY_S before a broker kill are not judged."""

    def behind_everywhere(t: float) -> bool:
        later = [p for at, p in timeline if at >= t]
        return bool(later) and all(p < e for p, e in zip(later[0], ends, strict=True))

    measured: list[tuple[float, float]] = []
    late: list[str] = []
    for w in workers:
        for life in range(2, w.life + 1):
            spawn = w.spawned_at[life]
            if any(spawn - 10 <= at <= spawn + RECOVERY_S for at, _ in broker_kills):
                continue
            ready = next((e["t"] for e in w.events if e["ev"] == "ready" and e["life"] == life), None)
            firsts = w.firsts(life)
            took = None
            if firsts and ready is not None:
                first = min(e["t"] for e in firsts)
                took = first - ready
                measured.append((first - spawn, took))
            lived = w.killed_at.get(life, float("inf")) - (ready or spawn)
            judged = lived > RECOVERY_S and behind_everywhere((ready or spawn) + RECOVERY_S)
            if judged and (took is None or took > RECOVERY_S):
                late.append(f"{w.name}#{life}: {'nothing processed' if took is None else f'{took:.1f}s'}")
    return measured, late


def _report(kind: str, guarantee: str, sink: str, o: Outcome) -> None:
    if o.recoveries:
        spawn = [a for a, _ in o.recoveries]
        ready = [b for _, b in o.recoveries]
        rec = (
            f"recovery from ready median {statistics.median(ready):.2f}s max {max(ready):.2f}s, from spawn "
            f"median {statistics.median(spawn):.2f}s max {max(spawn):.2f}s (n={len(ready)})"
        )
    else:
        rec = "recovery not measured"
    broker = f", broker kills {o.broker_kills} (down <= {o.broker_down_s:.1f}s)" if o.broker_kills else ""
    REPORT.append(
        f"crash {kind:7} {guarantee:13} -> {sink:8}: lost {o.tally.lost:5}, duplicates "
        f"{o.tally.duplicates:5} of {o.tally.n}; worker kills {o.worker_kills}{broker}, unasked exits "
        f"{len(o.unasked_exits)}; {rec}; {o.seconds:.1f}s"
    )


def _check(guarantee: str, o: Outcome, diagnostics: str) -> None:
    t = o.tally
    crashes = o.worker_kills + len(o.unasked_exits)
    if guarantee == "at-most-once":
        assert t.duplicates == 0, f"at-most-once wrote inputs twice: {t}"
        # A crash loses the batch in hand; a broker kill, what was on the wire (acks=0) and queued.
        bound = crashes * (BATCH + RATE) + o.broker_kills * WORKERS * RATE * (o.broker_down_s + 2)
        assert t.lost <= bound, f"at-most-once lost more than {bound:.0f}: {t}"
    elif guarantee == "at-least-once":
        assert t.lost == 0, f"at-least-once lost inputs: {t}"
        # A crash repeats what its worker processed since its last commit: one interval, plus the time
        # the commit and a batch take; a broker kill may make all workers repeat that.
        per_crash = RATE * (ALO_INTERVAL_S + 2)
        bound = crashes * per_crash + o.broker_kills * WORKERS * RATE * (ALO_INTERVAL_S + 2 + o.broker_down_s)
        assert t.duplicates <= bound, f"at-least-once repeated more than {bound:.0f}: {t}"
        assert t.max_copies <= 1 + crashes + o.broker_kills, t
    else:
        assert t.lost == 0 and t.duplicates == 0, f"exactly-once broken: {t}\n{diagnostics}"
    assert not o.late, f"restarted workers slower than {RECOVERY_S}s to process again: {o.late}"


def _workers(bootstrap: str, guarantee: str, group: str, topic_in: str, sink: dict) -> list[Worker]:
    base = {"bootstrap": bootstrap, "group": group, "guarantee": guarantee, "input": topic_in, "rate": RATE}
    return [Worker({**base, **sink, "instance_id": f"w{i}"}) for i in range(WORKERS)]


def _seed(request) -> random.Random:
    seed = zlib.crc32(request.node.nodeid.encode())
    return random.Random(seed)


def _topic_run(bootstrap_of, kind: str, guarantee: str, unique, rng, restart_broker=None) -> None:
    bootstrap = bootstrap_of()
    topic_in, topic_out, group = unique("in"), unique("out"), unique("g")
    create_topic(bootstrap, topic_in, PARTITIONS)
    create_topic(bootstrap, topic_out, PARTITIONS)
    ends = produce_seqs(bootstrap, topic_in, N, PARTITIONS)
    workers = _workers(bootstrap, guarantee, group, topic_in, {"output": topic_out})
    progress = KafkaProgress(bootstrap, group, topic_in, PARTITIONS)
    try:
        o = _chaos(workers, progress, ends, rng, restart_broker=restart_broker)
    finally:
        progress.close()
    o.tally = Tally.of(N, (r.seq for r in read_outputs(bootstrap_of(), topic_out, PARTITIONS)))
    _report(kind, guarantee, "topic", o)
    _check(guarantee, o, tails(workers, 10))


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_worker_kills_on_kafka(kafka, guarantee, unique, request):
    """Apache Kafka 4.4: 10 worker SIGKILLs."""
    _topic_run(lambda: kafka.bootstrap, "kafka", guarantee, unique, _seed(request))


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_worker_and_broker_kills_on_odradek(odradek_factory, guarantee, unique, request):
    """A private Odradek: 10 worker SIGKILLs and 2 broker SIGKILLs (restarted on the same port and data)."""
    b = odradek_factory()
    _topic_run(
        lambda: b.bootstrap, "odradek", guarantee, unique, _seed(request), lambda: b.restart(hard=True)
    )


def _sql_run(bootstrap: str, kind: str, url: str, unique, rng, restart_broker=None) -> None:
    topic_in, group, table = unique("in"), unique("g"), f"rows_{uuid.uuid4().hex[:12]}"
    create_topic(bootstrap, topic_in, PARTITIONS)
    ends = produce_seqs(bootstrap, topic_in, N, PARTITIONS)
    workers = _workers(bootstrap, "exactly-once", group, topic_in, {"sql_url": url, "table": table})
    progress = SqlProgress(url, group, topic_in, PARTITIONS)
    try:
        o = _chaos(workers, progress, ends, rng, restart_broker=restart_broker)
    finally:
        progress.close()
    rows = read_rows(url, table)
    o.tally = Tally.of(N, (r.seq for r in rows))
    _report(kind, "exactly-once", url.split(":")[0].split("+")[0], o)
    _check("exactly-once", o, tails(workers, 10))
    by_input = {(r.partition, r.offset) for r in rows}
    assert len(by_input) == N, f"{len(rows)} rows cover only {len(by_input)} input positions"


def test_exactly_once_into_sqlite_with_broker_kills_on_odradek(odradek_factory, unique, tmp_path, request):
    b = odradek_factory()
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    _sql_run(b.bootstrap, "odradek", url, unique, _seed(request), lambda: b.restart(hard=True))


def test_exactly_once_into_postgres_on_kafka(kafka, postgres_url, unique, request):
    url = new_database(postgres_url, "crash")
    _sql_run(kafka.bootstrap, "kafka", url, unique, _seed(request))
