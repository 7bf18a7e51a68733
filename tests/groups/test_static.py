"""Static membership (KIP-345, ``group.instance.id``) with classic members, on Odradek and on Kafka.

* a static member SIGKILLed and restarted within its session timeout gets its partitions back with no
  rebalance: the other members see no revocation and no new assignment, even after the session timeout
  of the dead incarnation has passed;
* a second live process with the same instance id fences one of the two (FENCED_INSTANCE_ID, fatal).
"""

from __future__ import annotations

import time

from gkit import CLASSIC, create_topic, exact_partition, ownership, wait_until

PARTS = 6
SESSION_S = CLASSIC["session.timeout.ms"] / 1000
FENCED_INSTANCE_ID = 82


def _static(i: int, group: str) -> dict:
    return {**CLASSIC, "group.instance.id": f"{group}-inst-{i}"}


def test_static_member_restart_keeps_partitions(broker, unique, members):
    topic, group = unique("topic"), unique("group")
    create_topic(broker.bootstrap, topic, PARTS)
    ms = [members(broker.bootstrap, group, [topic], conf=_static(i, group), name=f"s{i}") for i in range(3)]

    def show():
        return f"{ownership(ms)}\n" + "\n".join(m.debug() for m in ms)

    wait_until(lambda: exact_partition(ms, topic, PARTS, [2, 2, 2]), 30, lambda: "initial 2/2/2 " + show())
    time.sleep(1.0)  # let any trailing rebalance settle
    # Restart the first member (the first to join: the group leader on both brokers).
    victim, others = ms[0], ms[1:]
    had = victim.owned()
    marks = [m.mark() for m in others]
    victim.kill()
    t0 = time.monotonic()
    back = members(broker.bootstrap, group, [topic], conf=_static(0, group), name="s0-restarted")
    ms = [back, *others]
    wait_until(lambda: back.owned() == had, SESSION_S, lambda: f"restarted member gets {had} back " + show())
    # Past the point where the dead incarnation's session would have expired: still no rebalance.
    time.sleep(max(0.0, SESSION_S + 1.5 - (time.monotonic() - t0)))
    assert back.owned() == had, show()
    assert len(back.of("assign")) == 1 and back.of("revoke", "lost") == [], back.debug()
    for m, mark in zip(others, marks, strict=True):
        assert m.of("assign", "revoke", "lost", since=mark) == [], f"{m.name} saw a rebalance: {m.debug()}"
    assert exact_partition(ms, topic, PARTS, [2, 2, 2]), show()
    desc = describe_members(broker.bootstrap, group)
    assert sorted(desc) == sorted(f"{group}-inst-{i}" for i in range(3)), desc
    for m in ms:
        assert m.errors() == [], m.debug()
        assert m.stop() == 0, m.debug()


def describe_members(bootstrap: str, group: str) -> list[str]:
    from gkit import describe

    d = describe(bootstrap, group)
    assert str(d.state).endswith("STABLE"), d.state
    return [m.group_instance_id for m in d.members]


def test_duplicate_instance_id_is_fenced(broker, unique, members):
    topic, group = unique("topic"), unique("group")
    create_topic(broker.bootstrap, topic, 2)
    first = members(broker.bootstrap, group, [topic], conf=_static(0, group), name="first")
    wait_until(lambda: len(first.owned()) == 2, 30, first.debug)
    second = members(broker.bootstrap, group, [topic], conf=_static(0, group), name="second")
    pair = [first, second]

    from confluent_kafka import KafkaError

    # librdkafka raises FENCED_INSTANCE_ID as a fatal error: code _FATAL, carrying error 82's text.
    text = KafkaError(FENCED_INSTANCE_ID).str()

    def fenced(m):
        return [e for e in m.errors() if e["code"] == FENCED_INSTANCE_ID or text in e["str"]]

    wait_until(lambda: fenced(first) or fenced(second), 20, lambda: "\n".join(m.debug() for m in pair))
    loser = first if fenced(first) else second
    winner = second if loser is first else first
    assert any(e["fatal"] for e in fenced(loser)), loser.debug()
    loser.wait_exit(10)  # member.py exits on a fatal error
    assert fenced(winner) == [], winner.debug()
    # The instance id stays with the winner, which owns the partitions.
    wait_until(lambda: len(winner.owned()) == 2, 15, winner.debug)
    time.sleep(1.5)
    assert winner.alive and fenced(winner) == [], winner.debug()
    print(f"[{broker.kind}] fenced: {loser.name}")
    assert winner.stop() == 0
