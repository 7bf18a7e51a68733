"""Classic-group error codes at the wire level (tests/wire.py), the same assertions on both brokers.

JoinGroup v9 / SyncGroup v5 / Heartbeat v4 / OffsetCommit v9 / LeaveGroup v5 with a hand-driven member:
MEMBER_ID_REQUIRED (79) on a first join, UNKNOWN_MEMBER_ID (25), ILLEGAL_GENERATION (22, a stale
generation), a Heartbeat for a group that does not exist, INVALID_SESSION_TIMEOUT (26) outside
group.min/max.session.timeout.ms, and GROUP_MAX_SIZE_REACHED (81) past group.max.size (private brokers
with those limits set, Odradek and Kafka).
"""

from __future__ import annotations

import struct
import time

import pytest
from gkit import create_topic
from kio.schema.describe_groups.v5.request import DescribeGroupsRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.join_group.v9.request import JoinGroupRequest
from kio.schema.leave_group.v5.request import LeaveGroupRequest
from kio.schema.offset_commit.v9.request import OffsetCommitRequest
from kio.schema.sync_group.v5.request import SyncGroupRequest

from wire import WireClient

NONE = 0
COORDINATOR_LOADING = (14, 15, 16)  # loading, not available, not coordinator: retried
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81


def subscription(topic: str) -> bytes:
    """ConsumerProtocolSubscription v0: [topics], null user data."""
    t = topic.encode()
    return struct.pack(">hih", 0, 1, len(t)) + t + struct.pack(">i", -1)


def assignment(topic: str, partitions: list[int]) -> bytes:
    t = topic.encode()
    body = struct.pack(">hih", 0, 1, len(t)) + t + struct.pack(">i", len(partitions))
    return body + b"".join(struct.pack(">i", p) for p in partitions) + struct.pack(">i", -1)


def join_body(group: str, topic: str, member_id: str = "", session_ms: int = 6000, instance=None) -> dict:
    return {
        "group_id": group,
        "session_timeout": session_ms,
        "rebalance_timeout": 10000,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": subscription(topic)}],
        "reason": None,
    }


