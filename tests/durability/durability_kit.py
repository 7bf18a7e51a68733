"""Helpers shared by the durability tests: self-checking message values, topic creation, reading a
partition back by assignment, ListOffsets, the on-disk segment layout and the broker log after a restart.

Values are ``b"<seq:010d>|<crc32 of payload:08x>|<payload>"`` where the payload is a deterministic
function of the sequence number, so a value read back can be checked on its own (checksum) and against
what was sent (exact bytes for that sequence number).
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# --------------------------------------------------------------------------------------------------
# Values


def payload(seq: int, size: int = 64) -> bytes:
    seed = hashlib.sha256(seq.to_bytes(8, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def make_value(seq: int, size: int = 64) -> bytes:
    body = payload(seq, size)
    return b"%010d|%08x|" % (seq, zlib.crc32(body)) + body


def check_value(value: bytes | None, size: int = 64) -> int:
    """The sequence number of an intact value; AssertionError when it is damaged in any way."""
    assert value is not None, "a record with a null value"
    head, sep, rest = value.partition(b"|")
    crc, sep2, body = rest.partition(b"|")
    assert sep and sep2 and head.isdigit(), f"malformed value {value[:40]!r}"
    assert int(crc, 16) == zlib.crc32(body), f"checksum mismatch in value {value[:40]!r}"
    seq = int(head)
    assert value == make_value(seq, size), f"value for seq {seq} differs from what was sent"
    return seq


# --------------------------------------------------------------------------------------------------
# Client helpers


def create_topic(bootstrap: str, name: str, partitions: int, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})], operation_timeout=10)
    for f in futures.values():
        f.result(15)


def consumer(bootstrap: str, **extra: object) -> Consumer:
    conf: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": "durability-reader",  # librdkafka wants one; assign() never joins the group
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 50,
    }
    conf.update(extra)
    return Consumer(conf)


def offsets(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """(log start offset, log end offset) through ListOffsets (earliest, latest)."""
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def read_partition(
    bootstrap: str, topic: str, partition: int, start: int = 0, timeout: float = 30.0
) -> list[tuple[int, bytes]]:
    """Every (offset, value) from ``start`` to the log end offset seen when the read began."""
    c = consumer(bootstrap)
    try:
        _, end = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        out: list[tuple[int, bytes]] = []
        if end <= start:
            return out
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in c.consume(5000, 0.05):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error on {topic}-{partition}: {err}")
                out.append((msg.offset(), msg.value()))
            if out and out[-1][0] >= end - 1:
                return out
        raise AssertionError(
            f"read of {topic}-{partition} stalled: got {len(out)} records, last offset "
            f"{out[-1][0] if out else None}, log end offset {end}"
        )
    finally:
        c.close()


def acks_all_producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 50,
            "max.in.flight.requests.per.connection": 1,
        }
    )


def produce_acked(
    bootstrap: str,
    topic: str,
    partition: int,
    values: list[bytes],
    timeout: float = 30.0,
    producer: Producer | None = None,
) -> list[int]:
    """Produce with acks=all; return the offsets, in order; fail on any delivery error."""
    p = producer or acks_all_producer(bootstrap)
    got: dict[int, int] = {}
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            got[seq_of(msg.value())] = msg.offset()

    order = []
    for v in values:
        order.append(seq_of(v))
        p.produce(topic, value=v, partition=partition, on_delivery=on_delivery)
    left = p.flush(timeout)
    assert left == 0 and not errors, f"produce failed: {left} undelivered, errors {errors[:3]}"
    return [got[k] for k in order]


def seq_of(value: bytes) -> int:
    return int(value.partition(b"|")[0])


# --------------------------------------------------------------------------------------------------
# On-disk layout (parsed here, independently of the broker's code)

_BATCH_HEAD = struct.Struct(">qi")  # baseOffset, batchLength
LOG_OVERHEAD = 12
BATCH_HEADER_SIZE = 61


@dataclass(frozen=True)
class Batch:
    segment: Path
    position: int
    base_offset: int
    last_offset: int
    size: int


def segment_files(partition_dir: Path) -> list[Path]:
    return sorted(partition_dir.glob("*.log"))


def batches_of(segment: Path) -> list[Batch]:
    data = segment.read_bytes()
    out: list[Batch] = []
    pos = 0
    while pos + BATCH_HEADER_SIZE <= len(data):
        base, length = _BATCH_HEAD.unpack_from(data, pos)
        size = length + LOG_OVERHEAD
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append(Batch(segment, pos, base, base + delta, size))
        pos += size
    assert pos == len(data), f"{segment}: {len(data) - pos} trailing bytes in an undamaged segment"
    return out


def layout(partition_dir: Path) -> list[list[Batch]]:
    return [batches_of(s) for s in segment_files(partition_dir)]


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        old = f.read(1)
        f.seek(position)
        f.write(bytes([old[0] ^ 0xFF]))


# --------------------------------------------------------------------------------------------------
# The broker's log


def log_since_last_start(log_path: Path) -> str:
    text = log_path.read_text(errors="replace")
    marker = "===== odradek tests: starting"
    return text[text.rfind(marker) :] if marker in text else text
