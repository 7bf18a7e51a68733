"""``odradek consume TOPIC``: print records (kafka-console-consumer.sh), raw or one JSON object a line.

Without ``--group`` the partitions are assigned and nothing is committed. With ``--group`` the command
joins the group, and commits each record's offset once the record has been printed (at-least-once: a
record printed is never skipped by the group's next member, one printed just before a crash may be
printed again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from .common import Client, ToolError
from .output import Output, plural, show_bytes

BATCH_RECORDS_MAX = 500
POLL_S = 0.2
TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: "CreateTime", TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}
# Errors after which waiting longer cannot help.
FATAL = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.INVALID_GROUP_ID,
}


def record_json(msg: Any, encoding: str) -> dict[str, Any]:
    """One record as the JSON object ``--format json`` prints (see docs/cli.md)."""
    ts_type, ts = msg.timestamp()
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": ts if ts_type in TIMESTAMP_TYPES else None,
        "timestamp_type": TIMESTAMP_TYPES.get(ts_type),
        "key": show_bytes(msg.key(), encoding),
        "value": show_bytes(msg.value(), encoding),
        "headers": [{"key": k, "value": show_bytes(v, encoding)} for k, v in (msg.headers() or [])],
    }


def record_raw(msg: Any, print_key: bool) -> bytes:
    """The value (``null`` for a null value, as Kafka's console consumer prints it), KEY<TAB> first."""
    value = msg.value()
    line = b"null" if value is None else value
    if print_key:
        key = msg.key()
        line = (b"null" if key is None else key) + b"\t" + line
    return line + b"\n"


def start_offset(args: argparse.Namespace) -> int:
    if args.from_beginning:
        return OFFSET_BEGINNING
    if args.offset is None or args.offset == "latest":
        return OFFSET_END
    if args.offset == "earliest":
        return OFFSET_BEGINNING
    if not args.offset.isdigit():
        raise ToolError(f"--offset expects a whole number, earliest or latest, got {args.offset!r}", 2)
    return int(args.offset)


def check_usage(args: argparse.Namespace) -> None:
    """The combinations Kafka's console consumer refuses, refused the same way."""
    if args.offset is not None and args.partition is None:
        raise ToolError("--offset needs --partition", 2)
    if args.offset is not None and args.from_beginning:
        raise ToolError("--offset and --from-beginning contradict each other", 2)
    if args.group and (args.partition is not None or args.offset is not None):
        raise ToolError("--group cannot go with --partition or --offset (the group assigns partitions)", 2)
    if args.count is not None and args.count < 1:
        raise ToolError("--count must be positive", 2)
    if args.timeout_ms is not None and args.timeout_ms < 0:
        raise ToolError("--timeout-ms cannot be negative", 2)


def commit(consumer: Any) -> None:
    """Commit the offsets stored for printed records; none left to commit (auto-commit was first) is fine."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as e:
        if e.args[0].code() != KafkaError._NO_OFFSET:
            raise ToolError(f"cannot commit the group's offsets: {e.args[0].str()}") from None


def run(args: argparse.Namespace, out: Output) -> int:
    check_usage(args)
    client = Client.from_args(args)
    start = start_offset(args)
    partitions = client.topic_partitions(args.topic)
    if args.partition is not None and args.partition not in partitions:
        raise ToolError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})")
    settings: dict[str, Any] = {"isolation.level": args.isolation_level, "fetch.wait.max.ms": 100}
    if args.group:
        settings.update(
            {
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            }
        )
    consumer = client.consumer(args.group, **settings)
    if args.group:
        consumer.subscribe([args.topic])
    else:
        chosen = [args.partition] if args.partition is not None else partitions
        consumer.assign([TopicPartition(args.topic, p, start) for p in chosen])
    stdout = sys.stdout.buffer
    count = 0
    shared_terminal = sys.stdout.isatty()
    progress = out.spinner(f"waiting for records on {args.topic}")
    idle_s = args.timeout_ms / 1000 if args.timeout_ms is not None else None
    last = time.monotonic()
    try:
        while args.count is None or count < args.count:
            want = BATCH_RECORDS_MAX if args.count is None else min(BATCH_RECORDS_MAX, args.count - count)
            batch = consumer.consume(want, POLL_S)
            now = time.monotonic()
            if not batch:
                if idle_s is not None and now - last >= idle_s:
                    break
                continue
            last = now
            if shared_terminal:
                progress.stop()  # records and a spinner on one terminal would garble each other
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() in FATAL or err.fatal():
                        raise ToolError(f"{args.topic}: {err.str()} ({err.name()})")
                    continue
                if args.format == "json":
                    stdout.write(
                        json.dumps(record_json(msg, args.encoding), ensure_ascii=False).encode() + b"\n"
                    )
                else:
                    stdout.write(record_raw(msg, args.print_key))
                count += 1
                if args.group:
                    consumer.store_offsets(msg)
            stdout.flush()
            progress.update(f"{count} records from {args.topic}; waiting for more")
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a consume as Kafka's console consumer ends: normally, after committing
    finally:
        progress.stop()
        try:
            if args.group and count:
                commit(consumer)
        finally:
            consumer.close()
    out.note(f"consumed {plural(count, 'record')}")
    return 0
