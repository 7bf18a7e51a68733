"""Transactional consume-transform-produce across a broker crash needs the group to survive it.

Kafka persists a group's generation and members (GroupMetadata records in __consumer_offsets), so after
a coordinator restart a member of a Stable group keeps heartbeating and its KIP-447 TxnOffsetCommit
(generation + member id from ``consumer_group_metadata()``) is still accepted. This test checks that on
private brokers of both kinds (SIGKILL + restart, same data), on the wire.
"""

from __future__ import annotations

import datetime

from eoskit import NONE, Wire, create_topic, wait_until
from kio.schema.heartbeat.v3.request import HeartbeatRequest
from kio.schema.join_group.v5.request import JoinGroupRequest
from kio.schema.sync_group.v3.request import SyncGroupRequest

SESSION_MS = 30_000


def _join(w: Wire, group: str) -> tuple[str, int]:
    w.find_coordinator(group, 0)
    join = lambda: w.c.request(  # noqa: E731
        JoinGroupRequest,
        {
            "group_id": group,
            "session_timeout": datetime.timedelta(milliseconds=SESSION_MS),
            "rebalance_timeout": datetime.timedelta(milliseconds=SESSION_MS),
            "member_id": "",
            "group_instance_id": "static-0",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"}],
        },
    )
    resp = w._retry(join, lambda r: int(r.error_code), {14, 15, 16})  # Kafka: coordinator still loading
    assert int(resp.error_code) == NONE, resp
    sync = w.c.request(
        SyncGroupRequest,
        {
            "group_id": group,
            "generation_id": resp.generation_id,
            "member_id": resp.member_id,
            "group_instance_id": "static-0",
            "assignments": [{"member_id": resp.member_id, "assignment": b""}],
        },
    )
    assert int(sync.error_code) == NONE, sync
    return resp.member_id, resp.generation_id


def _heartbeat(w: Wire, group: str, member: str, generation: int) -> int:
    request = {"group_id": group, "generation_id": generation, "member_id": member}
    resp = w.c.request(HeartbeatRequest, {**request, "group_instance_id": "static-0"})
    return int(resp.error_code)


def test_group_member_survives_broker_restart(private_broker, unique):
    b = private_broker
    topic, group, txn_id = unique("rs"), unique("rs-group"), unique("rs-txn")
    create_topic(b.bootstrap, topic, 1)
    with Wire(b.bootstrap) as w:
        member, generation = _join(w, group)
        assert _heartbeat(w, group, member, generation) == NONE
    b.restart(hard=True)

    def heartbeat_answer():
        try:
            with Wire(b.bootstrap) as w2:
                w2.find_coordinator(group, 0)
                code = _heartbeat(w2, group, member, generation)
        except (OSError, AssertionError):
            return None
        # Kafka answers COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR while it
        # reloads __consumer_offsets after the restart: a client retries those, so does this test.
        return None if code in (14, 15, 16) else str(code)

    heartbeat = int(wait_until(heartbeat_answer, 60, "a heartbeat answer after the restart", interval=0.3))
    with Wire(b.bootstrap) as w:
        pid = w.init_producer_id(txn_id)
        assert w.add_offsets(txn_id, pid, group) == NONE
        txn_commit = w.txn_offset_commit(
            txn_id, pid, group, topic, {0: 3}, generation=generation, member=member, instance="static-0"
        )
        assert w.end_txn(txn_id, pid, commit=True) == NONE
    # Kafka: both 0 (25 = UNKNOWN_MEMBER_ID would mean the group forgot its member across the restart)
    assert (heartbeat, txn_commit) == (NONE, [NONE]), "group membership lost across the broker restart"
