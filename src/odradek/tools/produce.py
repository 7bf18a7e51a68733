"""``odradek produce TOPIC``: lines from stdin or a file become records (kafka-console-producer.sh).

A line is split into key and value with the reader properties of Kafka's console producer
(``parse.key``, ``key.separator``, ``ignore.error``, ``null.marker``); the command waits until every
record is acknowledged (or failed) and reports how many were delivered.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import IO, Any

from confluent_kafka import KafkaException

from .common import Client, ToolError, parse_assignments
from .output import Output, plural

# One line is one record; a longer one is refused rather than read into memory without end.
LINE_BYTES_MAX = 16 * 1024 * 1024
# Records queued in the client before produce() waits for acknowledgements (librdkafka's own bound).
QUEUE_RECORDS_MAX = 100_000
READER_PROPERTIES = ("parse.key", "key.separator", "ignore.error", "null.marker")


class LineError(ValueError):
    pass


@dataclass(frozen=True)
class LineReader:
    """Kafka's console-producer line format: with ``parse_key`` a line is KEY, the first ``key_separator``,
    VALUE; a line without the separator is an error unless ``ignore_error`` (then it is all value, with a
    null key). A key or value equal to ``null_marker`` is sent as null."""

    parse_key: bool = False
    key_separator: bytes = b"\t"
    ignore_error: bool = False
    null_marker: bytes | None = None

    @classmethod
    def from_options(cls, key_separator: str | None, properties: list[str]) -> LineReader:
        props = parse_assignments(properties, "--property")
        unknown = sorted(set(props) - set(READER_PROPERTIES))
        if unknown:
            raise ToolError(f"unknown --property {unknown[0]}; known: {', '.join(READER_PROPERTIES)}", 2)
        sep = key_separator if key_separator is not None else props.get("key.separator", "\t")
        if not sep:
            raise ToolError("the key separator cannot be empty", 2)
        parse_key = key_separator is not None or props.get("parse.key", "false").lower() == "true"
        marker = props.get("null.marker")
        if marker is not None and parse_key and marker == sep:
            raise ToolError("null.marker and key.separator must differ", 2)
        return cls(
            parse_key=parse_key,
            key_separator=sep.encode(),
            ignore_error=props.get("ignore.error", "false").lower() == "true",
            null_marker=marker.encode() if marker is not None else None,
        )

    def parse(self, line: bytes, number: int) -> tuple[bytes | None, bytes | None]:
        key: bytes | None = None
        value: bytes | None = line
        if self.parse_key:
            at = line.find(self.key_separator)
            if at >= 0:
                key, value = line[:at], line[at + len(self.key_separator) :]
            elif not self.ignore_error:
                raise LineError(f"no key separator {self.key_separator.decode()!r} on line {number}")
        if self.null_marker is not None:
            key = None if key == self.null_marker else key
            value = None if value == self.null_marker else value
        return key, value


def read_lines(stream: IO[bytes]):
    """(number, line without its end of line) for each line: \\n, \\r\\n and a last line without one."""
    number = 0
    while True:
        raw = stream.readline(LINE_BYTES_MAX + 1)
        if not raw:
            return
        number += 1
        if len(raw) > LINE_BYTES_MAX:
            raise ToolError(f"line {number} is longer than {LINE_BYTES_MAX} bytes")
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        yield number, raw


class Deliveries:
    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        self.offsets: dict[int, list[int]] = {}  # partition -> [first, last]

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or f"{err.str()} ({err.name()})"
            return
        self.delivered += 1
        offset = msg.offset()
        if offset is None or offset < 0:  # acks=0: no offset comes back
            return
        span = self.offsets.setdefault(msg.partition(), [offset, offset])
        span[0], span[1] = min(span[0], offset), max(span[1], offset)


def run(args: argparse.Namespace, out: Output) -> int:
    from confluent_kafka import Producer

    client = Client.from_args(args)
    reader = LineReader.from_options(args.key_separator, args.property)
    headers = list(parse_assignments(args.header, "--header").items())
    partitions = client.topic_partitions(args.topic)
    if args.partition is not None and args.partition not in partitions:
        raise ToolError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})")
    timeout_ms = int(client.timeout_s * 1000)
    producer = Producer(
        client.config(
            **{
                "acks": "all" if args.acks == "-1" else args.acks,
                "linger.ms": 5,
                "queue.buffering.max.messages": QUEUE_RECORDS_MAX,
                "request.timeout.ms": timeout_ms,
                "message.timeout.ms": 3 * timeout_ms,
            }
        )
    )
    done = Deliveries()
    sent = 0
    try:
        stream = open(args.file, "rb") if args.file else sys.stdin.buffer
    except OSError as e:
        raise ToolError(f"cannot read {args.file}: {e.strerror}", 2) from None
    if not args.file and sys.stdin.isatty():
        out.note(f"type records for {args.topic}, one a line; end with Ctrl-D")
    stopped: str | None = None
    try:
        for number, line in read_lines(stream):
            try:
                key, value = reader.parse(line, number)
            except LineError as e:
                stopped = str(e)
                break
            kw: dict[str, Any] = {"key": key, "headers": headers or None, "on_delivery": done}
            if args.partition is not None:
                kw["partition"] = args.partition
            while True:
                try:
                    producer.produce(args.topic, value, **kw)
                    break
                except BufferError:
                    producer.poll(0.1)  # the client's queue is full: wait for acknowledgements
                except KafkaException as e:
                    raise ToolError(f"line {number}: {e.args[0].str()}") from None
            sent += 1
            if not sent % 1000:
                producer.poll(0)  # serve delivery callbacks now and then, not on every line
    finally:
        if args.file:
            stream.close()
        with out.progress(f"waiting for the delivery of {sent} records") as progress:
            left = producer.flush(0.2)
            while left:
                progress.update(f"waiting for the delivery of {left} of {sent} records")
                left = producer.flush(0.5)
    report = {
        "topic": args.topic,
        "sent": sent,
        "delivered": done.delivered,
        "failed": done.failed,
        "partitions": {
            str(p): {"first_offset": a, "last_offset": b} for p, (a, b) in sorted(done.offsets.items())
        },
    }
    if args.acks == "0":
        report["note"] = "acks=0: the broker never confirms, so 'delivered' means sent"
    if out.json:
        out.document(report)
    else:
        spans = ", ".join(f"partition {p}: offsets {a}..{b}" for p, (a, b) in sorted(done.offsets.items()))
        out.line(
            f"delivered {done.delivered} of {plural(sent, 'record')} to {args.topic}"
            + (f" ({spans})" if spans else "")
        )
    if done.failed:
        raise ToolError(f"{done.failed} of {sent} records were not delivered: {done.first_error}")
    if stopped:
        raise ToolError(f"stopped: {stopped} (the lines before it were sent)")
    return 0
