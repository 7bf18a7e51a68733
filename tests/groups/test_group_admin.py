"""Group administration with the confluent AdminClient and kafka-python's KafkaAdminClient.

ListGroups (with a state filter), DescribeGroups, DeleteGroups (a non-empty group is refused with
NON_EMPTY_GROUP; an empty one is deleted with its offsets), altering offsets (OffsetCommit without a
generation: allowed for an empty group, refused for a live one) and OffsetDelete (allowed for
partitions of topics nobody in the group is subscribed to; GROUP_SUBSCRIBED_TO_TOPIC otherwise).
Odradek and Kafka, same assertions.
"""

from __future__ import annotations

import time

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from gkit import CLASSIC, TIMEOUT_S, admin, committed, create_topic, produce

PARTS = 2
NON_EMPTY_GROUP = 68
UNKNOWN_MEMBER_ID = 25
GROUP_SUBSCRIBED_TO_TOPIC = 86


def _member(bootstrap: str, group: str, topic: str):
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 0,
            **CLASSIC,
        }
    )
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(c.assignment()) < PARTS:
        assert time.monotonic() < deadline, "no assignment"
        c.poll(0.1)
    return c


def _commit(c, topic: str, offsets: dict[int, int]) -> None:
    res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    assert all(tp.error is None for tp in res), res


def _listed(a, states=None) -> set[str]:
    kw = {"states": states} if states is not None else {}
    res = a.list_consumer_groups(request_timeout=TIMEOUT_S, **kw).result(TIMEOUT_S)
    assert res.errors == [], res.errors
    return {g.group_id for g in res.valid}


def test_list_describe_delete_and_offsets(broker, unique):
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    topic = unique("topic")
    create_topic(broker.bootstrap, topic, PARTS)
    produce(broker.bootstrap, topic, [f"v{i}" for i in range(20)], partitions=PARTS)
    active, empty, spare = unique("active"), unique("empty"), unique("spare")
    live = _member(broker.bootstrap, active, topic)
    try:
        _commit(live, topic, {0: 1, 1: 2})
        gone = _member(broker.bootstrap, empty, topic)
        _commit(gone, topic, {0: 3, 1: 4})
        gone.close()  # LeaveGroup: the group is Empty, its offsets stay

        a = admin(broker.bootstrap)
        # --- ListGroups, with and without a state filter ---------------------------------------------
        assert {active, empty} <= _listed(a)
        stable = _listed(a, {ConsumerGroupState.STABLE})
        assert active in stable and empty not in stable
        empties = _listed(a, {ConsumerGroupState.EMPTY})
        assert empty in empties and active not in empties

        # --- DescribeGroups --------------------------------------------------------------------------
        d = a.describe_consumer_groups([active, empty])
        da, de = d[active].result(TIMEOUT_S), d[empty].result(TIMEOUT_S)
        assert da.state == ConsumerGroupState.STABLE and de.state == ConsumerGroupState.EMPTY
        assert da.partition_assignor == "range" and not da.is_simple_consumer_group
        (m,) = da.members
        assert m.member_id and m.client_id and m.host
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [
            (topic, p) for p in range(PARTS)
        ]
        assert de.members == []

        kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            listed = {g["group_id"]: g for g in kp.list_groups()}
            assert {active, empty} <= set(listed)
            assert listed[active]["group_state"] == "Stable" and listed[empty]["group_state"] == "Empty"
            assert listed[active]["protocol_type"] == "consumer"
            kd = kp.describe_groups([active])[active]
            assert kd["error"] is None and kd["group_state"] == "Stable"
            assert kd["protocol_type"] == "consumer" and kd["protocol_data"] == "range"
            (km,) = kd["members"]
            assert km["member_id"] == m.member_id and km["member_metadata"]["topics"] == [topic]
            assert km["member_assignment"]["assigned_partitions"] == [
                {"topic": topic, "partitions": list(range(PARTS))}
            ]

            # --- DeleteGroups: refused while the group has a member; an empty group goes with its offsets
            with_members = a.delete_consumer_groups([active], request_timeout=TIMEOUT_S)[active]
            try:
                with_members.result(TIMEOUT_S)
                raise AssertionError("a group with a live member was deleted")
            except KafkaException as e:
                assert e.args[0].code() == NON_EMPTY_GROUP, e
            a.delete_consumer_groups([empty], request_timeout=TIMEOUT_S)[empty].result(TIMEOUT_S)
            assert committed(broker.bootstrap, empty, topic, PARTS) == {}
            assert empty not in _listed(a)
            assert committed(broker.bootstrap, active, topic, PARTS) == {0: 1, 1: 2}

            # --- Alter offsets (no generation): a new / empty group yes, a live group no -------------
            req = ConsumerGroupTopicPartitions(
                spare, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 6)]
            )
            res = a.alter_consumer_group_offsets([req])[spare].result(TIMEOUT_S)
            assert all(tp.error is None for tp in res.topic_partitions)
            assert committed(broker.bootstrap, spare, topic, PARTS) == {0: 5, 1: 6}
            kp.alter_group_offsets(spare, {KTP(topic, 1): OffsetAndMetadata(7, "", -1)})
            assert committed(broker.bootstrap, spare, topic, PARTS) == {0: 5, 1: 7}
            req = ConsumerGroupTopicPartitions(active, [TopicPartition(topic, 0, 9)])
            try:
                res = a.alter_consumer_group_offsets([req])[active].result(TIMEOUT_S)
                codes = [tp.error.code() if tp.error else 0 for tp in res.topic_partitions]
            except KafkaException as e:
                codes = [e.args[0].code()]
            assert codes == [UNKNOWN_MEMBER_ID], codes
            assert committed(broker.bootstrap, active, topic, PARTS) == {0: 1, 1: 2}

            # --- OffsetDelete ----------------------------------------------------------------------------
            from kafka.errors import GroupSubscribedToTopicError, NoError

            out = kp.delete_group_offsets(spare, [KTP(topic, 0)])
            assert out == {KTP(topic, 0): NoError}, out
            assert committed(broker.bootstrap, spare, topic, PARTS) == {1: 7}
            out = kp.delete_group_offsets(active, [KTP(topic, 0)])
            assert out == {KTP(topic, 0): GroupSubscribedToTopicError}, out
            assert GroupSubscribedToTopicError.errno == GROUP_SUBSCRIBED_TO_TOPIC
            assert committed(broker.bootstrap, active, topic, PARTS) == {0: 1, 1: 2}
        finally:
            kp.close()
    finally:
        live.close()
