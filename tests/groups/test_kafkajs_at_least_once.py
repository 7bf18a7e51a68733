"""The at-least-once kafkajs program of delivery-guarantees.md (tests/node/groups_at_least_once.js).

An idempotent producer (``idempotent: true``, ``acks: -1``) sends the orders; a consumer with
``autoCommit: false`` commits ``offset + 1`` after processing each. Every order must be processed exactly
once (no crash here) and the group's committed offsets must reach the end of every partition.

The idempotent producer needs InitProducerId (api key 22) on the broker.
"""

from __future__ import annotations

from gkit import committed, create_topic, end_offsets

from support.node import json_lines, run_node

COUNT, PARTS = 12, 2


def test_kafkajs_at_least_once_program(broker, kafkajs, unique):
    topic, group = unique("orders"), unique("group")
    create_topic(broker.bootstrap, topic, PARTS)
    proc = run_node("groups_at_least_once.js", broker.bootstrap, topic, group, COUNT, timeout=90, check=False)
    lines = json_lines(proc.stdout)
    errors = [x for x in lines if "error" in x]
    assert proc.returncode == 0 and not errors, (
        f"the program failed (exit {proc.returncode}): {errors}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    orders = [f"order-{i}" for i in range(COUNT)]
    assert [x["sent"] for x in lines if "sent" in x] == orders
    assert sorted(x["processed"] for x in lines if "processed" in x) == sorted(orders)
    assert [x for x in lines if "duplicate" in x] == []
    assert {"done": True} in lines
    ends = end_offsets(broker.bootstrap, topic, PARTS)
    assert sum(ends.values()) == COUNT
    assert committed(broker.bootstrap, group, topic, PARTS) == {p: e for p, e in ends.items() if e > 0}
