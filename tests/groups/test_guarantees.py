"""The two delivery guarantees of delivery-guarantees.md, shown as they are, with crashing consumers.

* at-most-once (the Python snippet's consumer: ``enable.auto.commit=True``, a short interval): the member
  reads a batch, processes part of it, lets the auto-commit cover the whole batch, then crashes. The
  next member of the group starts after the committed offset: the rest of the batch is lost, nothing
  is processed twice.
* at-least-once (``enable.auto.commit=False``, a synchronous commit after every few processed
  messages): the member crashes after processing messages it has not committed yet. The next member
  processes them again: nothing is lost, some are duplicates.

Crashes are ``os._exit`` inside the member process at a fixed point (no close(), so no LeaveGroup and no
final commit). Both scenarios run side by side (separate groups and topics), so the restarted members
wait for the dead members' session timeouts concurrently. Odradek and Kafka, same assertions.
"""

from __future__ import annotations

from collections import Counter

from gkit import CLASSIC, committed, create_topic, produce, wait_until

N = 30
BATCH, PROCESS = 10, 4  # at-most-once: a batch of 10, 4 processed before the crash
EVERY, CRASH_AFTER = 4, 10  # at-least-once: commit every 4, crash after processing the 10th


def _tally(processed: list[str]) -> tuple[int, int]:
    """(lost, duplicates) against the N values produced."""
    counts = Counter(processed)
    assert set(counts) <= {f"v{i}" for i in range(N)}
    lost = N - len(counts)
    dups = sum(c - 1 for c in counts.values())
    return lost, dups


def test_at_most_once_and_at_least_once_after_a_crash(broker, unique, members):
    amo_topic, amo_group = unique("amo"), unique("amo-group")
    alo_topic, alo_group = unique("alo"), unique("alo-group")
    values = [f"v{i}" for i in range(N)]
    for topic in (amo_topic, alo_topic):
        create_topic(broker.bootstrap, topic, 1)
        produce(broker.bootstrap, topic, values, partition=0)

    # --- the crashing members ------------------------------------------------------------------------
    amo_conf = {**CLASSIC, "enable.auto.commit": True, "auto.commit.interval.ms": 100}
    alo_conf = {**CLASSIC, "enable.auto.commit": False}
    amo1 = members(
        broker.bootstrap,
        amo_group,
        [amo_topic],
        conf=amo_conf,
        mode="amo",
        name="amo1",
        batch=BATCH,
        process=PROCESS,
    )
    alo1 = members(
        broker.bootstrap,
        alo_group,
        [alo_topic],
        conf=alo_conf,
        mode="alo",
        name="alo1",
        commit_every=EVERY,
        crash_after=CRASH_AFTER,
    )
    assert amo1.wait_exit(40) == 9, amo1.debug()
    assert alo1.wait_exit(40) == 9, alo1.debug()
    batch = amo1.of("batch")[0]["values"]
    assert batch == values[: len(batch)] and len(batch) > PROCESS, amo1.debug()
    assert amo1.of("covered")[0]["ok"], f"the auto-commit did not cover the batch: {amo1.debug()}"
    assert amo1.values() == values[:PROCESS]
    assert alo1.values() == values[:CRASH_AFTER]
    # What the group has committed at the crash: the whole batch (at-most-once); the last commit
    # before the crash (at-least-once).
    assert committed(broker.bootstrap, amo_group, amo_topic, 1) == {0: len(batch)}
    last_commit = CRASH_AFTER // EVERY * EVERY
    assert committed(broker.bootstrap, alo_group, alo_topic, 1) == {0: last_commit}

    # --- the restarted members (same groups) -----------------------------------------------------------
    amo2 = members(broker.bootstrap, amo_group, [amo_topic], conf=amo_conf, mode="loop", name="amo2")
    alo2 = members(
        broker.bootstrap, alo_group, [alo_topic], conf=alo_conf, mode="alo", name="alo2", commit_every=EVERY
    )
    wait_until(lambda: f"v{N - 1}" in amo2.values("msg"), 40, amo2.debug)
    wait_until(lambda: f"v{N - 1}" in alo2.values(), 40, alo2.debug)
    for m in (amo2, alo2):
        assert m.stop() == 0, m.debug()

    # --- at-most-once: the unprocessed rest of the batch is lost, nothing duplicated -------------------
    amo_seen = amo1.values() + amo2.values("msg")
    assert amo2.values("msg")[0] == f"v{len(batch)}", amo2.debug()  # resumed after the committed batch
    lost, dups = _tally(amo_seen)
    assert lost == len(batch) - PROCESS and lost > 0, (lost, amo_seen)
    assert dups == 0, amo_seen

    # --- at-least-once: nothing lost, the processed-but-uncommitted messages processed twice ---------
    alo_seen = alo1.values() + alo2.values()
    assert alo2.values()[0] == f"v{last_commit}", alo2.debug()
    lost, dups = _tally(alo_seen)
    assert lost == 0, alo_seen
    assert dups == CRASH_AFTER - last_commit and dups > 0, alo_seen
    # alo2 commits after every EVERY messages it processes (no auto-commit, none on close()).
    expect = last_commit + (N - last_commit) // EVERY * EVERY
    assert committed(broker.bootstrap, alo_group, alo_topic, 1) == {0: expect}
