"""A KIP-848 member carries on across a broker SIGKILL and restart, on both brokers.

Kafka keeps a consumer group's epoch, target assignment and every member's epoch and assignment in
__consumer_offsets, so after a coordinator restart a member heartbeats on at its epoch, keeps its
partitions and can still commit offsets with that epoch. A wire-level member (ConsumerGroupHeartbeat v1)
joins a private broker of each kind, which is then SIGKILLed and restarted on the same data.
"""

from __future__ import annotations

import datetime
import time
import uuid

from gkit import create_topic
from kio.schema.consumer_group_describe.v0.request import ConsumerGroupDescribeRequest
from kio.schema.consumer_group_heartbeat.v1.request import ConsumerGroupHeartbeatRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.offset_commit.v9.request import OffsetCommitRequest

from wire import WireClient

NONE = 0
COORDINATOR_LOADING = (14, 15, 16)  # loading, not available, not coordinator: a client retries these
PARTITIONS = 3


def _heartbeat(c: WireClient, group: str, member: str, epoch: int, topic: str, owned) -> object:
    return c.request(
        ConsumerGroupHeartbeatRequest,
        {
            "group_id": group,
            "member_id": member,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": datetime.timedelta(seconds=30),
            "subscribed_topic_names": [topic],
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": [{"topic_id": t, "partitions": sorted(ps)} for t, ps in owned.items()],
        },
    )


def _find_coordinator(c: WireClient, group: str) -> int:
    """As a client does first (Kafka creates __consumer_offsets on the first lookup)."""
    resp = c.request(FindCoordinatorRequest, {"key_type": 0, "coordinator_keys": [group]})
    return int(resp.coordinators[0].error_code)


def _until_answered(bootstrap: str, group: str, send, timeout: float = 60):
    """Look up the coordinator and send, on a fresh connection, until the answer is not a
    coordinator-loading code."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with WireClient(bootstrap) as c:
                _find_coordinator(c, group)
                resp = send(c)
            if int(resp.error_code) not in COORDINATOR_LOADING:
                return resp
        except OSError:
            pass
        assert time.monotonic() < deadline, "the broker never answered after the restart"
        time.sleep(0.3)


def _commit(c: WireClient, group: str, member: str, epoch: int, topic: str, offset: int) -> list[int]:
    resp = c.request(
        OffsetCommitRequest,
        {
            "group_id": group,
            "generation_id_or_member_epoch": epoch,
            "member_id": member,
            "group_instance_id": None,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {
                            "partition_index": p,
                            "committed_offset": offset,
                            "committed_leader_epoch": -1,
                            "committed_metadata": None,
                        }
                        for p in range(PARTITIONS)
                    ],
                }
            ],
        },
    )
    return [int(p.error_code) for t in resp.topics for p in t.partitions]


def test_kip848_member_survives_broker_restart(private_broker, unique):
    b = private_broker
    topic, group, member = unique("k848"), unique("k848-group"), str(uuid.uuid4())
    create_topic(b.bootstrap, topic, PARTITIONS)

    owned: dict = {}
    epoch = 0
    deadline = time.monotonic() + 30
    with WireClient(b.bootstrap) as c:
        _find_coordinator(c, group)
        while sum(len(ps) for ps in owned.values()) < PARTITIONS or epoch == 0:
            assert time.monotonic() < deadline, f"no full assignment: epoch {epoch}, owned {owned}"
            resp = _heartbeat(c, group, member, epoch, topic, owned)
            if int(resp.error_code) in COORDINATOR_LOADING:
                time.sleep(0.2)
                _find_coordinator(c, group)
                continue
            assert int(resp.error_code) == NONE, resp
            epoch = resp.member_epoch
            if resp.assignment is not None:
                owned = {tp.topic_id: set(tp.partitions) for tp in resp.assignment.topic_partitions}
        assert _commit(c, group, member, epoch, topic, 1) == [NONE] * PARTITIONS

    b.restart(hard=True)

    after = _until_answered(b.bootstrap, group, lambda c: _heartbeat(c, group, member, epoch, topic, owned))
    # Kafka: NONE at the same epoch (UNKNOWN_MEMBER_ID, 25, would mean the group forgot its member)
    assert (int(after.error_code), after.member_epoch) == (NONE, epoch), after
    if after.assignment is not None:  # a full request may be answered with the (unchanged) assignment
        assert {tp.topic_id: set(tp.partitions) for tp in after.assignment.topic_partitions} == owned

    with WireClient(b.bootstrap) as c:
        assert _commit(c, group, member, epoch, topic, 2) == [NONE] * PARTITIONS
        described = c.request(
            ConsumerGroupDescribeRequest, {"group_ids": [group], "include_authorized_operations": False}
        )
    (g,) = described.groups
    assert int(g.error_code) == NONE and g.group_state == "Stable", g
    assert [(m.member_id, m.member_epoch) for m in g.members] == [(member, epoch)]
    assert {tp.topic_id: set(tp.partitions) for tp in g.members[0].assignment.topic_partitions} == owned
