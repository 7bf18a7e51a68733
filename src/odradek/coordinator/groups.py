"""Classic consumer groups as a deterministic state machine (no I/O, no clock of its own).

Events come in with the current time (``now_ms``); answers that must wait for a barrier (JoinGroup until
every member has rejoined, SyncGroup until the leader has sent assignments) are delivered through the
``reply`` callback given with the request, possibly from a later event or from :meth:`tick`. The I/O shell
turns callbacks into futures and calls ``tick`` at :meth:`next_deadline`. A bug is reproducible from a
list of events and times.

States and their allowed next states (Kafka's classic protocol)::

    Empty               -> PreparingRebalance, Dead
    PreparingRebalance  -> CompletingRebalance, Empty, Dead
    CompletingRebalance -> PreparingRebalance, Stable, Dead
    Stable              -> PreparingRebalance, Dead
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# Kafka error codes used by group logic.
NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
GROUP_ID_NOT_FOUND = 69
NON_EMPTY_GROUP = 68
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_ALLOWED: dict[GroupState, set[GroupState]] = {
    GroupState.EMPTY: {GroupState.PREPARING_REBALANCE, GroupState.DEAD},
    GroupState.PREPARING_REBALANCE: {GroupState.COMPLETING_REBALANCE, GroupState.EMPTY, GroupState.DEAD},
    GroupState.COMPLETING_REBALANCE: {GroupState.PREPARING_REBALANCE, GroupState.STABLE, GroupState.DEAD},
    GroupState.STABLE: {GroupState.PREPARING_REBALANCE, GroupState.DEAD},
    GroupState.DEAD: set(),
}


class IllegalTransition(AssertionError):
    pass


@dataclass(frozen=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000  # group.max.session.timeout.ms
    max_size: int = 0x7FFFFFFF  # group.max.size
    initial_rebalance_delay_ms: int = 0  # group.initial.rebalance.delay.ms


@dataclass(frozen=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    require_known_member_id: bool  # JoinGroup v4+: MEMBER_ID_REQUIRED first
    reason: str | None = None


@dataclass(frozen=True)
class JoinResult:
    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()  # (member id, instance id, metadata)
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


JoinReply = Callable[[JoinResult], None]
SyncReply = Callable[[SyncResult], None]


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    last_heartbeat_ms: int
    assignment: bytes = b""
    join_reply: JoinReply | None = None
    sync_reply: SyncReply | None = None
    synced: bool = False  # sent SyncGroup for the current generation (or is not expected to)

    @classmethod
    def joining(cls, member_id: str, req: JoinRequest, now_ms: int, **extra: Any) -> Member:
        return cls(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.session_timeout_ms,
            req.rebalance_timeout_ms,
            req.protocol_type,
            req.protocols,
            now_ms,
            **extra,
        )

    def metadata_for(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        raise KeyError(protocol)


@dataclass
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # member id -> expiry deadline
    join_deadline_ms: int | None = None  # rebalance barrier
    sync_deadline_ms: int | None = None  # leader's SyncGroup barrier
    new_member_added: bool = False
    initial_delay_cap_ms: int | None = None  # group.initial.rebalance.delay.ms extends up to here
    empty_since_ms: int | None = None

    def transition(self, to: GroupState) -> None:
        if to not in _ALLOWED[self.state]:
            raise IllegalTransition(f"group {self.group_id}: {self.state.value} -> {to.value} is not allowed")
        self.state = to

    def all_joined(self) -> bool:
        return all(m.join_reply is not None for m in self.members.values()) and not self.pending_members

    def supported_protocols(self) -> list[str]:
        if not self.members:
            return []
        common = None
        for m in self.members.values():
            names = {n for n, _ in m.protocols}
            common = names if common is None else common & names
        return sorted(common or ())

    def select_protocol(self) -> str:
        """Every member votes for its most preferred protocol among those all support; most votes win."""
        candidates = set(self.supported_protocols())
        votes: dict[str, int] = {}
        for m in self.members.values():
            for name, _ in m.protocols:
                if name in candidates:
                    votes[name] = votes.get(name, 0) + 1
                    break
        return max(sorted(votes), key=lambda n: votes[n])

    def accepts(self, protocol_type: str, protocols: tuple[tuple[str, bytes], ...]) -> bool:
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        if protocol_type != self.protocol_type:
            return False
        names = {n for n, _ in protocols}
        return bool(names & set(self.supported_protocols()))


class GroupCoordinator:
    def __init__(
        self, config: GroupConfig | None = None, on_group_change: Callable[[Group], None] | None = None
    ) -> None:
        self.config = config or GroupConfig()
        self.groups: dict[str, Group] = {}
        self._on_group_change = on_group_change or (lambda g: None)

    # --- queries ----------------------------------------------------------------------------------

    def group(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def get_or_create(self, group_id: str) -> Group:
        g = self.groups.get(group_id)
        if g is None:
            g = self.groups[group_id] = Group(group_id)
        return g

    def next_deadline(self) -> int | None:
        deadlines: list[int] = []
        for g in self.groups.values():
            if g.join_deadline_ms is not None:
                deadlines.append(g.join_deadline_ms)
            if g.sync_deadline_ms is not None:
                deadlines.append(g.sync_deadline_ms)
            deadlines.extend(g.pending_members.values())
            for m in g.members.values():
                if m.join_reply is None and m.sync_reply is None:
                    deadlines.append(m.last_heartbeat_ms + m.session_timeout_ms)
        return min(deadlines) if deadlines else None

    # --- JoinGroup --------------------------------------------------------------------------------

    def join(self, now_ms: int, req: JoinRequest, reply: JoinReply) -> None:
        if not req.group_id:
            return reply(JoinResult(INVALID_GROUP_ID, member_id=req.member_id))
        if not (
            self.config.min_session_timeout_ms <= req.session_timeout_ms <= self.config.max_session_timeout_ms
        ):
            return reply(JoinResult(INVALID_SESSION_TIMEOUT, member_id=req.member_id))
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return reply(JoinResult(UNKNOWN_MEMBER_ID, member_id=req.member_id))
            group = self.get_or_create(req.group_id)
        if group.state == GroupState.DEAD:
            return reply(JoinResult(COORDINATOR_NOT_AVAILABLE, member_id=req.member_id))
        if not group.accepts(req.protocol_type, req.protocols):
            return reply(JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id=req.member_id))
        if req.member_id == "":
            self._join_unknown(now_ms, group, req, reply)
        else:
            self._join_known(now_ms, group, req, reply)

    def _join_unknown(self, now_ms: int, group: Group, req: JoinRequest, reply: JoinReply) -> None:
        new_id = f"{req.client_id}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            old_id = group.static_members.get(req.group_instance_id)
            if old_id is not None and old_id in group.members:
                return self._replace_static(now_ms, group, old_id, new_id, req, reply)
        if len(group.members) + len(group.pending_members) >= self.config.max_size:
            return reply(JoinResult(GROUP_MAX_SIZE_REACHED, member_id=""))
        if req.require_known_member_id and req.group_instance_id is None:
            # KIP-394: hand out an id first; the member must come back with it within its session.
            group.pending_members[new_id] = now_ms + req.session_timeout_ms
            return reply(JoinResult(MEMBER_ID_REQUIRED, member_id=new_id))
        self._add_member(now_ms, group, new_id, req, reply)

    def _join_known(self, now_ms: int, group: Group, req: JoinRequest, reply: JoinReply) -> None:
        member_id = req.member_id
        if member_id in group.pending_members:
            if len(group.members) >= self.config.max_size:
                del group.pending_members[member_id]
                return reply(JoinResult(GROUP_MAX_SIZE_REACHED, member_id=member_id))
            del group.pending_members[member_id]
            return self._add_member(now_ms, group, member_id, req, reply)
        error = self._validate_member(group, member_id, req.group_instance_id)
        if error:
            return reply(JoinResult(error, member_id=member_id))
        member = group.members[member_id]
        member.last_heartbeat_ms = now_ms
        changed = member.protocols != req.protocols
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id = req.client_id
        if group.state == GroupState.PREPARING_REBALANCE:
            member.protocols = req.protocols
            self._replace_join_reply(member, reply)
            self._maybe_complete_join(now_ms, group)
        elif group.state == GroupState.COMPLETING_REBALANCE:
            if not changed:
                reply(self._join_result(group, member_id))  # a resend of the join that just completed
            else:
                member.protocols = req.protocols
                member.join_reply = reply
                self._prepare_rebalance(now_ms, group, f"member {member_id} changed its protocols")
        elif group.state == GroupState.STABLE:
            if member_id == group.leader_id or changed:
                member.protocols = req.protocols
                member.join_reply = reply
                self._prepare_rebalance(now_ms, group, f"leader or changed member {member_id} rejoined")
            else:
                reply(self._join_result(group, member_id))
        else:
            reply(JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id))

    def _replace_join_reply(self, member: Member, reply: JoinReply) -> None:
        old = member.join_reply
        member.join_reply = reply
        if old is not None and old is not reply:
            old(JoinResult(UNKNOWN_MEMBER_ID, member_id=member.member_id))

    def _add_member(
        self, now_ms: int, group: Group, member_id: str, req: JoinRequest, reply: JoinReply
    ) -> None:
        member = Member.joining(member_id, req, now_ms, join_reply=reply)
        if not group.members:
            group.protocol_type = req.protocol_type
        group.members[member_id] = member
        if req.group_instance_id is not None:
            group.static_members[req.group_instance_id] = member_id
        group.new_member_added = True
        group.empty_since_ms = None
        if group.state in (GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(now_ms, group, f"new member {member_id} joined")
        else:
            self._maybe_complete_join(now_ms, group)

    def _replace_static(
        self, now_ms: int, group: Group, old_id: str, new_id: str, req: JoinRequest, reply: JoinReply
    ) -> None:
        """A static member restarted: it takes over its old identity; the old id is fenced."""
        old = group.members.pop(old_id)
        if old.join_reply is not None:
            old.join_reply(JoinResult(FENCED_INSTANCE_ID, member_id=old_id))
        if old.sync_reply is not None:
            old.sync_reply(SyncResult(FENCED_INSTANCE_ID))
        member = Member.joining(new_id, req, now_ms, assignment=old.assignment)
        group.members[new_id] = member
        assert req.group_instance_id is not None
        group.static_members[req.group_instance_id] = new_id
        previous_leader = group.leader_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        stable_or_completing = group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE)
        if stable_or_completing and old.protocols == req.protocols:
            # Same subscription: no rebalance. The reply names the previous leader id, so a restarted
            # leader does not compute an assignment over an empty member list: it syncs like a follower
            # and gets its previous assignment back.
            member.synced = old.synced
            reply(
                JoinResult(
                    NONE,
                    group.generation_id,
                    group.protocol_type,
                    group.protocol_name,
                    previous_leader or "",
                    new_id,
                    (),
                    skip_assignment=False,
                )
            )
            self._on_group_change(group)
            return
        member.join_reply = reply
        if group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(now_ms, group)
        else:
            self._prepare_rebalance(now_ms, group, f"static member {req.group_instance_id} rejoined")

    def _validate_member(self, group: Group, member_id: str, instance_id: str | None) -> int:
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is None:
                return UNKNOWN_MEMBER_ID
            return NONE if known == member_id else FENCED_INSTANCE_ID
        if member_id not in group.members:
            return UNKNOWN_MEMBER_ID
        return NONE

    def _prepare_rebalance(self, now_ms: int, group: Group, reason: str) -> None:
        # Members waiting on a SyncGroup for the old generation learn that it is over.
        for m in group.members.values():
            if m.sync_reply is not None:
                m.sync_reply(SyncResult(REBALANCE_IN_PROGRESS))
                m.sync_reply = None
                m.last_heartbeat_ms = now_ms  # its session starts again: it must now rejoin
        group.sync_deadline_ms = None
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        delay = self.config.initial_rebalance_delay_ms if group.state == GroupState.EMPTY else 0
        group.transition(GroupState.PREPARING_REBALANCE)
        group.new_member_added = False
        if delay:
            # Kafka's initial delayed join: wait for more members, extending the wait per arrival but
            # never past the rebalance timeout; it does not complete early.
            group.initial_delay_cap_ms = now_ms + timeout
            group.join_deadline_ms = now_ms + min(delay, timeout)
        else:
            group.initial_delay_cap_ms = None
            group.join_deadline_ms = now_ms + timeout
            self._maybe_complete_join(now_ms, group)

    def _maybe_complete_join(self, now_ms: int, group: Group) -> None:
        if group.state != GroupState.PREPARING_REBALANCE or group.initial_delay_cap_ms is not None:
            return
        if group.all_joined():
            self._complete_join(now_ms, group)

    def _complete_join(self, now_ms: int, group: Group) -> None:
        # Dynamic members that did not rejoin in time are removed; static ones stay until their session
        # times out (their restart may be on its way).
        late = [
            mid for mid, m in group.members.items() if m.join_reply is None and m.group_instance_id is None
        ]
        for member_id in late:
            self._remove_member(group, member_id)
        group.pending_members.clear()
        group.join_deadline_ms = None
        group.sync_deadline_ms = None
        group.initial_delay_cap_ms = None
        if not group.members:
            group.generation_id += 1
            group.protocol_name = None
            group.leader_id = None
            group.transition(GroupState.EMPTY)
            group.empty_since_ms = now_ms
            self._on_group_change(group)
            return
        group.generation_id += 1
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.transition(GroupState.COMPLETING_REBALANCE)
        group.sync_deadline_ms = now_ms + max(m.rebalance_timeout_ms for m in group.members.values())
        for member_id, m in group.members.items():
            reply, m.join_reply = m.join_reply, None
            m.assignment = b""
            m.synced = reply is None  # a static member that did not rejoin is not expected to sync
            if reply is not None:
                m.last_heartbeat_ms = now_ms
            if reply is not None:
                reply(self._join_result(group, member_id))
        self._on_group_change(group)

    def _join_result(self, group: Group, member_id: str) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member_id == group.leader_id and group.protocol_name is not None:
            members = tuple(
                (mid, m.group_instance_id, m.metadata_for(group.protocol_name))
                for mid, m in group.members.items()
            )
        return JoinResult(
            NONE,
            group.generation_id,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            member_id,
            members,
        )

    def _remove_member(self, group: Group, member_id: str) -> None:
        m = group.members.pop(member_id, None)
        if m is None:
            return
        if m.group_instance_id is not None and group.static_members.get(m.group_instance_id) == member_id:
            del group.static_members[m.group_instance_id]
        if m.join_reply is not None:
            m.join_reply(JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id))
        if m.sync_reply is not None:
            m.sync_reply(SyncResult(UNKNOWN_MEMBER_ID))
        if group.leader_id == member_id:
            group.leader_id = next(iter(group.members), None)

    # --- SyncGroup --------------------------------------------------------------------------------

    def sync(
        self,
        now_ms: int,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        reply: SyncReply,
    ) -> None:
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return reply(SyncResult(UNKNOWN_MEMBER_ID))
        error = self._validate_member(group, member_id, instance_id)
        if error:
            return reply(SyncResult(error))
        if generation_id != group.generation_id:
            return reply(SyncResult(ILLEGAL_GENERATION))
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return reply(SyncResult(INCONSISTENT_GROUP_PROTOCOL))
        member = group.members[member_id]
        member.last_heartbeat_ms = now_ms
        if group.state == GroupState.PREPARING_REBALANCE:
            return reply(SyncResult(REBALANCE_IN_PROGRESS))
        member.synced = True
        if group.state == GroupState.STABLE:
            self._maybe_clear_sync_deadline(group)
            return reply(SyncResult(NONE, group.protocol_type, group.protocol_name, member.assignment))
        # CompletingRebalance: followers wait for the leader's assignments.
        member.sync_reply = reply
        if member_id == group.leader_id:
            for mid, m in group.members.items():
                m.assignment = assignments.get(mid, b"")
            group.transition(GroupState.STABLE)
            self._maybe_clear_sync_deadline(group)
            for m in group.members.values():
                r, m.sync_reply = m.sync_reply, None
                m.last_heartbeat_ms = now_ms
                if r is not None:
                    r(SyncResult(NONE, group.protocol_type, group.protocol_name, m.assignment))
            self._on_group_change(group)

    def _maybe_clear_sync_deadline(self, group: Group) -> None:
        """Every member must sync within the rebalance timeout, in Stable too (Kafka's pending sync)."""
        if all(m.synced for m in group.members.values()):
            group.sync_deadline_ms = None

    # --- Heartbeat, LeaveGroup --------------------------------------------------------------------

    def heartbeat(
        self, now_ms: int, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> int:
        group = self.groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID
        if group.state == GroupState.DEAD:
            return COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(group, member_id, instance_id)
        if error:
            return error
        if generation_id != group.generation_id:
            return ILLEGAL_GENERATION
        group.members[member_id].last_heartbeat_ms = now_ms
        if group.state == GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return NONE

    def leave(
        self, now_ms: int, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[int, list[int]]:
        """(group error, one error per member) for LeaveGroup; members are (member id, instance id)."""
        group = self.groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID, [UNKNOWN_MEMBER_ID] * len(members)
        if group.state == GroupState.DEAD:
            return COORDINATOR_NOT_AVAILABLE, [COORDINATOR_NOT_AVAILABLE] * len(members)
        errors = []
        removed = False
        for member_id, instance_id in members:
            if instance_id is not None and member_id == "":
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    errors.append(UNKNOWN_MEMBER_ID)
                    continue
            elif member_id in group.pending_members:
                del group.pending_members[member_id]
                errors.append(NONE)
                self._maybe_complete_join(now_ms, group)
                continue
            error = self._validate_member(group, member_id, instance_id)
            if error:
                errors.append(error)
                continue
            self._remove_member(group, member_id)
            removed = True
            errors.append(NONE)
        if removed:
            self._after_removal(now_ms, group, "members left")
        return NONE, errors

    def _after_removal(self, now_ms: int, group: Group, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            if group.members:
                self._prepare_rebalance(now_ms, group, reason)
            else:
                group.transition(GroupState.PREPARING_REBALANCE)
                self._complete_join(now_ms, group)
        elif group.state == GroupState.PREPARING_REBALANCE:
            if group.members:
                self._maybe_complete_join(now_ms, group)
            else:
                self._complete_join(now_ms, group)

    # --- time -------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Apply every timeout due at ``now_ms``: sessions, pending ids, join and sync barriers."""
        for group in list(self.groups.values()):
            for member_id, deadline in list(group.pending_members.items()):
                if deadline <= now_ms:
                    del group.pending_members[member_id]
                    self._maybe_complete_join(now_ms, group)
            if (
                group.state == GroupState.PREPARING_REBALANCE
                and group.join_deadline_ms is not None
                and group.join_deadline_ms <= now_ms
            ):
                cap = group.initial_delay_cap_ms
                if cap is not None and group.new_member_added and now_ms < cap:
                    group.new_member_added = False
                    group.join_deadline_ms = min(cap, now_ms + self.config.initial_rebalance_delay_ms)
                else:
                    self._complete_join(now_ms, group)
                continue
            if (
                group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
                and group.sync_deadline_ms is not None
                and group.sync_deadline_ms <= now_ms
            ):
                # Members that never sent SyncGroup for this generation are dropped; if the leader never
                # did, that is everyone not waiting on it.
                group.sync_deadline_ms = None
                for mid in [mid for mid, m in group.members.items() if not m.synced]:
                    self._remove_member(group, mid)
                self._after_removal(now_ms, group, "sync timed out")
                continue
            expired = [
                mid
                for mid, m in group.members.items()
                if m.join_reply is None
                and m.sync_reply is None
                and m.last_heartbeat_ms + m.session_timeout_ms <= now_ms
            ]
            for mid in expired:
                self._remove_member(group, mid)
            if expired:
                self._after_removal(now_ms, group, f"session timeout of {len(expired)} member(s)")

    # --- offsets ----------------------------------------------------------------------------------

    def validate_offset_commit(
        self, now_ms: int, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> int:
        """Who may commit: members of the current generation, or anyone while the group is Empty and
        the commit carries no generation (simple consumers and admin tools)."""
        group = self.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                self.get_or_create(group_id).empty_since_ms = now_ms
                return NONE
            return ILLEGAL_GENERATION
        if group.state == GroupState.DEAD:
            return COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.state == GroupState.EMPTY:
            return NONE
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self._validate_member(group, member_id, instance_id)
            if error:
                return error
            if generation_id != group.generation_id:
                return ILLEGAL_GENERATION
        elif group.state != GroupState.EMPTY:
            return UNKNOWN_MEMBER_ID
        if group.state == GroupState.COMPLETING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        if member_id in group.members:
            group.members[member_id].last_heartbeat_ms = now_ms
        return NONE

    def validate_txn_offset_commit(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> int:
        """TxnOffsetCommit v3+ (KIP-447): the consumer's generation fences a zombie's offsets. Without
        group metadata (old versions) only the producer epoch fences."""
        if generation_id < 0 and not member_id and instance_id is None:
            return NONE
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ILLEGAL_GENERATION if group is None else COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(group, member_id, instance_id)
        if error:
            return error
        return NONE if generation_id == group.generation_id else ILLEGAL_GENERATION

    # --- durability -------------------------------------------------------------------------------

    def export(self, group: Group) -> dict[str, Any] | None:
        """What survives a restart, as Kafka keeps it: a Stable group's generation, members and their
        assignments, or an Empty group's generation. None for the states in between."""
        if group.state not in (GroupState.STABLE, GroupState.EMPTY):
            return None
        return {
            "g": group.group_id,
            "gen": group.generation_id,
            "ptype": group.protocol_type,
            "proto": group.protocol_name,
            "leader": group.leader_id,
            "members": [
                {
                    "id": m.member_id,
                    "iid": m.group_instance_id,
                    "cid": m.client_id,
                    "host": m.client_host,
                    "st": m.session_timeout_ms,
                    "rt": m.rebalance_timeout_ms,
                    "protocols": [[name, md.hex()] for name, md in m.protocols],
                    "asg": m.assignment.hex(),
                }
                for m in group.members.values()
            ]
            if group.state == GroupState.STABLE
            else [],
        }

    def restore(self, now_ms: int, record: dict[str, Any]) -> None:
        """Load an exported group; its members' sessions start again now, as after a coordinator move."""
        group = Group(
            record["g"],
            generation_id=record["gen"],
            protocol_type=record["ptype"],
            protocol_name=record["proto"],
            leader_id=record["leader"],
        )
        for m in record["members"]:
            member = Member(
                m["id"],
                m["iid"],
                m["cid"],
                m["host"],
                m["st"],
                m["rt"],
                group.protocol_type or "",
                tuple((name, bytes.fromhex(md)) for name, md in m["protocols"]),
                now_ms,
                assignment=bytes.fromhex(m["asg"]),
                synced=True,
            )
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        if not group.members:
            group.empty_since_ms = now_ms
        self.groups[group.group_id] = group

    # --- admin ------------------------------------------------------------------------------------

    def delete(self, group_id: str) -> int:
        group = self.groups.get(group_id)
        if group is None:
            return GROUP_ID_NOT_FOUND
        if group.state != GroupState.EMPTY:
            return NON_EMPTY_GROUP
        group.transition(GroupState.DEAD)
        del self.groups[group_id]
        return NONE

    def describe(self, group_id: str) -> dict[str, Any]:
        group = self.groups.get(group_id)
        if group is None:
            return {"state": GroupState.DEAD.value, "protocol_type": "", "protocol": "", "members": []}
        stable = group.state == GroupState.STABLE
        return {
            "state": group.state.value,
            "protocol_type": group.protocol_type or "",
            "protocol": group.protocol_name or "",
            "members": [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "member_metadata": m.metadata_for(group.protocol_name) if group.protocol_name else b"",
                    "member_assignment": m.assignment if stable else b"",
                }
                for m in group.members.values()
            ],
        }
