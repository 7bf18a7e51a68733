"""The verifier's workload on both brokers: what is sent and acknowledged is read back whole, and the
checker finds nothing wrong in a topic copied by nobody but the producer."""

from __future__ import annotations

from odradek.verify.checker import acked_then_missing, check
from odradek.verify.workload import produce, read
from support.kit import create_topic


def test_sent_records_read_back_exactly_once_at_their_acknowledged_offsets(broker, unique):
    topic = unique("wl")
    create_topic(broker.bootstrap, topic, 3)
    out = produce(broker.bootstrap, topic, 3000, keys=5)
    assert out.failed == 0 and len(out.acks) == 3000
    back = read(broker.bootstrap, topic)
    assert back.corrupt == 0
    assert acked_then_missing(out.acks, back.log) == []
    verdict = check("exactly-once", out.sent, back.deliveries)
    assert verdict.kept, verdict.broken
    assert (verdict.inputs, verdict.lost, verdict.duplicated, verdict.reordered) == (3000, 0, 0, 0)


def test_acks_0_sends_are_never_counted_as_acknowledged(broker, unique):
    topic = unique("wl")
    create_topic(broker.bootstrap, topic, 1)
    out = produce(broker.bootstrap, topic, 200, acks="0")
    assert out.acks == [] and not any(s.acked for s in out.sent)
    back = read(broker.bootstrap, topic)
    # Whatever arrived is a record that was sent, once: acks=0 may lose, but never invents or repeats.
    v = check("at-most-once", out.sent, back.deliveries)
    assert v.kept and v.lost == 0 and len(back.deliveries) <= 200
