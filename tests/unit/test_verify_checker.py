"""The verifier's checker on made-up histories: each kind of fault is counted, and only a broken promise
is reported as broken."""

from __future__ import annotations

import random

import pytest

from odradek.verify.checker import Ack, Delivery, Sent, acked_then_missing, check


def workload(n: int = 3000, keys: int = 7) -> list[Sent]:
    return [Sent(seq=i, key=b"k%d" % (i % keys)) for i in range(n)]


def clean(sent: list[Sent]) -> list[Delivery]:
    return [Delivery(s.seq) for s in sent]


@pytest.mark.parametrize("guarantee", ["at-most-once", "at-least-once", "exactly-once"])
def test_a_clean_run_reports_nothing(guarantee):
    sent = workload()
    v = check(guarantee, sent, clean(sent))
    assert (v.lost, v.duplicated, v.reordered, v.aborted_reads, v.unknown) == (0, 0, 0, 0, 0)
    assert v.kept and v.broken == []


def test_a_processor_that_drops_every_1000th_input_is_caught_with_the_right_count():
    sent = workload()
    delivered = [Delivery(s.seq) for s in sent if s.seq % 1000 != 999]
    alo = check("at-least-once", sent, delivered)
    assert alo.lost == 3 and alo.examples["lost"] == (999, 1999, 2999)
    assert alo.broken == ["lost 3"] and not alo.kept
    assert check("exactly-once", sent, delivered).broken == ["lost 3"]
    assert check("at-most-once", sent, delivered).kept  # loss is at-most-once's price
    assert alo.loss_rate == pytest.approx(3 / 3000)


def test_a_processor_that_writes_twice_is_caught():
    sent = workload(100)
    delivered = clean(sent) + [Delivery(5), Delivery(5), Delivery(17)]
    v = check("exactly-once", sent, delivered)
    assert (v.duplicated, v.extra_copies) == (2, 3)
    assert v.examples["duplicated"] == (5, 17)
    assert check("at-least-once", sent, delivered).kept
    assert check("at-most-once", sent, delivered).broken == ["duplicated 2"]


def test_redelivery_after_a_crash_is_a_duplicate_not_a_reordering():
    # A rewind replays 40..59 after 60..79 went out: the copies arrive late, first arrivals stay in order.
    sent = workload(100, keys=1)
    delivered = [Delivery(i) for i in range(80)] + [Delivery(i) for i in range(40, 100)]
    v = check("at-least-once", sent, delivered)
    assert v.duplicated == 40 and v.reordered == 0 and v.kept


def test_per_key_reordering_is_counted_but_does_not_break_a_promise():
    sent = workload(10, keys=2)  # key k0: 0, 2, 4, 6, 8; key k1: 1, 3, 5, 7, 9
    order = [0, 1, 4, 3, 2, 5, 6, 7, 8, 9]  # 2 arrives after 4 (same key); 3 and 1 are in order
    v = check("exactly-once", sent, [Delivery(s) for s in order])
    assert v.reordered == 1 and v.examples["reordered"] == (2,)
    assert v.kept


def test_aborted_reads_break_every_guarantee():
    sent = workload(10)
    delivered = clean(sent) + [Delivery(3, aborted=True)]
    for g in ["at-most-once", "at-least-once", "exactly-once"]:
        v = check(g, sent, delivered)
        assert v.aborted_reads == 1 and "aborted reads 1" in v.broken


def test_unacknowledged_inputs_may_be_missing_and_unknown_outputs_are_reported():
    sent = [Sent(0, b"k"), Sent(1, b"k", acked=False), Sent(2, b"k")]
    v = check("exactly-once", sent, [Delivery(0), Delivery(2), Delivery(77)])
    assert v.lost == 0  # 1 was never acknowledged: not the processor's to lose
    assert v.unknown == 1 and v.broken == ["records from no input 1"]


def test_random_histories_agree_with_a_direct_count():
    rng = random.Random(7)
    for _ in range(50):
        sent = workload(rng.randint(1, 400), keys=rng.randint(1, 5))
        delivered = []
        for s in sent:
            delivered += [Delivery(s.seq)] * rng.choice([0, 1, 1, 1, 2, 3])
        rng.shuffle(delivered)
        counts = {s.seq: 0 for s in sent}
        for d in delivered:
            counts[d.seq] += 1
        v = check("exactly-once", sent, delivered)
        assert v.lost == sum(1 for n in counts.values() if n == 0)
        assert v.duplicated == sum(1 for n in counts.values() if n > 1)
        assert v.extra_copies == sum(n - 1 for n in counts.values() if n > 1)
        assert v.kept == (v.lost == 0 and v.duplicated == 0)


def test_bad_histories_are_refused():
    with pytest.raises(ValueError, match="sent twice"):
        check("exactly-once", [Sent(1, b"k"), Sent(1, b"k")], [])
    with pytest.raises(ValueError, match="unknown guarantee"):
        check("exactly-twice", [], [])


def test_acknowledged_then_missing_on_the_producer_side():
    acks = [Ack(0, 0, 0), Ack(1, 0, 1), Ack(2, 1, 0), Ack(3, 1, 1)]
    log = {(0, 0): 0, (0, 1): 1, (1, 0): 2}  # offset 1 of partition 1 was lost after its ack
    assert acked_then_missing(acks, log) == [3]
    assert acked_then_missing(acks, {**log, (1, 1): 99}) == [3]  # something else is there
    assert acked_then_missing(acks, {**log, (1, 1): 3}) == []
