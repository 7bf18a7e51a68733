"""The verifier's workload: sequence-numbered, checksummed, keyed records, and reading a topic back into
the history the checker judges.

A record's value is ``<seq>:<crc>:<padding>``: the sequence id (10 digits), the CRC32C of
``<seq>:<padding>`` (8 hex digits) and padding up to the value size. Its key is ``k<seq % keys>``, so each
key's records are sent in sequence order, and it carries a ``message-id`` header ``seq-<seq>``. A value
whose checksum does not match is corrupt, and counted as such, never taken for another record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import crc32c

from .checker import Ack, Delivery, Sent

MESSAGE_ID_HEADER = "message-id"
_SEQ_DIGITS = 10


class CorruptRecord(ValueError):
    """A value that is not a workload record, or whose checksum does not match."""


def make_value(seq: int, size: int = 100) -> bytes:
    head = f"{seq:0{_SEQ_DIGITS}d}"
    pad_len = max(0, size - len(head) - 10)
    pad = (b"x" * pad_len) if pad_len else b""
    crc = crc32c.crc32c(head.encode() + b":" + pad)
    return f"{head}:{crc:08x}:".encode() + pad


def parse_value(value: bytes | None) -> int:
    """The sequence id of a workload value (raises :class:`CorruptRecord`)."""
    if value is None or len(value) < _SEQ_DIGITS + 10:
        raise CorruptRecord(f"not a workload record: {value[:40] if value else value!r}")
    head, crc_hex, pad = (
        value[:_SEQ_DIGITS],
        value[_SEQ_DIGITS + 1 : _SEQ_DIGITS + 9],
        value[_SEQ_DIGITS + 10 :],
    )
    if value[_SEQ_DIGITS : _SEQ_DIGITS + 1] != b":" or value[_SEQ_DIGITS + 9 : _SEQ_DIGITS + 10] != b":":
        raise CorruptRecord(f"not a workload record: {value[:40]!r}")
    try:
        seq, crc = int(head), int(crc_hex, 16)
    except ValueError as e:
        raise CorruptRecord(f"not a workload record: {value[:40]!r}") from e
    if crc32c.crc32c(head + b":" + pad) != crc:
        raise CorruptRecord(f"checksum mismatch in record {seq}")
    return seq


def key_of(seq: int, keys: int) -> bytes:
    return b"k%d" % (seq % keys)


@dataclass
class Produced:
    sent: list[Sent]
    acks: list[Ack]
    failed: int
    seconds: float


def produce(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    keys: int = 16,
    value_bytes: int = 100,
    acks: str = "all",
    first_seq: int = 0,
    config: dict | None = None,
    rate: float | None = None,
    stop: threading.Event | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> Produced:
    """Send ``count`` workload records and wait for every answer; what each answer said is recorded.

    ``rate``: at most this many records per second (paced from the start, so a stall is caught up);
    ``stop``: set it to send no more (the records not sent are left out of ``sent``); ``on_sent(n)``
    is called now and then with the number sent so far."""
    from confluent_kafka import Producer

    cfg = {"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5, "log_level": 0}
    if acks in ("all", "-1"):
        cfg["enable.idempotence"] = True
    cfg.update(config or {})
    p = Producer(cfg)
    acked: dict[int, Ack] = {}
    failed = 0

    def on_delivery(err, msg) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            return
        seq = parse_value(msg.value())
        acked[seq] = Ack(seq, msg.partition(), msg.offset())

    # Connected before the first send: a record's timestamp is taken when it is handed to the client,
    # so without this the first ones would carry the client's start-up in their latency.
    p.list_topics(topic, timeout=30)
    started = time.monotonic()
    seqs = range(first_seq, first_seq + count)
    for i, seq in enumerate(seqs):
        if rate:
            ahead = started + i / rate - time.monotonic()
            if ahead > 0.002:
                p.poll(ahead)
        if stop is not None and stop.is_set():
            seqs = range(first_seq, seq)
            break
        if on_sent is not None and i % 100 == 0:
            on_sent(i)
        kw = {
            "key": key_of(seq, keys),
            "value": make_value(seq, value_bytes),
            "headers": [(MESSAGE_ID_HEADER, b"seq-%d" % seq)],
            "on_delivery": on_delivery,
        }
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(120)
    if on_sent is not None:
        on_sent(len(seqs))
    # acks=0: the client reports every record as delivered, at offset -1; nothing was acknowledged.
    got_acks = acks not in ("0",)
    sent = [Sent(seq, key_of(seq, keys), acked=got_acks and seq in acked) for seq in seqs]
    return Produced(sent, list(acked.values()) if got_acks else [], failed + left, time.monotonic() - started)


@dataclass
class ReadBack:
    deliveries: list[Delivery]
    log: dict[tuple[int, int], int]  # (partition, offset) -> seq
    corrupt: int
    times_ms: list[int] = field(default_factory=list)  # each delivery's record timestamp


def read(
    bootstrap: str,
    topic: str,
    *,
    isolation: str = "read_committed",
    timeout_s: float = 60.0,
    aborted: Iterable[int] = (),
    aborted_txns: Iterable[bytes] = (),
) -> ReadBack:
    """Every record of ``topic`` from the start to its end offsets (taken when the read begins), in the
    order returned; ``aborted`` names inputs known to be in aborted transactions, ``aborted_txns`` the
    transactions (by the value of a record's ``txn`` header) known to have been aborted."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"odradek-verify-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "log_level": 0,
        }
    )
    try:
        md = c.list_topics(topic, timeout=30).topics[topic]
        parts = sorted(md.partitions)
        ends = {}
        for p in parts:
            _lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
            ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        bad = set(aborted)
        bad_txns = set(aborted_txns)
        times: list[int] = []
        deliveries: list[Delivery] = []
        log: dict[tuple[int, int], int] = {}
        corrupt = 0
        done = {p for p in parts if ends[p] <= 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic}: not at the end of every partition after {timeout_s:.0f}s"
                )
            for m in c.consume(1000, 0.2):
                if m.error() is not None:
                    continue
                try:
                    seq = parse_value(m.value())
                except CorruptRecord:
                    corrupt += 1
                else:
                    in_aborted = seq in bad
                    if bad_txns and not in_aborted:
                        in_aborted = any(k == "txn" and v in bad_txns for k, v in m.headers() or ())
                    deliveries.append(Delivery(seq, aborted=in_aborted))
                    times.append(m.timestamp()[1])
                    log[(m.partition(), m.offset())] = seq
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
            for p in parts:  # a read_committed reader may stop short of the end (markers, aborts)
                if p not in done and c.position([TopicPartition(topic, p)])[0].offset >= ends[p]:
                    done.add(p)
        return ReadBack(deliveries, log, corrupt, times)
    finally:
        c.close()