def retrying(c: WireClient, cls, body: dict, timeout: float = 20):
    """Send until the broker is ready to coordinate the group (Kafka loads __consumer_offsets lazily)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = c.request(cls, body)
        if int(resp.error_code) not in COORDINATOR_LOADING or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def coordinator_ready(bootstrap: str, group: str) -> None:
    """The group's coordinator is found and has loaded the group's partition. (Kafka answers a Heartbeat
    with NONE, blindly, while that partition loads; DescribeGroups answers COORDINATOR_LOAD_IN_PROGRESS.)"""
    with WireClient(bootstrap) as c:
        deadline = time.monotonic() + 30
        while True:
            resp = c.request(FindCoordinatorRequest, {"key_type": 0, "coordinator_keys": [group]})
            code = int(resp.coordinators[0].error_code)
            if code == NONE:
                body = {"groups": [group], "include_authorized_operations": False}
                code = int(c.request(DescribeGroupsRequest, body).groups[0].error_code)
            if code == NONE:
                return
            assert code in COORDINATOR_LOADING and time.monotonic() < deadline, resp
            time.sleep(0.2)


def join(c: WireClient, group: str, topic: str, **kw) -> tuple[str, int, object]:
    """The KIP-394 two-step join of a new member: (member id, generation, second response)."""
    first = retrying(c, JoinGroupRequest, join_body(group, topic, **kw))
    assert int(first.error_code) == MEMBER_ID_REQUIRED, first
    assert first.member_id, first
    second = c.request(JoinGroupRequest, join_body(group, topic, member_id=first.member_id, **kw))
    assert int(second.error_code) == NONE, second
    return second.member_id, second.generation_id, second


def sync(c: WireClient, group: str, gen: int, member: str, assignments: dict[str, bytes] | None = None):
    return c.request(
        SyncGroupRequest,
        {
            "group_id": group,
            "generation_id": gen,
            "member_id": member,
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
        },
    )


def heartbeat(c: WireClient, group: str, gen: int, member: str) -> int:
    body = {"group_id": group, "generation_id": gen, "member_id": member, "group_instance_id": None}
    return int(retrying(c, HeartbeatRequest, body).error_code)


def commit(c: WireClient, group: str, gen: int, member: str, topic: str, offset: int) -> int:
    resp = c.request(
        OffsetCommitRequest,
        {
            "group_id": group,
            "generation_id_or_member_epoch": gen,
            "member_id": member,
            "group_instance_id": None,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": offset,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "",
                        }
                    ],
                }
            ],
        },
    )
    return int(resp.topics[0].partitions[0].error_code)


def test_classic_protocol_error_codes(broker, unique):
    topic, group = unique("topic"), unique("group")
    create_topic(broker.bootstrap, topic, 1)
    coordinator_ready(broker.bootstrap, group)
    with WireClient(broker.bootstrap) as c:
        # A Heartbeat for a group that does not exist.
        nogroup = unique("nogroup")
        coordinator_ready(broker.bootstrap, nogroup)
        assert heartbeat(c, nogroup, 1, "nobody") == UNKNOWN_MEMBER_ID
        # JoinGroup v4+: a new member gets MEMBER_ID_REQUIRED and an id first, then joins with it.
        member, gen, resp = join(c, group, topic)
        assert gen == 1 and resp.leader == member
        assert [m.member_id for m in resp.members] == [member]
        assert resp.protocol_name == "range" and resp.protocol_type == "consumer"
        s = sync(c, group, gen, member, {member: assignment(topic, [0])})
        assert int(s.error_code) == NONE and s.assignment == assignment(topic, [0]), s
        assert heartbeat(c, group, gen, member) == NONE
        assert commit(c, group, gen, member, topic, 3) == NONE

        # Unknown member: JoinGroup, SyncGroup, Heartbeat, OffsetCommit.
        r = c.request(JoinGroupRequest, join_body(group, topic, member_id="not-a-member"))
        assert int(r.error_code) == UNKNOWN_MEMBER_ID, r
        assert int(sync(c, group, gen, "not-a-member").error_code) == UNKNOWN_MEMBER_ID
        assert heartbeat(c, group, gen, "not-a-member") == UNKNOWN_MEMBER_ID
        assert commit(c, group, gen, "not-a-member", topic, 4) == UNKNOWN_MEMBER_ID

        # Stale generation: Heartbeat, SyncGroup, OffsetCommit.
        assert heartbeat(c, group, gen - 1, member) == ILLEGAL_GENERATION
        assert heartbeat(c, group, gen + 1, member) == ILLEGAL_GENERATION
        assert int(sync(c, group, gen - 1, member).error_code) == ILLEGAL_GENERATION
        assert commit(c, group, gen - 1, member, topic, 5) == ILLEGAL_GENERATION

        # Session timeouts outside the brokers' default bounds [6000, 1800000].
        for bad in (5999, 1800001):
            r = c.request(JoinGroupRequest, join_body(unique("g"), topic, session_ms=bad))
            assert int(r.error_code) == INVALID_SESSION_TIMEOUT, (bad, r)

        # The member is still fine; after LeaveGroup it is unknown.
        assert heartbeat(c, group, gen, member) == NONE
        r = c.request(LeaveGroupRequest, {"group_id": group, "members": [{"member_id": member}]})
        assert int(r.error_code) == NONE and [int(m.error_code) for m in r.members] == [NONE], r
        assert heartbeat(c, group, gen, member) == UNKNOWN_MEMBER_ID


LIMITS = {
    "group.max.size": "2",
    "group.min.session.timeout.ms": "2000",
    "group.max.session.timeout.ms": "10000",
}


@pytest.mark.parametrize("kind", ["odradek", "kafka"])
def test_group_limits(kind, request, unique):
    if kind == "odradek":
        bootstrap = request.getfixturevalue("odradek_factory")(LIMITS).bootstrap
    else:
        bootstrap = request.getfixturevalue("kafka_factory")(LIMITS).bootstrap
    topic, group = unique("topic"), unique("group")
    create_topic(bootstrap, topic, 1)
    coordinator_ready(bootstrap, group)
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b, WireClient(bootstrap) as c:
        # Session timeout bounds are the configured ones.
        for bad in (1999, 10001):
            r = retrying(a, JoinGroupRequest, join_body(unique("g"), topic, session_ms=bad))
            assert int(r.error_code) == INVALID_SESSION_TIMEOUT, (bad, r)
        # Two members fill the group ...
        ma, gen, _ = join(a, group, topic, session_ms=2000)
        assert int(sync(a, group, gen, ma, {ma: assignment(topic, [0])}).error_code) == NONE
        first = b.request(JoinGroupRequest, join_body(group, topic, session_ms=10000))
        assert int(first.error_code) == MEMBER_ID_REQUIRED, first
        mb = first.member_id
        # b's join waits for a to rejoin (a rebalance): send both, then read both answers.
        corr_b = b.next_correlation_id()
        b.send_raw(
            b.encode_request(
                JoinGroupRequest, join_body(group, topic, member_id=mb, session_ms=10000), corr_b
            )
        )
        time.sleep(0.3)
        ra = a.request(JoinGroupRequest, join_body(group, topic, member_id=ma, session_ms=2000))
        rb = b.read_response(JoinGroupRequest.__api_key__, JoinGroupRequest.__version__, corr_b)
        assert int(ra.error_code) == NONE and int(rb.error_code) == NONE, (ra, rb)
        assert ra.generation_id == rb.generation_id == gen + 1
        # ... and a third one is turned away.
        r = c.request(JoinGroupRequest, join_body(group, topic, session_ms=10000))
        assert int(r.error_code) == GROUP_MAX_SIZE_REACHED, r
