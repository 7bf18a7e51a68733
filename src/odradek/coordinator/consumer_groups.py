"""KIP-848 consumer groups: server-side assignment and per-member reconciliation, as pure logic.

Every member heartbeats (ConsumerGroupHeartbeat); there is no join or sync barrier. The coordinator keeps
a group epoch (bumped when membership, subscriptions or subscribed topics' partition counts change), a
target assignment computed by a server-side assignor for that epoch, and for each member its current
assignment. Each member moves toward its target on its own heartbeats: first it gives up what it must
(its epoch stays until it reports the partitions gone), then it takes what is free (its epoch becomes the
target epoch). A partition is never owned by two members at once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .assignors import ASSIGNORS, DEFAULT_ASSIGNOR

NONE = 0
INVALID_REQUEST = 42
UNKNOWN_MEMBER_ID = 25
GROUP_MAX_SIZE_REACHED = 81
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113
INVALID_REGULAR_EXPRESSION = 128

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

TopicId = uuid.UUID
Partitions = dict[TopicId, frozenset[int]]
# name -> (topic id, partition count) for existing topics
TopicResolver = Callable[[str], tuple[TopicId, int] | None]


class MemberState(Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = 45000  # group.consumer.session.timeout.ms
    heartbeat_interval_ms: int = 5000  # group.consumer.heartbeat.interval.ms
    max_size: int = 0x7FFFFFFF  # group.consumer.max.size


@dataclass
class ConsumerMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    subscribed_topic_names: tuple[str, ...]
    server_assignor: str | None
    subscribed_topic_regex: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Partitions = field(default_factory=dict)
    pending_revocation: Partitions = field(default_factory=dict)
    session_deadline_ms: int = 0
    revocation_deadline_ms: int | None = None


@dataclass(frozen=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int  # -1: unchanged
    subscribed_topic_names: tuple[str, ...] | None  # None: unchanged
    subscribed_topic_regex: str | None
    server_assignor: str | None
    owned: Partitions | None  # None: unchanged
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True)
class HeartbeatResult:
    error_code: int
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Partitions | None = None


@dataclass
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Partitions] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    partition_counts: dict[TopicId, int] = field(default_factory=dict)  # of subscribed topics
    assignor_name: str = DEFAULT_ASSIGNOR

    @property
    def state(self) -> str:
        if not self.members:
            return "Empty"
        if self.assignment_epoch != self.group_epoch:
            return "Assigning"
        if any(
            m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE
            for m in self.members.values()
        ):
            return "Reconciling"
        return "Stable"

    def owner_epoch(self, topic_id: TopicId, partition: int, except_member: str) -> int:
        """The epoch of the member that currently owns (or is still revoking) a partition, or -1."""
        for m in self.members.values():
            if m.member_id == except_member:
                continue
            if partition in m.assigned.get(topic_id, ()) or partition in m.pending_revocation.get(
                topic_id, ()
            ):
                return m.member_epoch
        return -1


class ConsumerGroupCoordinator:
    def __init__(self, config: ConsumerGroupConfig | None = None) -> None:
        self.config = config or ConsumerGroupConfig()
        self.groups: dict[str, ConsumerGroup] = {}
        # KIP-848 group configs (consumer.session.timeout.ms, consumer.heartbeat.interval.ms) by group id;
        # a group may have them before it exists, as in Kafka.
        self.group_configs: dict[str, ConsumerGroupConfig] = {}
        self._topic_names: Callable[[], Iterable[str]] = tuple

    def config_for(self, group_id: str) -> ConsumerGroupConfig:
        return self.group_configs.get(group_id, self.config)

    def set_group_config(
        self, group_id: str, session_timeout_ms: int | None, heartbeat_interval_ms: int | None
    ) -> None:
        """A group's own session timeout and heartbeat interval (None: the broker's); members get them
        from their next heartbeat on."""
        if session_timeout_ms is None and heartbeat_interval_ms is None:
            self.group_configs.pop(group_id, None)
            return
        self.group_configs[group_id] = replace(
            self.config,
            session_timeout_ms=session_timeout_ms or self.config.session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms or self.config.heartbeat_interval_ms,
        )

    def next_deadline(self) -> int | None:
        deadlines = []
        for g in self.groups.values():
            for m in g.members.values():
                deadlines.append(m.session_deadline_ms)
                if m.revocation_deadline_ms is not None:
                    deadlines.append(m.revocation_deadline_ms)
        return min(deadlines) if deadlines else None

    # --- heartbeat --------------------------------------------------------------------------------

    def heartbeat(
        self,
        now_ms: int,
        req: HeartbeatRequest,
        topics: TopicResolver,
        topic_names: Callable[[], Iterable[str]] = tuple,
    ) -> HeartbeatResult:
        self._topic_names = topic_names
        error = self._validate(req)
        if error is not None:
            return error
        group = self.groups.get(req.group_id)
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(now_ms, group, req, topics)
        if group is None:
            if req.member_epoch != 0:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, f"member {req.member_id} is not in the group")
            group = self.groups[req.group_id] = ConsumerGroup(req.group_id)
        member = group.members.get(req.member_id)
        if req.member_epoch == 0:
            result = self._join(now_ms, group, req)
            if isinstance(result, HeartbeatResult):
                return result
            member = result
        elif member is None:
            return HeartbeatResult(UNKNOWN_MEMBER_ID, f"member {req.member_id} is not in the group")
        else:
            fenced = self._check_epoch(member, req)
            if fenced is not None:
                return fenced
            if req.instance_id is not None and group.static_members.get(req.instance_id) != member.member_id:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, "instance id does not belong to this member")
        self._update_subscription(group, member, req)
        member.session_deadline_ms = now_ms + self.config_for(group.group_id).session_timeout_ms
        self._refresh_topics(group, topics)
        if group.assignment_epoch != group.group_epoch:
            self._assign(group, topics)
        before = (dict(member.assigned), member.member_epoch)
        self._reconcile(now_ms, group, member, req.owned, topics)
        full_request = (
            req.rebalance_timeout_ms != -1
            and req.subscribed_topic_names is not None
            and req.owned is not None
        )
        changed = (dict(member.assigned), member.member_epoch) != before
        send_assignment = req.member_epoch == 0 or full_request or changed
        return HeartbeatResult(
            NONE,
            None,
            member.member_id,
            member.member_epoch,
            self.config_for(group.group_id).heartbeat_interval_ms,
            dict(member.assigned) if send_assignment else None,
        )

    def _validate(self, req: HeartbeatRequest) -> HeartbeatResult | None:
        if not req.group_id:
            return HeartbeatResult(INVALID_REQUEST, "GroupId can't be empty.")
        if not req.member_id:
            return HeartbeatResult(INVALID_REQUEST, "MemberId can't be empty.")
        if req.member_epoch == 0:
            if req.rebalance_timeout_ms == -1:
                return HeartbeatResult(
                    INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request."
                )
            if req.owned is None or any(req.owned.values()):
                return HeartbeatResult(INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                return HeartbeatResult(
                    INVALID_REQUEST,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                )
        elif req.member_epoch < STATIC_LEAVE_EPOCH:
            return HeartbeatResult(INVALID_REQUEST, f"MemberEpoch {req.member_epoch} is invalid.")
        if req.member_epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            return HeartbeatResult(INVALID_REQUEST, "InstanceId can't be null when leaving with epoch -2.")
        if req.subscribed_topic_regex:
            try:
                re.compile(req.subscribed_topic_regex)
            except re.error as e:
                return HeartbeatResult(INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex is invalid: {e}")
        if req.server_assignor is not None and req.server_assignor not in ASSIGNORS:
            return HeartbeatResult(
                UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {req.server_assignor} is not supported. Supported assignors: "
                + ", ".join(sorted(ASSIGNORS))
                + ".",
            )
        return None

    def _join(
        self, now_ms: int, group: ConsumerGroup, req: HeartbeatRequest
    ) -> ConsumerMember | HeartbeatResult:
        existing = group.members.get(req.member_id)
        if req.instance_id is not None:
            holder = group.static_members.get(req.instance_id)
            if holder is not None and holder != req.member_id:
                old = group.members.get(holder)
                if old is not None and old.member_epoch != STATIC_LEAVE_EPOCH:
                    return HeartbeatResult(
                        UNRELEASED_INSTANCE_ID,
                        f"Static member {req.instance_id} is still in use by another member.",
                    )
                if old is not None:
                    # The static member comes back: it takes over its previous assignment and epoch.
                    del group.members[holder]
                    member = self._new_member(group, req)
                    member.assigned = old.assigned
                    member.pending_revocation = old.pending_revocation
                    member.state = old.state  # still waiting for partitions, if it was
                    member.revocation_deadline_ms = old.revocation_deadline_ms
                    member.member_epoch = old.previous_member_epoch
                    member.previous_member_epoch = old.previous_member_epoch
                    group.target[member.member_id] = group.target.pop(holder, {})
                    group.members[member.member_id] = member
                    group.static_members[req.instance_id] = member.member_id
                    return member
        if existing is not None:
            # A member rejoining with epoch 0 starts over: its partitions are released.
            self._remove(group, existing.member_id)
        if len(group.members) >= self.config.max_size:
            return HeartbeatResult(GROUP_MAX_SIZE_REACHED, "The consumer group has reached its maximum size.")
        member = self._new_member(group, req)
        group.members[member.member_id] = member
        if req.instance_id is not None:
            group.static_members[req.instance_id] = member.member_id
        group.group_epoch += 1
        return member

    def _new_member(self, group: ConsumerGroup, req: HeartbeatRequest) -> ConsumerMember:
        return ConsumerMember(
            member_id=req.member_id,
            instance_id=req.instance_id,
            rack_id=req.rack_id,
            client_id=req.client_id,
            client_host=req.client_host,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            subscribed_topic_names=tuple(sorted(set(req.subscribed_topic_names or ()))),
            server_assignor=req.server_assignor,
            subscribed_topic_regex=req.subscribed_topic_regex or None,
        )

    def _check_epoch(self, member: ConsumerMember, req: HeartbeatRequest) -> HeartbeatResult | None:
        if req.member_epoch == member.member_epoch:
            return None
        if req.member_epoch == member.previous_member_epoch and req.member_epoch < member.member_epoch:
            # The member may not have seen our last answer: accept if it owns nothing beyond its assignment.
            owned = req.owned or {}
            if all(parts <= member.assigned.get(t, frozenset()) for t, parts in owned.items()):
                return None
        return HeartbeatResult(
            FENCED_MEMBER_EPOCH,
            f"The consumer group member has a different epoch ({req.member_epoch}) than the "
            f"one known by the group coordinator ({member.member_epoch}). The member must "
            "abandon all its partitions and rejoin.",
        )

    def _update_subscription(
        self, group: ConsumerGroup, member: ConsumerMember, req: HeartbeatRequest
    ) -> None:
        if req.client_id:
            member.client_id = req.client_id
        if req.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.subscribed_topic_names is not None:
            names = tuple(sorted(set(req.subscribed_topic_names)))
            if names != member.subscribed_topic_names:
                member.subscribed_topic_names = names
                group.group_epoch += 1
        if req.subscribed_topic_regex is not None and (req.subscribed_topic_regex or None) != (
            member.subscribed_topic_regex
        ):
            member.subscribed_topic_regex = req.subscribed_topic_regex or None
            group.group_epoch += 1
        if req.server_assignor is not None and req.server_assignor != member.server_assignor:
            member.server_assignor = req.server_assignor
            group.group_epoch += 1

    def _refresh_topics(self, group: ConsumerGroup, topics: TopicResolver) -> None:
        counts: dict[TopicId, int] = {}
        for m in group.members.values():
            for name in self._subscribed(m):
                found = topics(name)
                if found is not None:
                    counts[found[0]] = found[1]
        if counts != group.partition_counts:
            group.partition_counts = counts
            group.group_epoch += 1

    def _subscribed(self, member: ConsumerMember) -> list[str]:
        """Topic names a member subscribes to: its list plus whatever its regular expression matches."""
        names = set(member.subscribed_topic_names)
        if member.subscribed_topic_regex:
            pattern = re.compile(member.subscribed_topic_regex)
            names.update(n for n in self._topic_names() if pattern.fullmatch(n))
        return sorted(names)

    def _assign(self, group: ConsumerGroup, topics: TopicResolver) -> None:
        chosen = [m.server_assignor for m in group.members.values() if m.server_assignor]
        group.assignor_name = max(set(chosen), key=chosen.count) if chosen else DEFAULT_ASSIGNOR
        subscriptions: dict[str, list[tuple[TopicId, int]]] = {}
        for m in group.members.values():
            subs = []
            for name in self._subscribed(m):
                found = topics(name)
                if found is not None:
                    subs.append(found)
            subscriptions[m.member_id] = subs
        current = {mid: group.target.get(mid, {}) for mid in group.members}
        group.target = ASSIGNORS[group.assignor_name](subscriptions, current)
        group.assignment_epoch = group.group_epoch

    def _reconcile(
        self,
        now_ms: int,
        group: ConsumerGroup,
        member: ConsumerMember,
        owned: Partitions | None,
        topics: TopicResolver,
    ) -> None:
        target = group.target.get(member.member_id, {})
        if member.state == MemberState.STABLE and member.member_epoch == group.assignment_epoch:
            return
        if member.state == MemberState.UNREVOKED_PARTITIONS and _owns_any(owned, member.pending_revocation):
            return
        subscribed = {found[0] for name in self._subscribed(member) if (found := topics(name)) is not None}
        assigned: Partitions = {}
        revoking: Partitions = {}
        pending: Partitions = {}
        unreleased = False
        for topic_id in set(target) | set(member.assigned):
            want = target.get(topic_id, frozenset()) if topic_id in subscribed else frozenset()
            have = member.assigned.get(topic_id, frozenset())
            keep = have & want
            if keep:
                assigned[topic_id] = keep
            if have - keep:
                revoking[topic_id] = have - keep
            free = set()
            for p in want - keep:
                if group.owner_epoch(topic_id, p, member.member_id) != -1:
                    unreleased = True
                else:
                    free.add(p)
            if free:
                pending[topic_id] = frozenset(free)
        if revoking and _owns_any(owned, revoking, unknown_means_owned=True):
            member.assigned = assigned
            member.pending_revocation = revoking
            if member.state != MemberState.UNREVOKED_PARTITIONS:
                member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
            member.state = MemberState.UNREVOKED_PARTITIONS
            return
        for topic_id, parts in pending.items():
            assigned[topic_id] = assigned.get(topic_id, frozenset()) | parts
        member.assigned = assigned
        member.pending_revocation = {}
        member.revocation_deadline_ms = None
        member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        if member.member_epoch != group.assignment_epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = group.assignment_epoch

    def _leave(
        self, now_ms: int, group: ConsumerGroup | None, req: HeartbeatRequest, topics: TopicResolver
    ) -> HeartbeatResult:
        if group is None or req.member_id not in group.members:
            return HeartbeatResult(UNKNOWN_MEMBER_ID, f"member {req.member_id} is not in the group")
        member = group.members[req.member_id]
        if req.member_epoch == STATIC_LEAVE_EPOCH and member.instance_id is not None:
            # A static member leaving temporarily keeps its assignment for its session timeout.
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            member.session_deadline_ms = now_ms + self.config_for(group.group_id).session_timeout_ms
            return HeartbeatResult(NONE, None, req.member_id, STATIC_LEAVE_EPOCH, 0)
        self._remove(group, req.member_id)
        group.group_epoch += 1
        return HeartbeatResult(NONE, None, req.member_id, req.member_epoch, 0)

    def _remove(self, group: ConsumerGroup, member_id: str) -> None:
        member = group.members.pop(member_id, None)
        group.target.pop(member_id, None)
        if member is not None and member.instance_id is not None:
            if group.static_members.get(member.instance_id) == member_id:
                del group.static_members[member.instance_id]

    # --- time -------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[tuple[str, str]]:
        """Fence members whose session or revocation deadline passed; returns (group, member) fenced."""
        fenced = []
        for group in self.groups.values():
            for m in list(group.members.values()):
                late_revoke = m.revocation_deadline_ms is not None and m.revocation_deadline_ms <= now_ms
                if m.session_deadline_ms <= now_ms or late_revoke:
                    self._remove(group, m.member_id)
                    group.group_epoch += 1
                    fenced.append((group.group_id, m.member_id))
        return fenced

    # --- offsets ----------------------------------------------------------------------------------

    def validate_offset_commit(self, group_id: str, member_id: str, member_epoch: int) -> int:
        group = self.groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID
        if member_epoch < 0 and not member_id:
            return NONE if not group.members else UNKNOWN_MEMBER_ID
        member = group.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if member_epoch > member.member_epoch:
            return FENCED_MEMBER_EPOCH
        if member_epoch < member.member_epoch:
            return STALE_MEMBER_EPOCH
        return NONE

    def delete(self, group_id: str) -> bool:
        group = self.groups.get(group_id)
        if group is None or group.members:
            return False
        del self.groups[group_id]
        return True

    # --- restart ----------------------------------------------------------------------------------

    def export(self, group: ConsumerGroup) -> dict[str, Any]:
        """What survives a restart, as Kafka keeps it in __consumer_offsets: the group epoch, target
        assignment, subscribed topics' partition counts and every member's metadata, epoch, reconciliation
        state and current assignment. Deadlines are not kept: sessions start again when the group loads."""
        return {
            "g": group.group_id,
            "epoch": group.group_epoch,
            "aepoch": group.assignment_epoch,
            "assignor": group.assignor_name,
            "counts": {str(t): n for t, n in group.partition_counts.items()},
            "target": {mid: _export_partitions(p) for mid, p in group.target.items()},
            "members": [
                {
                    "id": m.member_id,
                    "iid": m.instance_id,
                    "rack": m.rack_id,
                    "cid": m.client_id,
                    "host": m.client_host,
                    "rt": m.rebalance_timeout_ms,
                    "topics": list(m.subscribed_topic_names),
                    "regex": m.subscribed_topic_regex,
                    "sa": m.server_assignor,
                    "epoch": m.member_epoch,
                    "prev": m.previous_member_epoch,
                    "state": m.state.value,
                    "asg": _export_partitions(m.assigned),
                    "revoking": _export_partitions(m.pending_revocation),
                }
                for m in group.members.values()
            ],
        }

    def restore(self, now_ms: int, record: dict[str, Any]) -> ConsumerGroup:
        """Load an exported group. Every member's session starts again now, and a member that was still
        revoking gets its rebalance timeout again, as when a coordinator loads a group."""
        group = ConsumerGroup(
            record["g"],
            group_epoch=record["epoch"],
            assignment_epoch=record["aepoch"],
            target={mid: _restore_partitions(p) for mid, p in record["target"].items()},
            partition_counts={uuid.UUID(t): n for t, n in record["counts"].items()},
            assignor_name=record["assignor"],
        )
        for m in record["members"]:
            state = MemberState(m["state"])
            revoking = state == MemberState.UNREVOKED_PARTITIONS
            member = ConsumerMember(
                member_id=m["id"],
                instance_id=m["iid"],
                rack_id=m["rack"],
                client_id=m["cid"],
                client_host=m["host"],
                rebalance_timeout_ms=m["rt"],
                subscribed_topic_names=tuple(m["topics"]),
                server_assignor=m["sa"],
                subscribed_topic_regex=m["regex"],
                member_epoch=m["epoch"],
                previous_member_epoch=m["prev"],
                state=state,
                assigned=_restore_partitions(m["asg"]),
                pending_revocation=_restore_partitions(m["revoking"]),
                session_deadline_ms=now_ms + self.config_for(group.group_id).session_timeout_ms,
                revocation_deadline_ms=now_ms + m["rt"] if revoking else None,
            )
            group.members[member.member_id] = member
            if member.instance_id is not None:
                group.static_members[member.instance_id] = member.member_id
        self.groups[group.group_id] = group
        return group


def _export_partitions(partitions: Partitions) -> dict[str, list[int]]:
    return {str(t): sorted(p) for t, p in partitions.items()}


def _restore_partitions(exported: dict[str, list[int]]) -> Partitions:
    return {uuid.UUID(t): frozenset(p) for t, p in exported.items()}


def _owns_any(owned: Partitions | None, partitions: Partitions, unknown_means_owned: bool = True) -> bool:
    if owned is None:
        return unknown_means_owned
    return any(owned.get(t, frozenset()) & parts for t, parts in partitions.items())
