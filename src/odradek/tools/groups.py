"""``odradek group list | describe | delete | seek`` (kafka-consumer-groups.sh).

``seek`` is kafka-consumer-groups' ``--reset-offsets``: it works only on a group with no active
members (Kafka's rule: state Empty, or Dead for a group that does not exist yet), and without
``--execute`` it prints the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import OffsetSpec

from .common import Client, ToolError, parse_brokers
from .output import Output, plural

INACTIVE = (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)
TP = tuple[str, int]


def run(args: argparse.Namespace, out: Output) -> int:
    client = Client.from_args(args)
    return {"list": list_, "describe": describe, "delete": delete, "seek": seek}[args.action](
        client, args, out
    )


def state_name(state: Any) -> str:
    """Kafka's spelling of a group state (``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead`` ...)."""
    return {
        ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
        ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    }.get(state, state.name.capitalize() if state is not None else "Unknown")


def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    admin = client.admin()
    result = client.wait(
        {"": admin.list_consumer_groups(request_timeout=client.timeout_s)}, "cannot list groups"
    )[""]
    rows = [
        {
            "group": g.group_id,
            "state": state_name(g.state),
            "type": getattr(getattr(g, "type", None), "name", "UNKNOWN").capitalize(),
        }
        for g in sorted(result.valid, key=lambda g: g.group_id)
    ]
    if out.json:
        out.document(rows)
    else:
        out.table(["GROUP", "STATE", "TYPE"], [list(r.values()) for r in rows])
    return 0


def describe_group(client: Client, group: str) -> Any:
    admin = client.admin()
    return client.wait(
        admin.describe_consumer_groups([group], request_timeout=client.timeout_s), "cannot describe group"
    )[group]


def committed(client: Client, group: str) -> dict[TP, int]:
    """Every offset the group has committed, read with OffsetFetch over the project's wire client (see
    :mod:`odradek.tools.wire` for why not confluent-kafka's list_consumer_group_offsets)."""
    from . import wire

    deadline = time.monotonic() + client.timeout_s
    conn = wire.bootstrap_connection(parse_brokers(client.brokers), client.timeout_s)
    try:
        coord = wire.coordinator(conn, group, 0, deadline)
        try:
            code, offsets = wire.committed_offsets(coord, group, deadline)
        finally:
            if coord is not conn:
                coord.close()
    finally:
        conn.close()
    if code:
        raise ToolError(f"cannot read the committed offsets of {group!r} ({wire.error_name(code)})")
    return {tp: off for tp, (off, _meta) in offsets.items()}


def offsets(client: Client, tps: list[TP] | set[TP], spec_of: Any) -> dict[TP, int]:
    """One ListOffsets answer per partition; ``spec_of(tp)`` gives its OffsetSpec."""
    if not tps:
        return {}
    futures = client.admin().list_offsets(
        {TopicPartition(t, p): spec_of((t, p)) for t, p in tps}, request_timeout=client.timeout_s
    )
    return {
        (tp.topic, tp.partition): r.offset for tp, r in client.wait(futures, "cannot list offsets of").items()
    }


def describe(client: Client, args: argparse.Namespace, out: Output) -> int:
    docs = []
    for group in args.groups:
        desc = describe_group(client, group)
        done = committed(client, group)
        owner: dict[TP, Any] = {}
        for m in desc.members:
            for tp in m.assignment.topic_partitions if m.assignment else []:
                owner[(tp.topic, tp.partition)] = m
        if desc.state == ConsumerGroupState.DEAD and not done and not desc.members:
            raise ToolError(f"consumer group {group!r} does not exist")
        tps = sorted(set(owner) | set(done))
        # Offsets committed for a topic deleted since have no log end: "-" as in Kafka's tool.
        topics = client.metadata().topics
        live = [tp for tp in tps if tp[0] in topics and tp[1] in topics[tp[0]].partitions]
        ends = offsets(client, live, lambda _tp: OffsetSpec.latest())
        rows = []
        for tp in tps:
            m = owner.get(tp)
            cur, end = done.get(tp), ends.get(tp)
            rows.append(
                {
                    "topic": tp[0],
                    "partition": tp[1],
                    "current_offset": cur,
                    "log_end_offset": end,
                    "lag": max(0, end - cur) if cur is not None and end is not None and end >= 0 else None,
                    "member_id": m.member_id if m else None,
                    "host": m.host if m else None,
                    "client_id": m.client_id if m else None,
                }
            )
        for m in desc.members:  # a member with nothing assigned still shows, as in Kafka's tool
            if not (m.assignment and m.assignment.topic_partitions):
                rows.append(
                    dict.fromkeys(["topic", "partition", "current_offset", "log_end_offset", "lag"])
                    | {"member_id": m.member_id, "host": m.host, "client_id": m.client_id}
                )
        docs.append(
            {
                "group": group,
                "state": state_name(desc.state),
                "assignor": desc.partition_assignor or None,
                "coordinator": desc.coordinator.id if desc.coordinator is not None else None,
                "members": [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "host": m.host,
                        "assignment": [
                            {"topic": tp.topic, "partition": tp.partition}
                            for tp in (m.assignment.topic_partitions if m.assignment else [])
                        ],
                    }
                    for m in desc.members
                ],
                "offsets": rows,
            }
        )
    if out.json:
        out.document(docs if len(docs) > 1 else docs[0])
        return 0
    for doc in docs:
        out.line(f"group {doc['group']}: state {doc['state']}, {plural(len(doc['members']), 'member')}")
        out.table(
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            [[doc["group"], *r.values()] for r in doc["offsets"]],
        )
    return 0


def delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    admin = client.admin()
    client.wait(
        admin.delete_consumer_groups(list(args.groups), request_timeout=client.timeout_s),
        "cannot delete group",
    )
    if out.json:
        out.document({"deleted": list(args.groups)})
    else:
        for g in args.groups:
            out.line(f"deleted group {g}")
    return 0


# --- seek: the plan is a pure function of the offsets read -------------------------------------------


@dataclass(frozen=True)
class Reset:
    """One of kafka-consumer-groups' reset strategies: ``kind`` is earliest, latest, offset, shift or
    datetime; ``value`` the offset, the shift or the time in ms since the epoch."""

    kind: str
    value: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Reset:
        if args.to_earliest:
            return cls("earliest")
        if args.to_latest:
            return cls("latest")
        if args.to_offset is not None:
            return cls("offset", args.to_offset)
        if args.shift_by is not None:
            return cls("shift", args.shift_by)
        return cls("datetime", parse_datetime(args.to_datetime))


def parse_datetime(text: str) -> int:
    """ISO 8601 (``2026-01-31T12:00:00``, ``...Z``, ``...+02:00``, fractions of a second) to epoch ms;
    without an offset the time is local, as kafka-consumer-groups reads it."""
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"--to-datetime expects ISO 8601 such as 2026-01-31T12:00:00Z, got {text!r}", 2
        ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class PlanRow:
    topic: str
    partition: int
    current_offset: int | None
    new_offset: int


def plan(
    reset: Reset,
    tps: list[TP],
    current: dict[TP, int],
    earliest: dict[TP, int],
    latest: dict[TP, int],
    at_time: dict[TP, int] | None = None,
) -> tuple[list[PlanRow], list[str]]:
    """The new offset of every partition, and a warning for each one moved back inside the log.

    As in Kafka: a target before the log start or past the log end is set to that end; a time after
    the last record gives the log end offset; shifting needs a committed offset to shift from.
    """
    rows, warnings = [], []
    for tp in sorted(tps):
        low, high = earliest[tp], latest[tp]
        if reset.kind == "earliest":
            target = low
        elif reset.kind == "latest":
            target = high
        elif reset.kind == "offset":
            target = reset.value
        elif reset.kind == "shift":
            if tp not in current:
                raise ToolError(f"cannot shift {tp[0]}:{tp[1]}: the group has no committed offset there")
            target = current[tp] + reset.value
        else:
            found = (at_time or {}).get(tp, -1)
            target = found if found >= 0 else high
        new = min(max(target, low), high)
        if new != target:
            side = "before the log start" if target < low else "past the log end"
            warnings.append(f"{tp[0]}:{tp[1]}: offset {target} is {side}; {new} is used instead")
        rows.append(PlanRow(tp[0], tp[1], current.get(tp), new))
    return rows, warnings


def parse_topic_spec(spec: str) -> tuple[str, list[int] | None]:
    """``TOPIC`` (every partition) or ``TOPIC:0,2`` (those partitions), as kafka-consumer-groups takes it."""
    topic, sep, parts = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not sep:
        return spec, None
    try:
        return topic, sorted({int(p) for p in parts.split(",")})
    except ValueError:
        raise ToolError(f"--topic expects TOPIC or TOPIC:P[,P...], got {spec!r}", 2) from None


def seek(client: Client, args: argparse.Namespace, out: Output) -> int:
    reset = Reset.from_args(args)
    group = args.group
    desc = describe_group(client, group)
    if desc.state not in INACTIVE:
        members = plural(len(desc.members), "active member")
        raise ToolError(
            f"group {group!r} has {members} (state {state_name(desc.state)}): offsets can be reset only "
            "when no member is running; stop its consumers first"
        )
    current = committed(client, group)
    if args.all_topics:
        tps = sorted(current)
        if not tps:
            raise ToolError(f"group {group!r} has no committed offsets; name the topics with --topic")
    else:
        tps = []
        for spec in args.seek_topics:
            topic, wanted = parse_topic_spec(spec)
            have = client.topic_partitions(topic)
            missing = sorted(set(wanted or []) - set(have))
            if missing:
                raise ToolError(f"topic {topic!r} has no partition {missing[0]} (it has {len(have)})")
            tps += [(topic, p) for p in (wanted if wanted is not None else have)]
    with out.progress(f"reading the offsets of {len(tps)} partitions"):
        earliest = offsets(client, tps, lambda _tp: OffsetSpec.earliest())
        latest = offsets(client, tps, lambda _tp: OffsetSpec.latest())
        at_time = (
            offsets(client, tps, lambda _tp: OffsetSpec.for_timestamp(reset.value))
            if reset.kind == "datetime"
            else None
        )
    rows, warnings = plan(reset, tps, current, earliest, latest, at_time)
    for w in warnings:
        out.note(f"warning: {w}")
    if args.execute:
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(r.topic, r.partition, r.new_offset) for r in rows]
        )
        with out.progress(f"committing {len(rows)} offsets for {group}"):
            result = client.wait(
                client.admin().alter_consumer_group_offsets([request], request_timeout=client.timeout_s),
                "cannot reset the offsets of group",
            )
        for tp in result[group].topic_partitions:
            if tp.error is not None:
                raise ToolError(f"cannot reset {tp.topic}:{tp.partition} of {group!r}: {tp.error.str()}")
    if out.json:
        out.document(
            {
                "group": group,
                "executed": bool(args.execute),
                "plan": [dataclasses.asdict(r) for r in rows],
                "warnings": warnings,
            }
        )
    else:
        out.table(
            ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
            [[group, r.topic, r.partition, r.current_offset, r.new_offset] for r in rows],
        )
    if not args.execute and not args.dry_run:
        out.note("nothing was changed: this is the plan; add --execute to apply it (--dry-run to only plan)")
    return 0
