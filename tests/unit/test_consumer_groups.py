"""KIP-848 consumer groups driven by hand: clients that heartbeat with what they own, a fake clock, and a
check after every heartbeat that no partition is ever owned by two members.

Expected behaviour is Apache Kafka's GroupMetadataManager.consumerGroupHeartbeat and its
CurrentAssignmentBuilder (KIP-848).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.coordinator.consumer_groups import (
    FENCED_MEMBER_EPOCH,
    INVALID_REGULAR_EXPRESSION,
    INVALID_REQUEST,
    NONE,
    STATIC_LEAVE_EPOCH,
    UNKNOWN_MEMBER_ID,
    UNRELEASED_INSTANCE_ID,
    UNSUPPORTED_ASSIGNOR,
    ConsumerGroupConfig,
    ConsumerGroupCoordinator,
    HeartbeatRequest,
    HeartbeatResult,
    MemberState,
    Partitions,
)

G = "g1"
_UNKNOWN: Partitions = {}  # marker: send no owned partitions (None on the wire)
T = uuid.UUID(int=0xA)
T2 = uuid.UUID(int=0xB)
OTHER = uuid.UUID(int=0xC)
SESSION_MS = 45_000
REBALANCE_MS = 30_000


@dataclass
class Cluster:
    """Topics by name: (id, partition count)."""

    topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=lambda: {"t": (T, 6)})

    def resolve(self, name: str) -> tuple[uuid.UUID, int] | None:
        return self.topics.get(name)

    def names(self) -> list[str]:
        return sorted(self.topics)


@dataclass
class Client:
    """A consumer: what it owns is exactly what the last answer assigned it."""

    member_id: str
    topics: tuple[str, ...] | None = ("t",)
    instance_id: str | None = None
    assignor: str | None = None
    regex: str | None = None
    epoch: int = 0
    owned: Partitions = field(default_factory=dict)
    last: HeartbeatResult | None = None


class Harness:
    def __init__(self, cluster: Cluster | None = None, **config: int) -> None:
        self.cluster = cluster or Cluster()
        self.coordinator = ConsumerGroupCoordinator(ConsumerGroupConfig(**config))
        self.clients: dict[str, Client] = {}
        self.now = 0

    def client(self, member_id: str, **kw: object) -> Client:
        c = self.clients[member_id] = Client(member_id, **kw)  # type: ignore[arg-type]
        return c

    def send(self, req: HeartbeatRequest) -> HeartbeatResult:
        result = self.coordinator.heartbeat(self.now, req, self.cluster.resolve, self.cluster.names)
        self.check_exclusive()
        return result

    def beat(self, c: Client, *, owned: Partitions | None = None, full: bool = True) -> HeartbeatResult:
        """A heartbeat at the client's epoch; a client at epoch 0 joins. ``owned=_UNKNOWN`` leaves the
        owned partitions out of the request."""
        joining = c.epoch == 0
        if owned is None:
            owned = {} if joining else dict(c.owned)
        req = HeartbeatRequest(
            group_id=G,
            member_id=c.member_id,
            member_epoch=c.epoch,
            instance_id=c.instance_id,
            rack_id=None,
            rebalance_timeout_ms=REBALANCE_MS if joining or full else -1,
            subscribed_topic_names=c.topics if joining or full else None,
            subscribed_topic_regex=c.regex if joining or full else None,
            server_assignor=c.assignor,
            owned=None if owned is _UNKNOWN else owned,
        )
        result = self.send(req)
        c.last = result
        if result.error_code == NONE:
            c.epoch = result.member_epoch
            if result.assignment is not None:
                c.owned = {t: ps for t, ps in result.assignment.items() if ps}
        elif result.error_code in (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID):
            c.epoch, c.owned = 0, {}
        self.check_exclusive()
        return result

    def leave(self, c: Client, epoch: int = -1) -> HeartbeatResult:
        req = HeartbeatRequest(G, c.member_id, epoch, c.instance_id, None, -1, None, None, None, None)
        result = self.send(req)
        c.epoch, c.owned = 0, {}
        return result

    def tick(self, ms: int) -> list[tuple[str, str]]:
        self.now += ms
        fenced = self.coordinator.tick(self.now)
        self.check_exclusive()
        return fenced

    def restart(self) -> None:
        """A broker restart: a new coordinator loads every group from its exported (journalled) form."""
        saved = [json.loads(json.dumps(self.coordinator.export(g))) for g in self.coordinator.groups.values()]
        self.coordinator = ConsumerGroupCoordinator(self.coordinator.config)
        for record in saved:
            self.coordinator.restore(self.now, record)

    def settle(self, rounds: int = 8) -> None:
        for _ in range(rounds):
            for c in list(self.clients.values()):
                if c.member_id in self.group.members:
                    self.beat(c)

    @property
    def group(self):  # type: ignore[no-untyped-def]
        return self.coordinator.groups[G]

    def sizes(self) -> dict[str, int]:
        return {m: sum(len(ps) for ps in c.owned.values()) for m, c in self.clients.items()}

    def check_exclusive(self) -> None:
        """No partition owned by two members: neither in the coordinator's view (assigned or still being
        revoked) nor in what the clients in the group believe they own."""
        group = self.coordinator.groups.get(G)
        if group is None:
            return
        holder: dict[tuple[uuid.UUID, int], str] = {}
        for m in group.members.values():
            for parts in (m.assigned, m.pending_revocation):
                for t, ps in parts.items():
                    for p in ps:
                        assert (t, p) not in holder, f"{(t, p)} held by {holder[(t, p)]} and {m.member_id}"
                        holder[(t, p)] = m.member_id
        owner: dict[tuple[uuid.UUID, int], str] = {}
        for c in self.clients.values():
            if c.member_id not in group.members:
                continue
            for t, ps in c.owned.items():
                for p in ps:
                    assert (t, p) not in owner, f"clients {owner[(t, p)]} and {c.member_id} both own {(t, p)}"
                    owner[(t, p)] = c.member_id


def join_req(member_id: str = "m1", **kw: object) -> HeartbeatRequest:
    fields: dict[str, object] = dict(
        group_id=G,
        member_id=member_id,
        member_epoch=0,
        instance_id=None,
        rack_id=None,
        rebalance_timeout_ms=REBALANCE_MS,
        subscribed_topic_names=("t",),
        subscribed_topic_regex=None,
        server_assignor=None,
        owned={},
    )
    fields.update(kw)
    return HeartbeatRequest(**fields)  # type: ignore[arg-type]


def parts(*ps: int, topic: uuid.UUID = T) -> Partitions:
    return {topic: frozenset(ps)}


# --- joining --------------------------------------------------------------------------------------


def test_join_gets_an_epoch_and_the_whole_topic() -> None:
    h = Harness()
    c = h.client("m1")
    r = h.beat(c)
    assert r.error_code == NONE
    assert r.member_id == "m1"
    assert r.member_epoch >= 1
    assert r.heartbeat_interval_ms == 5_000
    assert r.assignment == parts(0, 1, 2, 3, 4, 5)
    assert h.group.state == "Stable"


def test_three_members_over_six_partitions_get_two_each() -> None:
    h = Harness()
    for name in ("m1", "m2", "m3"):
        h.beat(h.client(name))
        h.settle()
    assert h.sizes() == {"m1": 2, "m2": 2, "m3": 2}
    union = set().union(*(c.owned[T] for c in h.clients.values()))
    assert union == set(range(6))
    epochs = {c.epoch for c in h.clients.values()}
    assert epochs == {h.group.group_epoch}
    assert h.group.state == "Stable"


def test_unchanged_heartbeat_omits_the_assignment() -> None:
    h = Harness()
    c = h.client("m1")
    h.beat(c)
    r = h.beat(c, full=False)
    assert (r.error_code, r.assignment, r.member_epoch) == (NONE, None, c.epoch)


def test_member_leaving_triggers_reassignment() -> None:
    h = Harness()
    clients = [h.client(n) for n in ("m1", "m2", "m3")]
    for c in clients:
        h.beat(c)
    h.settle()
    epoch = h.group.group_epoch
    r = h.leave(clients[1])
    assert (r.error_code, r.member_epoch) == (NONE, -1)
    assert "m2" not in h.group.members
    assert h.group.group_epoch == epoch + 1
    del h.clients["m2"]
    h.settle()
    assert h.sizes() == {"m1": 3, "m3": 3}


def test_revocation_comes_first() -> None:
    h = Harness()
    a, b = h.client("a"), h.client("b")
    h.beat(a)
    a_epoch = a.epoch
    assert a.owned == parts(0, 1, 2, 3, 4, 5)
    rb = h.beat(b)
    assert rb.error_code == NONE
    assert rb.assignment == {}, "b gets nothing while a still owns its future partitions"
    assert h.group.members["b"].state == MemberState.UNRELEASED_PARTITIONS
    new_epoch = h.group.group_epoch
    assert rb.member_epoch == new_epoch

    ra = h.beat(a)  # a still owns all six
    keep = ra.assignment
    assert keep is not None and len(keep[T]) == 3
    assert ra.member_epoch == a_epoch, "a keeps its epoch until it reports the revoked partitions gone"
    assert h.group.members["a"].state == MemberState.UNREVOKED_PARTITIONS

    assert h.beat(a, owned=parts(0, 1, 2, 3, 4, 5)).member_epoch == a_epoch, "still owns them: no progress"
    assert h.beat(a, owned=_UNKNOWN, full=False).member_epoch == a_epoch, "owned unknown: no progress"
    assert h.beat(b).assignment == {}

    ra = h.beat(a)  # now reports only what it kept
    assert ra.member_epoch == new_epoch
    rb = h.beat(b)
    assert rb.assignment == parts(*(set(range(6)) - set(keep[T])))
    assert h.group.state == "Stable"


def test_previous_epoch_is_accepted_when_the_answer_was_lost() -> None:
    h = Harness()
    a, b = h.client("a"), h.client("b")
    h.beat(a)
    old = a.epoch
    h.beat(b)
    h.beat(a)
    h.beat(a)  # a moves to the new epoch with three partitions; pretend the answer was lost
    assert a.epoch > old
    lost = HeartbeatRequest(G, "a", old, None, None, REBALANCE_MS, ("t",), None, None, a.owned)
    assert h.send(lost).error_code == NONE
    not_a_subset = HeartbeatRequest(
        G, "a", old, None, None, REBALANCE_MS, ("t",), None, None, parts(*range(6))
    )
    assert h.send(not_a_subset).error_code == FENCED_MEMBER_EPOCH


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [1, -1, 7])
def test_wrong_epoch_is_fenced(delta: int) -> None:
    h = Harness()
    c = h.client("m1")
    h.beat(c)
    c.epoch += delta
    r = h.beat(c)
    assert r.error_code == FENCED_MEMBER_EPOCH
    assert r.error_message


def test_unknown_member() -> None:
    h = Harness()
    c = h.client("ghost")
    c.epoch = 3
    assert h.beat(c).error_code == UNKNOWN_MEMBER_ID  # no group yet
    h.beat(h.client("m1"))
    c.epoch = 3
    assert h.beat(c).error_code == UNKNOWN_MEMBER_ID
    assert h.leave(c).error_code == UNKNOWN_MEMBER_ID


@pytest.mark.parametrize(
    "change",
    [
        {"rebalance_timeout_ms": -1},
        {"owned": parts(0)},
        {"owned": None},
        {"subscribed_topic_names": None},
        {"group_id": ""},
        {"member_id": ""},
        {"member_epoch": -3},
        {"member_epoch": STATIC_LEAVE_EPOCH},  # -2 needs an instance id
    ],
)
def test_invalid_requests(change: dict[str, object]) -> None:
    h = Harness()
    r = h.send(join_req(**change))
    assert r.error_code == INVALID_REQUEST
    assert r.error_message
    assert G not in h.coordinator.groups or not h.group.members


def test_unsupported_assignor() -> None:
    h = Harness()
    r = h.send(join_req(server_assignor="cooperative-sticky"))
    assert r.error_code == UNSUPPORTED_ASSIGNOR
    assert "uniform" in (r.error_message or "") and "range" in (r.error_message or "")


def test_invalid_regular_expression() -> None:
    h = Harness()
    assert h.send(join_req(subscribed_topic_names=None, subscribed_topic_regex="t(")).error_code == (
        INVALID_REGULAR_EXPRESSION
    )


# --- time -----------------------------------------------------------------------------------------


def test_session_timeout_fences_a_silent_member() -> None:
    h = Harness()
    a, b = h.client("a"), h.client("b")
    h.beat(a)
    h.beat(b)
    h.settle()
    assert h.tick(SESSION_MS - 1) == []
    h.beat(a)
    fenced = h.tick(1)
    assert fenced == [(G, "b")]
    assert "b" not in h.group.members
    h.beat(a)
    assert a.owned == parts(*range(6))
    assert h.beat(b).error_code == UNKNOWN_MEMBER_ID


def test_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() -> None:
    h = Harness()
    a, b = h.client("a"), h.client("b")
    h.beat(a)
    h.beat(b)
    h.beat(a, owned=parts(*range(6)))  # told to revoke three
    h.tick(10_000)
    h.beat(a, owned=parts(*range(6)))  # still holding them
    h.beat(b)
    assert h.tick(REBALANCE_MS - 10_001) == []
    assert h.tick(1) == [(G, "a")]
    h.beat(b)
    assert b.owned == parts(*range(6))
    assert h.coordinator.next_deadline() is not None


# --- static membership ----------------------------------------------------------------------------


def test_static_member_comes_back_to_its_assignment() -> None:
    h = Harness()
    s = h.client("s-1", instance_id="i1")
    o = h.client("other")
    h.beat(s)
    h.beat(o)
    h.settle()
    mine = dict(s.owned)
    epoch = h.group.group_epoch
    r = h.leave(s, STATIC_LEAVE_EPOCH)
    assert (r.error_code, r.member_epoch) == (NONE, STATIC_LEAVE_EPOCH)
    assert h.group.group_epoch == epoch, "a temporary leave does not rebalance"
    h.beat(o)
    assert sum(len(ps) for ps in o.owned.values()) == 3, "its partitions wait for it"
    back = h.client("s-2", instance_id="i1")
    r = h.beat(back)
    assert r.error_code == NONE
    assert back.owned == mine
    assert r.member_epoch == epoch
    assert "s-1" not in h.group.members
    assert h.group.static_members["i1"] == "s-2"
    h.settle()
    assert h.sizes()["s-2"] == 3 and h.group.state == "Stable"


def test_static_member_that_left_while_waiting_for_partitions_gets_them_when_back() -> None:
    """A static member leaves (-2) before the partitions it was waiting for were released, and comes back
    under a new member id. Kafka replaces the member (new id, epoch 0) and reconciles it toward its target
    like any other member, so once the partitions are free it gets them."""
    h = Harness()
    a = h.client("a")
    s = h.client("s-1", instance_id="i1")
    h.beat(a)
    h.beat(s)  # s waits for three partitions a still owns
    assert s.owned == {} and h.group.members["s-1"].state == MemberState.UNRELEASED_PARTITIONS
    h.leave(s, STATIC_LEAVE_EPOCH)
    back = h.client("s-2", instance_id="i1")
    h.beat(back)
    h.settle()
    assert h.sizes() == {"a": 3, "s-1": 0, "s-2": 3}, "partitions released by a were never handed out"


def test_static_member_gone_past_its_session_is_replaced() -> None:
    h = Harness()
    s, o = h.client("s-1", instance_id="i1"), h.client("other")
    h.beat(s)
    h.beat(o)
    h.settle()
    h.leave(s, STATIC_LEAVE_EPOCH)
    h.tick(SESSION_MS - 1)
    h.beat(o)
    h.tick(1)
    assert "s-1" not in h.group.members
    h.settle()
    assert o.owned == parts(*range(6))


def test_instance_id_still_in_use_is_unreleased() -> None:
    h = Harness()
    h.beat(h.client("s-1", instance_id="i1"))
    r = h.beat(h.client("s-2", instance_id="i1"))
    assert r.error_code == UNRELEASED_INSTANCE_ID
    assert "s-2" not in h.group.members


def test_instance_id_must_match_the_member() -> None:
    h = Harness()
    s = h.client("s-1", instance_id="i1")
    h.beat(s)
    s.instance_id = "i2"
    assert h.beat(s).error_code == UNKNOWN_MEMBER_ID


# --- subscriptions and assignors ------------------------------------------------------------------


def test_regex_subscription_gets_the_matching_topics() -> None:
    cluster = Cluster({"t": (T, 2), "t2": (T2, 2), "other": (OTHER, 2)})
    h = Harness(cluster)
    c = h.client("m1", topics=None, regex="t.*")
    r = h.beat(c)
    assert r.error_code == NONE
    h.settle()
    assert c.owned == {T: frozenset({0, 1}), T2: frozenset({0, 1})}


def test_regex_and_names_together() -> None:
    cluster = Cluster({"t": (T, 2), "t2": (T2, 2), "other": (OTHER, 2)})
    h = Harness(cluster)
    c = h.client("m1", topics=("other",), regex="t2")
    h.beat(c)
    h.settle()
    assert c.owned == {OTHER: frozenset({0, 1}), T2: frozenset({0, 1})}


def test_unsubscribing_a_topic_revokes_it_and_others_take_it() -> None:
    cluster = Cluster({"t": (T, 2), "t2": (T2, 2)})
    h = Harness(cluster)
    a = h.client("a", topics=("t", "t2"))
    b = h.client("b", topics=("t", "t2"))
    h.beat(a)
    h.beat(b)
    h.settle()
    a.topics = ("t",)
    h.settle()
    assert T2 not in a.owned
    assert b.owned.get(T2) == frozenset({0, 1})


def test_new_partitions_are_assigned() -> None:
    h = Harness()
    a, b = h.client("a"), h.client("b")
    h.beat(a)
    h.beat(b)
    h.settle()
    h.cluster.topics["t"] = (T, 10)
    h.settle()
    assert h.sizes() == {"a": 5, "b": 5}


@pytest.mark.parametrize(
    ("assignor", "expected"),
    [("range", {"a": {0, 1, 2}, "b": {3, 4, 5}}), ("uniform", None)],
)
def test_server_assignor_choice(assignor: str, expected: dict[str, set[int]] | None) -> None:
    h = Harness()
    a, b = h.client("a", assignor=assignor), h.client("b", assignor=assignor)
    h.beat(a)
    h.beat(b)
    h.settle()
    assert h.group.assignor_name == assignor
    assert h.sizes() == {"a": 3, "b": 3}
    if expected is not None:
        assert {m: set(c.owned[T]) for m, c in h.clients.items()} == expected


# --- restart --------------------------------------------------------------------------------------


def test_restart_keeps_members_epochs_and_assignments() -> None:
    """Kafka keeps a consumer group in __consumer_offsets: after a coordinator restart its members carry
    on at their epochs, and a member that was revoking still has to revoke."""
    h = Harness()
    a, b = h.client("a", instance_id="ia"), h.client("b")
    h.beat(a)
    h.beat(b)
    h.beat(a)  # a is told to give up three partitions and has not yet
    assert h.group.members["a"].state == MemberState.UNREVOKED_PARTITIONS
    before = h.coordinator.export(h.group)
    h.now += 10_000
    h.restart()
    assert h.coordinator.export(h.group) == before
    assert h.group.static_members == {"ia": "a"}
    assert h.group.members["a"].revocation_deadline_ms == h.now + REBALANCE_MS
    assert h.group.members["b"].session_deadline_ms == h.now + SESSION_MS
    epochs = (a.epoch, b.epoch)
    assert h.beat(b).error_code == NONE and b.epoch == epochs[1]
    assert h.beat(a).error_code == NONE  # reports the revocation done
    h.settle()
    assert h.group.state == "Stable" and h.sizes() == {"a": 3, "b": 3}
    assert h.coordinator.validate_offset_commit(G, "a", a.epoch) == NONE


def test_restart_then_silence_fences_on_the_restarted_session() -> None:
    h = Harness()
    a = h.client("a")
    h.beat(a)
    h.now += SESSION_MS - 1  # just before the old deadline
    h.restart()
    assert h.tick(SESSION_MS - 1) == []  # the session restarted with the load
    assert h.tick(1) == [(G, "a")]


# --- property: never two owners -------------------------------------------------------------------

SLOTS = ["m1", "m2", "m3", "m4"]
_op = st.one_of(
    st.tuples(st.just("beat"), st.sampled_from(SLOTS), st.booleans()),
    st.tuples(st.just("quiet"), st.sampled_from(SLOTS), st.booleans()),
    st.tuples(st.just("leave"), st.sampled_from(SLOTS), st.booleans()),
    st.tuples(st.just("tick"), st.integers(1, 50_000), st.booleans()),
    st.tuples(st.just("resubscribe"), st.sampled_from(SLOTS), st.booleans()),
    st.tuples(st.just("grow"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("restart"), st.just(0), st.booleans()),
)


def members(h: Harness) -> dict[str, object]:
    group = h.coordinator.groups.get(G)
    return group.members if group is not None else {}  # type: ignore[return-value]


def _run_ops(
    ops: list[tuple[str, object, bool]], assignor: str
) -> tuple[Harness, Cluster, dict[str, Client]]:
    """Random joins, leaves (static ones come back), heartbeats, silences, subscription changes and new
    partitions; the harness checks exclusivity after every step."""
    cluster = Cluster({"t": (T, 4), "t2": (T2, 3)})
    h = Harness(cluster)
    slots = {
        name: h.client(name, instance_id=f"i-{name}" if i % 2 else None, assignor=assignor)
        for i, name in enumerate(SLOTS)
    }
    for kind, arg, flag in ops:
        c = slots.get(str(arg))
        if kind == "beat":
            assert c is not None
            h.beat(c, full=flag)
        elif kind == "quiet":  # owned partitions and subscription left out: "unchanged"
            assert c is not None
            h.beat(c, full=False, owned=None if c.epoch == 0 else _UNKNOWN)
        elif kind == "leave":
            assert c is not None
            if c.member_id in members(h):
                static = flag and c.instance_id is not None
                h.leave(c, STATIC_LEAVE_EPOCH if static else -1)
                if static:  # the process restarts: same instance id, new member id
                    del h.clients[c.member_id]
                    slots[str(arg)] = h.client(
                        c.member_id + "+", topics=c.topics, instance_id=c.instance_id, assignor=assignor
                    )
        elif kind == "tick":
            h.tick(int(arg))  # type: ignore[call-overload]
        elif kind == "resubscribe":
            assert c is not None
            c.topics = ("t",) if flag else ("t", "t2")
        elif kind == "restart":
            h.restart()
        elif kind == "grow":
            tid, n = cluster.topics["t"]
            cluster.topics["t"] = (tid, min(n + int(arg), 12))  # type: ignore[call-overload]
    return h, cluster, slots


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_op, max_size=80), st.sampled_from(["uniform", "range"]))
def test_property_no_partition_ever_has_two_owners(
    ops: list[tuple[str, object, bool]], assignor: str
) -> None:
    _run_ops(ops, assignor)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_op, max_size=80), st.sampled_from(["uniform", "range"]))
def test_property_every_partition_eventually_has_an_owner(
    ops: list[tuple[str, object, bool]], assignor: str
) -> None:
    h, cluster, slots = _run_ops(ops, assignor)
    # Liveness: once everyone heartbeats, every subscribed partition has exactly one owner.
    for c in slots.values():
        if c.member_id not in members(h):
            c.epoch, c.owned = 0, {}
    for _ in range(6):
        for c in slots.values():
            h.beat(c)
    owned = sorted((t, p) for c in slots.values() for t, ps in c.owned.items() for p in ps)
    subscribed = {name for c in slots.values() for name in c.topics or ()}
    wanted = sorted(
        (tid, p) for name, (tid, n) in cluster.topics.items() if name in subscribed for p in range(n)
    )
    assert owned == wanted
