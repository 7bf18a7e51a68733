"""Three members (separate processes) share a 6-partition topic; one is SIGKILLed, one added.

Classic members, eager (librdkafka's default range/roundrobin) and cooperative-sticky, on Odradek and
on Kafka, with the same assertions: exclusive ownership, reassignment of a dead member's partitions
within the session timeout, an even spread after a member joins, and (cooperative) no revocation of
partitions that stay. The same scenario with KIP-848 members (``group.protocol=consumer``, server-side
assignment, always incremental) on private brokers whose ``group.consumer.*`` timeouts are low.
"""

from __future__ import annotations

import time

import pytest
from gkit import CLASSIC, create_topic, exact_partition, ownership, produce, wait_until

PARTS = 6
SESSION_S = CLASSIC["session.timeout.ms"] / 1000


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_members_kill_and_add(broker, unique, members, strategy):
    conf = {**CLASSIC, "partition.assignment.strategy": strategy}
    scenario(broker.kind, broker.bootstrap, conf, strategy != "range", SESSION_S, unique, members)


KIP848_SESSION_MS = 3000
KIP848_ODRADEK = {
    "group.consumer.session.timeout.ms": str(KIP848_SESSION_MS),
    "group.consumer.heartbeat.interval.ms": "500",
}
KIP848_KAFKA = {
    **KIP848_ODRADEK,
    "group.consumer.min.session.timeout.ms": str(KIP848_SESSION_MS),
    "group.consumer.min.heartbeat.interval.ms": "500",
}


@pytest.mark.parametrize("kind", ["odradek", "kafka"])
def test_three_kip848_members_kill_and_add(kind, request, unique, members):
    if kind == "odradek":
        bootstrap = request.getfixturevalue("odradek_factory")(KIP848_ODRADEK).bootstrap
    else:
        bootstrap = request.getfixturevalue("kafka_factory")(KIP848_KAFKA).bootstrap
    conf = {"group.protocol": "consumer"}
    scenario(kind, bootstrap, conf, True, KIP848_SESSION_MS / 1000, unique, members)


def scenario(kind, bootstrap, conf, incremental, session_s, unique, members):
    label = conf.get("partition.assignment.strategy") or conf.get("group.protocol")
    topic, group = unique("topic"), unique("group")
    create_topic(bootstrap, topic, PARTS)
    ms = [members(bootstrap, group, [topic], conf=conf, name=f"m{i}") for i in range(3)]

    def show():
        return f"{ownership(ms)}\n" + "\n".join(m.debug() for m in ms)

    wait_until(lambda: exact_partition(ms, topic, PARTS, [2, 2, 2]), 30, lambda: "initial 2/2/2 " + show())
    # Records flow: every partition is being consumed by its owner.
    produce(bootstrap, topic, [f"a{i}" for i in range(PARTS * 2)], partitions=PARTS)
    wait_until(
        lambda: {(topic, e["p"]) for m in ms for e in m.of("msg")} == {(topic, p) for p in range(PARTS)},
        20,
        lambda: "records of every partition consumed " + show(),
    )
    for m in ms:  # each member only ever got records of partitions it owned
        assert {(topic, e["p"]) for e in m.of("msg")} <= m.owned(), show()

    # --- SIGKILL one member: its partitions move to the two others within the session timeout -------
    victim, survivors = ms[0], ms[1:]
    lost = victim.owned()
    marks = [m.mark() for m in survivors]
    t0 = time.monotonic()
    victim.kill()
    wait_until(
        lambda: exact_partition(survivors, topic, PARTS, [3, 3]),
        session_s + 8,
        lambda: "survivors 3/3 " + show(),
    )
    moved_after = time.monotonic() - t0
    assert moved_after <= session_s + 8
    for m in survivors:
        assert m.alive, m.debug()
    if incremental:
        # Incremental: the survivors keep what they had and only gain the dead member's partitions.
        for m, mark in zip(survivors, marks, strict=True):
            assert m.of("revoke", "lost", since=mark) == [], m.debug()
        assert set().union(*(m.owned() for m in survivors)) >= lost

    # --- A new member joins: back to 2/2/2 -----------------------------------------------------------
    before = {m.name: m.owned() for m in survivors}
    marks = [m.mark() for m in survivors]
    newcomer = members(bootstrap, group, [topic], conf=conf, name="m3")
    everyone = [*survivors, newcomer]
    ms = everyone
    wait_until(
        lambda: exact_partition(everyone, topic, PARTS, [2, 2, 2]), 30, lambda: "2/2/2 after add " + show()
    )
    if incremental:
        # A partition is only ever revoked from its owner when it moves to the new member.
        moved = newcomer.owned()
        for m, mark in zip(survivors, marks, strict=True):
            revoked = {(t, p) for e in m.of("revoke", "lost", since=mark) for t, p in e["parts"]}
            assert revoked <= moved, (
                f"{m.name} lost partitions that did not move: {revoked - moved}; {show()}"
            )
            assert before[m.name] - revoked == m.owned(), show()
            assert m.of("lost", since=mark) == [], show()
    # Records produced now reach every partition's new owner.
    produce(bootstrap, topic, [f"b{i}" for i in range(PARTS * 2)], partitions=PARTS)
    wait_until(
        lambda: (
            sorted(e["v"] for m in everyone for e in m.of("msg") if e["v"].startswith("b"))
            == sorted(f"b{i}" for i in range(PARTS * 2))
        ),
        20,
        lambda: "b-records consumed once each " + show(),
    )
    for m in everyone:
        assert m.errors() == [] or all(not e["fatal"] for e in m.errors()), m.debug()
        assert m.stop() == 0, m.debug()
    print(f"[{kind} {label}] dead member's partitions moved after {moved_after:.2f}s")
