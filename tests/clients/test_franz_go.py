"""franz-go (kgo v1.22), built from tests/go, against both brokers with the same assertions.

Idempotent produce with keys and headers, a consumer group that commits and a new member that resumes
after the commit, and transactions (committed, aborted, committed) read with read_committed.
"""

from __future__ import annotations

from support.golang import run_franz
from support.kit import create_topic


def _by_partition(got: dict) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for p, o in zip(got["partitions"], got["offsets"], strict=True):
        out.setdefault(p, []).append(o)
    return out


def test_franz_go_round_trip_and_group_commit(broker, franz, unique):
    topic, group = unique("franz"), unique("franz-g")
    create_topic(broker.bootstrap, topic, 3)
    out = run_franz(franz, "roundtrip", broker.bootstrap, topic, group, "200")
    first = out["first"]
    assert sorted(first["values"]) == sorted(f"v{i}" for i in range(200))
    assert all(h == f"h={v}" for v, h in zip(first["values"], first["headers"], strict=False))
    for offsets in _by_partition(first).values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "in order, without gaps"
    # A new member of the group starts at the committed offsets: only the five records produced after.
    assert sorted(out["after_commit"]["values"]) == [f"w{i}" for i in range(5)]


def test_franz_go_transactions_read_committed(broker, franz, unique):
    topic, group, txn = unique("franz-txn"), unique("franz-txn-g"), unique("franz-tx")
    create_topic(broker.bootstrap, topic, 2)
    out = run_franz(franz, "txn", broker.bootstrap, topic, group, txn)
    got = out["read_committed"]["values"]
    assert sorted(got) == sorted(f"c{i}" for i in range(20)), "committed once each, nothing aborted"
