"""``odradek topic create | list | describe | alter | delete`` (kafka-topics.sh and kafka-configs.sh)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from confluent_kafka import TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from .common import Client, ToolError, parse_assignments
from .output import Output

# Kafka's internal topics, left out by --exclude-internal (as kafka-topics.sh does).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})


def run(args: argparse.Namespace, out: Output) -> int:
    client = Client.from_args(args)
    return {
        "create": create,
        "list": list_,
        "describe": describe,
        "alter": alter,
        "delete": delete,
    }[args.action](client, args, out)


def create(client: Client, args: argparse.Namespace, out: Output) -> int:
    configs = parse_assignments(args.config, "--config")
    admin = client.admin()
    new = [
        NewTopic(
            name, num_partitions=args.partitions, replication_factor=args.replication_factor, config=configs
        )
        for name in args.topics
    ]
    futures = admin.create_topics(new, request_timeout=client.timeout_s, operation_timeout=client.timeout_s)
    created, existed = [], []
    for name, fut in futures.items():
        try:
            client.wait({name: fut}, "cannot create topic")
            created.append(name)
        except ToolError as e:
            if args.if_not_exists and "TOPIC_ALREADY_EXISTS" in str(e):
                existed.append(name)
                continue
            raise
    if created:
        with out.progress(f"waiting for the leaders of {', '.join(created)}"):
            wait_for_leaders(client, created)
    if out.json:
        out.document({"created": created, "existed": existed})
    else:
        for name in created:
            out.line(f"created topic {name}")
        for name in existed:
            out.line(f"topic {name} exists already")
    return 0


def wait_for_leaders(client: Client, topics: list[str]) -> None:
    """Return once every partition of ``topics`` has a leader in the metadata, so that "created" means
    usable: a cluster answers CreateTopics before its brokers all know the new topic."""
    deadline = time.monotonic() + client.timeout_s
    while True:
        md = client.metadata().topics
        waiting = [
            t
            for t in topics
            if t not in md
            or md[t].error is not None
            or not md[t].partitions
            or any(p.leader < 0 for p in md[t].partitions.values())
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise ToolError(
                f"created {waiting[0]!r}, but its partitions have no leader after {client.timeout_s:g} s"
            )
        time.sleep(0.1)


def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    md = client.metadata()
    rows = []
    for name in sorted(md.topics):
        t = md.topics[name]
        if args.exclude_internal and name in INTERNAL_TOPICS:
            continue
        if t.error is not None:
            continue
        first = t.partitions.get(0)
        rf = len(first.replicas) if first is not None else 0
        rows.append({"topic": name, "partitions": len(t.partitions), "replication_factor": rf})
    if out.json:
        out.document(rows)
    else:
        out.table(["TOPIC", "PARTITIONS", "REPLICAS"], [list(r.values()) for r in rows])
    return 0


def describe(client: Client, args: argparse.Namespace, out: Output) -> int:
    admin = client.admin()
    descs = client.wait(
        admin.describe_topics(TopicCollection(list(args.topics)), request_timeout=client.timeout_s),
        "cannot describe topic",
    )
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in args.topics]
    configs = client.wait(admin.describe_configs(resources, request_timeout=client.timeout_s), "configs of")
    specs: dict[TopicPartition, Any] = {}
    for d in descs.values():
        for p in d.partitions:
            specs[TopicPartition(d.name, p.id)] = None
    starts = _offsets(client, specs, OffsetSpec.earliest())
    ends = _offsets(client, specs, OffsetSpec.latest())
    docs = []
    for name in args.topics:
        d = descs[name]
        entries = next(v for k, v in configs.items() if k.name == name)
        shown = {
            k: e.value
            for k, e in sorted(entries.items())
            if args.all_configs or e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        }
        docs.append(
            {
                "topic": d.name,
                "topic_id": str(d.topic_id) if d.topic_id is not None else None,
                "internal": bool(d.is_internal),
                "partitions": [
                    {
                        "partition": p.id,
                        "leader": p.leader.id if p.leader is not None else -1,
                        "replicas": [r.id for r in p.replicas],
                        "isr": [r.id for r in p.isr],
                        "log_start_offset": starts.get((d.name, p.id)),
                        "log_end_offset": ends.get((d.name, p.id)),
                    }
                    for p in sorted(d.partitions, key=lambda p: p.id)
                ],
                "configs": shown,
            }
        )
    if out.json:
        out.document(docs if len(docs) > 1 else docs[0])
        return 0
    for doc in docs:
        rf = len(doc["partitions"][0]["replicas"]) if doc["partitions"] else 0
        out.line(
            f"Topic: {doc['topic']}  TopicId: {doc['topic_id']}  PartitionCount: {len(doc['partitions'])}  "
            f"ReplicationFactor: {rf}"
        )
        out.table(
            ["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START-OFFSET", "LOG-END-OFFSET"],
            [
                [
                    p["partition"],
                    p["leader"],
                    ",".join(map(str, p["replicas"])),
                    ",".join(map(str, p["isr"])),
                    p["log_start_offset"],
                    p["log_end_offset"],
                ]
                for p in doc["partitions"]
            ],
        )
        if doc["configs"]:
            out.table(["CONFIG", "VALUE"], [[k, v] for k, v in doc["configs"].items()])
        else:
            out.line("Configs: (none set on the topic; --all-configs lists the defaults too)")
    return 0


def _offsets(client: Client, tps: dict[TopicPartition, Any], spec: Any) -> dict[tuple[str, int], int]:
    if not tps:
        return {}
    futures = client.admin().list_offsets({tp: spec for tp in tps}, request_timeout=client.timeout_s)
    return {(tp.topic, tp.partition): r.offset for tp, r in client.wait(futures, "offsets of").items()}


def alter(client: Client, args: argparse.Namespace, out: Output) -> int:
    sets = parse_assignments(args.config, "--config")
    if not sets and not args.delete_config and args.partitions is None:
        raise ToolError("nothing to alter: give --config KEY=VALUE, --delete-config KEY or --partitions N", 2)
    admin = client.admin()
    client.topic_partitions(args.topic)  # an unknown topic is named as such, before anything changes
    done: dict[str, Any] = {"topic": args.topic}
    if sets or args.delete_config:
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sets.items()]
        entries += [
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in args.delete_config
        ]
        resource = ConfigResource(ResourceType.TOPIC, args.topic, incremental_configs=entries)
        client.wait(
            admin.incremental_alter_configs([resource], request_timeout=client.timeout_s),
            "cannot alter the configs of",
        )
        done["set"] = sets
        done["deleted"] = list(args.delete_config)
    if args.partitions is not None:
        futures = admin.create_partitions(
            [NewPartitions(args.topic, args.partitions)],
            request_timeout=client.timeout_s,
            operation_timeout=client.timeout_s,
        )
        client.wait(futures, "cannot add partitions to")
        done["partitions"] = args.partitions
    if out.json:
        out.document(done)
    else:
        for k, v in sets.items():
            out.line(f"{args.topic}: set {k}={v}")
        for k in args.delete_config:
            out.line(f"{args.topic}: deleted {k} (back to its default)")
        if args.partitions is not None:
            out.line(f"{args.topic}: now {args.partitions} partitions")
    return 0


def delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    admin = client.admin()
    futures = admin.delete_topics(
        list(args.topics), request_timeout=client.timeout_s, operation_timeout=client.timeout_s
    )
    client.wait(futures, "cannot delete topic")
    if out.json:
        out.document({"deleted": list(args.topics)})
    else:
        for name in args.topics:
            out.line(f"deleted topic {name}")
    return 0
