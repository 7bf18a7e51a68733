"""Transactions on both brokers: visibility by isolation level, the LSO, zombie fencing, timeouts of a
killed producer's transaction, and transactional offsets with OffsetFetch require_stable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from eoskit import (
    INVALID_TXN_STATE,
    NONE,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    UNSTABLE_OFFSET_COMMIT,
    Wire,
    batch,
    create_topic,
    producer,
    read_all,
    values_of,
    wait_until,
)

from support.odradek import child_env

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.differential


def txn_producer(bootstrap: str, txn_id: str, **conf):
    p = producer(bootstrap, **{"transactional.id": txn_id, **conf})
    p.init_transactions(30)
    return p


def send(p, topic: str, values: list[str], partition: int = 0) -> None:
    for v in values:
        p.produce(topic, value=v.encode(), partition=partition)
    assert p.flush(30) == 0


def names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_commit_and_abort_visibility(broker, unique):
    topic = unique("vis")
    create_topic(broker.bootstrap, topic, 2)
    p = txn_producer(broker.bootstrap, unique("txn"))
    p.begin_transaction()
    send(p, topic, names("c0", 10), 0)
    send(p, topic, names("c1", 10), 1)
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, topic, names("a0", 7), 0)
    send(p, topic, names("a1", 7), 1)
    p.abort_transaction(30)
    p.begin_transaction()
    send(p, topic, names("d0", 3), 0)
    p.commit_transaction(30)

    committed = read_all(broker.bootstrap, topic, 2, committed=True)
    uncommitted = read_all(broker.bootstrap, topic, 2, committed=False)
    assert values_of(r for r in committed if r.partition == 0) == names("c0", 10) + names("d0", 3)
    assert values_of(r for r in committed if r.partition == 1) == names("c1", 10)
    assert values_of(r for r in uncommitted if r.partition == 0) == names("c0", 10) + names("a0", 7) + names(
        "d0", 3
    )
    assert values_of(r for r in uncommitted if r.partition == 1) == names("c1", 10) + names("a1", 7)
    # Offsets: data plus one marker per transaction per partition it touched.
    with Wire(broker.bootstrap) as w:
        assert w.hw(topic, 0) == 10 + 1 + 7 + 1 + 3 + 1
        assert w.hw(topic, 1) == 10 + 1 + 7 + 1
        assert w.lso(topic, 0) == w.hw(topic, 0)
        assert [r.offset for r in committed if r.partition == 0] == [*range(10), *range(19, 22)]


def test_interleaved_transactional_and_plain_producers(broker, unique):
    topic = unique("mix")
    create_topic(broker.bootstrap, topic, 2)
    plain = producer(broker.bootstrap, **{"enable.idempotence": True})
    t1 = txn_producer(broker.bootstrap, unique("t1"))
    t2 = txn_producer(broker.bootstrap, unique("t2"))
    aborted: set[str] = set()
    for part in (0, 1):
        t1.begin_transaction()
        send(plain, topic, names(f"n{part}a", 3), part)
        send(t1, topic, names(f"t1-{part}a", 4), part)
        t2.begin_transaction()
        send(t2, topic, names(f"t2-{part}a", 4), part)
        send(plain, topic, names(f"n{part}b", 3), part)
        send(t1, topic, names(f"t1-{part}b", 2), part)
        t1.commit_transaction(30)
        send(t2, topic, names(f"t2-{part}b", 2), part)
        send(plain, topic, names(f"n{part}c", 3), part)
        t2.abort_transaction(30)
        aborted |= set(names(f"t2-{part}a", 4) + names(f"t2-{part}b", 2))
        send(plain, topic, names(f"n{part}d", 3), part)

    everything = read_all(broker.bootstrap, topic, 2, committed=False)
    committed = read_all(broker.bootstrap, topic, 2, committed=True)
    assert len(everything) == 2 * (12 + 6 + 6)
    # read_committed = read_uncommitted minus the aborted transaction, same offsets, same order.
    assert committed == [r for r in everything if r.value not in aborted]
    assert {r.value for r in committed} & aborted == set()


def _consumer(bootstrap: str, committed: bool) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "eos-lso-unused",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "fetch.wait.max.ms": 50,
            "log_level": 0,
        }
    )


def _poll_values(c: Consumer, seconds: float, until: int | None = None) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (until is None or len(out) < until):
        m = c.poll(0.1)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m.value().decode())
    return out


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_open_transaction_blocks_read_committed_at_lso(broker, unique, outcome):
    topic = unique("lso")
    create_topic(broker.bootstrap, topic, 1)
    plain = producer(broker.bootstrap)
    t = txn_producer(broker.bootstrap, unique("txn"))
    send(plain, topic, names("pre", 5))
    t.begin_transaction()
    send(t, topic, names("txn", 5))
    send(plain, topic, names("post", 5))

    with Wire(broker.bootstrap) as w:
        assert w.hw(topic) == 15
        assert w.lso(topic) == 5  # the open transaction's first offset
        c = _consumer(broker.bootstrap, committed=True)
        try:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            assert _poll_values(c, 2.0) == names("pre", 5)
            assert c.position([TopicPartition(topic, 0)])[0].offset == 5  # stuck at the LSO
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
            assert hi == 5, "a read_committed consumer's high watermark query returns the LSO"

            if outcome == "commit":
                t.commit_transaction(30)
                want = names("txn", 5) + names("post", 5)
            else:
                t.abort_transaction(30)
                want = names("post", 5)
            wait_until(lambda: w.lso(topic) == w.hw(topic) == 16, 15, "LSO to reach the HW after the marker")
            assert _poll_values(c, 15, until=len(want)) == want
            assert _poll_values(c, 0.5) == []
        finally:
            c.close()


def test_zombie_is_fenced(broker, unique):
    topic = unique("zombie")
    txn_id = unique("txn")
    create_topic(broker.bootstrap, topic, 1)
    zombie = txn_producer(broker.bootstrap, txn_id)
    zombie.begin_transaction()
    send(zombie, topic, names("zombie", 5))
    with Wire(broker.bootstrap) as w:
        old = w.describe_txn(txn_id)
        assert old.transaction_state == "Ongoing"

        successor = txn_producer(broker.bootstrap, txn_id)  # fences the zombie, aborts its transaction
        with pytest.raises(KafkaException) as exc:
            zombie.commit_transaction(30)
        err = exc.value.args[0]
        assert err.fatal() and err.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        ), err

        successor.begin_transaction()
        send(successor, topic, names("live", 5))
        successor.commit_transaction(30)
        wait_until(lambda: w.lso(topic) == w.hw(topic), 15, "no open transaction left")
        assert w.list_txns().get(txn_id) == (old.producer_id, "CompleteCommit")

        assert values_of(read_all(broker.bootstrap, topic, 1, committed=True)) == names("live", 5)
        assert values_of(read_all(broker.bootstrap, topic, 1, committed=False)) == names("zombie", 5) + names(
            "live", 5
        )
        now = w.describe_txn(txn_id)
        assert now.transaction_state == "CompleteCommit"
        assert now.producer_id == old.producer_id and now.producer_epoch > old.producer_epoch


def test_killed_producer_transaction_times_out(broker, unique):
    topic = unique("timeout")
    txn_id = unique("txn")
    create_topic(broker.bootstrap, topic, 1)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "txn_hold.py"), broker.bootstrap, topic, txn_id, "2000", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        line = proc.stdout.readline()
        assert json.loads(line or "{}").get("ready"), (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        with Wire(broker.bootstrap) as w:
            assert w.describe_txn(txn_id).transaction_state == "Ongoing"
            assert w.lso(topic) == 0 and w.hw(topic) == 5
            proc.kill()
            proc.wait(10)
            plain = producer(broker.bootstrap)
            send(plain, topic, names("after", 3))
            assert w.lso(topic) == 0  # still held by the dead producer's transaction

            # Odradek aborts at the deadline; Kafka checks timeouts every 10 s.
            wait_until(
                lambda: w.list_txns().get(txn_id, (0, ""))[1] == "CompleteAbort",
                30,
                lambda: f"transaction {txn_id} to be aborted: {w.list_txns().get(txn_id)}",
                interval=0.2,
            )
            wait_until(lambda: w.lso(topic) == w.hw(topic) == 9, 15, "the abort marker and LSO = HW")
            assert values_of(read_all(broker.bootstrap, topic, 1, committed=True)) == names("after", 3)
            assert len(read_all(broker.bootstrap, topic, 1, committed=False)) == 8
            state = w.describe_txn(txn_id)
            assert (int(state.error_code), state.transaction_state) == (NONE, "CompleteAbort")
            assert w.list_txns()[txn_id] == (state.producer_id, "CompleteAbort")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------------------------------
# Wire level


def test_wire_markers_lso_and_aborted_index(broker, unique):
    topic = unique("wire-txn")
    txn_id = unique("txn")
    create_topic(broker.bootstrap, topic, 1)
    with Wire(broker.bootstrap) as w:
        pid = w.init_producer_id(txn_id)

        def txn_batch(seq, n=3):
            return batch(
                [b"v%d" % (seq + i) for i in range(n)],
                producer_id=pid.producer_id,
                producer_epoch=pid.epoch,
                base_sequence=seq,
                transactional=True,
            )

        assert w.add_partitions(txn_id, pid, topic, [0]) == [NONE]
        assert w.produce(topic, 0, txn_batch(0), transactional_id=txn_id) == (NONE, 0)
        assert (w.lso(topic), w.hw(topic)) == (0, 3)
        d = w.describe_txn(txn_id)
        assert d.transaction_state == "Ongoing"
        assert [(t.topic, tuple(t.partitions)) for t in d.topics] == [(topic, (0,))]
        part = w.fetch(topic, 0, 0, READ_COMMITTED)
        assert (part.high_watermark, part.last_stable_offset) == (3, 0)

        assert w.end_txn(txn_id, pid, commit=True) == NONE
        wait_until(lambda: w.lso(topic) == w.hw(topic) == 4, 15, "commit marker at offset 3")
        assert w.end_txn(txn_id, pid, commit=True) == NONE  # a retried EndTxn of a completed commit
        assert w.end_txn(txn_id, pid, commit=False) == INVALID_TXN_STATE

        # A second transaction, aborted: it shows up in read_committed fetches' aborted index.
        assert w.add_partitions(txn_id, pid, topic, [0]) == [NONE]
        assert w.produce(topic, 0, txn_batch(3, 2), transactional_id=txn_id) == (NONE, 4)
        assert w.end_txn(txn_id, pid, commit=False) == NONE
        wait_until(lambda: w.lso(topic) == w.hw(topic) == 7, 15, "abort marker at offset 6")
        part = w.fetch(topic, 0, 0, READ_COMMITTED)
        assert part.last_stable_offset == 7
        assert [(a.producer_id, a.first_offset) for a in part.aborted_transactions] == [(pid.producer_id, 4)]
        part = w.fetch(topic, 0, 0, READ_UNCOMMITTED)
        assert not part.aborted_transactions
    assert values_of(read_all(broker.bootstrap, topic, 1, committed=True)) == ["v0", "v1", "v2"]


def test_txn_offsets_and_require_stable(broker, unique):
    topic = unique("offs")
    group = unique("group")
    txn_id = unique("txn")
    create_topic(broker.bootstrap, topic, 2)
    with Wire(broker.bootstrap) as w:
        pid = w.init_producer_id(txn_id)

        assert w.add_offsets(txn_id, pid, group) == NONE
        assert w.txn_offset_commit(txn_id, pid, group, topic, {0: 42}) == [NONE]
        stable = w.offset_fetch(group, topic, [0, 1], require_stable=True)
        assert stable[0][0] == UNSTABLE_OFFSET_COMMIT, stable
        assert stable[1] == (NONE, -1), stable  # no pending offset on partition 1
        assert w.offset_fetch(group, topic, [0], require_stable=False)[0] == (NONE, -1)  # pending: unseen
        assert w.end_txn(txn_id, pid, commit=True) == NONE
        wait_until(
            lambda: w.offset_fetch(group, topic, [0], require_stable=True)[0] == (NONE, 42),
            15,
            lambda: f"committed offset 42: {w.offset_fetch(group, topic, [0], require_stable=True)}",
        )

        # Aborted: the pending offset disappears and the committed one stays.
        assert w.add_offsets(txn_id, pid, group) == NONE
        assert w.txn_offset_commit(txn_id, pid, group, topic, {0: 50, 1: 7}) == [NONE, NONE]
        stable = w.offset_fetch(group, topic, [0, 1], require_stable=True)
        assert stable[0][0] == stable[1][0] == UNSTABLE_OFFSET_COMMIT, stable
        assert w.end_txn(txn_id, pid, commit=False) == NONE
        wait_until(
            lambda: (
                w.offset_fetch(group, topic, [0, 1], require_stable=True) == {0: (NONE, 42), 1: (NONE, -1)}
            ),
            15,
            lambda: f"offsets after abort: {w.offset_fetch(group, topic, [0, 1], require_stable=True)}",
        )
