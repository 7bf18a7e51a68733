"""Crash durability: nothing acknowledged with acks=all is lost to SIGKILL.

The broker answers acks=all only after fsync, so after a SIGKILL in the middle of a produce stream and a
restart on the same data directory, each partition must hold exactly what it held before plus a prefix of
what was sent to it since (in send order, intact, no gaps, no duplicates), and that prefix must cover
every message whose delivery report said "delivered", at the very offset the report named.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Producer
from durability_kit import (
    check_value,
    create_topic,
    log_since_last_start,
    make_value,
    offsets,
    produce_acked,
    read_partition,
)


@dataclass
class Outcome:
    """What the producer saw: seqs sent per partition (in send order), acked seq -> offset, failures."""

    sent: dict[int, list[int]]
    acked: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (partition, offset)
    failed: dict[int, str] = field(default_factory=dict)  # seq -> error name
    acked_at_kill: int = -1
    seconds: float = 0.0

    def describe(self) -> str:
        kinds = Counter(self.failed.values()).most_common(4)
        return (
            f"{len(self.acked)} acked ({self.acked_at_kill} when killed), {len(self.failed)} failed "
            f"{kinds}, in {self.seconds:.1f}s"
        )


def produce_until_killed(
    broker,
    topic: str,
    seqs: range,
    partitions: int,
    kill_at_acks: int,
    window: int = 3000,
    deadline_s: float = 40.0,
) -> Outcome:
    """Produce ``seqs`` (seq i to partition i % partitions) with acks=all and SIGKILL the broker as soon
    as ``kill_at_acks`` deliveries have been reported; wait until every message has a delivery report.

    Until the kill, at most ``window`` messages are outstanding (sent, no report yet): the broker is fast
    enough to ack a whole burst before the first report is polled, and the kill must land while sending
    goes on. After it, the rest is sent at once and fails together after message.timeout.ms."""
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 2,
            "message.timeout.ms": 3000,
            "request.timeout.ms": 2500,
            "socket.timeout.ms": 2500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 50,
            "queue.buffering.max.messages": 200000,
            "log_level": 2,  # no "connection refused" noise while the broker is down
        }
    )
    out = Outcome(sent={p: [] for p in range(partitions)})
    killed = False

    def on_delivery(err, msg) -> None:
        seq = int(msg.value()[:10])
        if err is None:
            out.acked[seq] = (msg.partition(), msg.offset())
        else:
            out.failed[seq] = err.name()

    def maybe_kill() -> None:
        nonlocal killed
        if not killed and len(out.acked) >= kill_at_acks:
            broker.kill()
            killed = True
            out.acked_at_kill = len(out.acked)

    t0 = time.monotonic()
    for i, seq in enumerate(seqs):
        p = seq % partitions
        while not killed and i - len(out.acked) - len(out.failed) >= window:
            producer.poll(0.002)
            maybe_kill()
        while True:
            try:
                producer.produce(topic, value=make_value(seq), partition=p, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
                maybe_kill()
        out.sent[p].append(seq)
        producer.poll(0)
        maybe_kill()
    while len(producer) > 0:
        out.seconds = time.monotonic() - t0
        assert out.seconds < deadline_s, f"producer did not finish: {out.describe()}"
        producer.poll(0.01)
        maybe_kill()
    out.seconds = time.monotonic() - t0
    assert killed, f"the broker was never killed: {out.describe()}"
    assert len(out.acked) + len(out.failed) == len(seqs), f"missing delivery reports: {out.describe()}"
    assert out.failed, f"the kill did not land mid-produce (nothing failed): {out.describe()}"
    return out


def verify_partition(
    bootstrap: str,
    topic: str,
    partition: int,
    before: list[int],
    sent: list[int],
    acked: dict[int, tuple[int, int]],
) -> list[int]:
    """The partition is ``before`` + a prefix of ``sent`` covering every acked seq; returns its seqs."""
    records = read_partition(bootstrap, topic, partition)
    offs = [o for o, _ in records]
    assert offs == list(range(len(records))), f"partition {partition}: offsets not contiguous from 0"
    start, end = offsets(bootstrap, topic, partition)
    assert (start, end) == (0, len(records)), f"partition {partition}: ListOffsets says [{start}, {end})"
    seqs = [check_value(v) for _, v in records]  # intact: checksum and exact bytes
    assert seqs[: len(before)] == before, f"partition {partition}: data from before this crash changed"
    kept = seqs[len(before) :]
    if kept != sent[: len(kept)]:
        n = min(len(kept), len(sent))
        i = next((i for i in range(n) if kept[i] != sent[i]), n)
        pytest.fail(
            f"partition {partition}: after the crash the log is not a prefix of what was sent: at index "
            f"{i} it holds {kept[i : i + 3]}, the producer sent {sent[i : i + 3]} "
            f"({len(kept)} kept, {len(sent)} sent)"
        )
    for seq in sent:
        if seq in acked:
            p, offset = acked[seq]
            assert p == partition
            assert offset < len(seqs), (
                f"partition {partition}: acknowledged seq {seq} at offset {offset} was lost "
                f"(log end offset after restart is {len(seqs)})"
            )
            assert seqs[offset] == seq, (
                f"partition {partition}: offset {offset} holds seq {seqs[offset]}, the ack said {seq}"
            )
    return seqs


def produce_after_restart(
    bootstrap: str,
    topic: str,
    partitions: int,
    logs: dict[int, list[int]],
    first_seq: int,
    per_partition: int,
) -> int:
    """acks=all produce after recovery; offsets must continue at each partition's recovered end."""
    seq = first_seq
    for p in range(partitions):
        new = list(range(seq, seq + per_partition))
        seq += per_partition
        got = produce_acked(bootstrap, topic, p, [make_value(s) for s in new])
        leo = len(logs[p])
        assert got == list(range(leo, leo + per_partition)), (
            f"partition {p}: offsets after restart start at {got[0]}, the recovered log ends at {leo}"
        )
        logs[p] = logs[p] + new
        records = read_partition(bootstrap, topic, p)
        assert [check_value(v) for _, v in records] == logs[p]
    return seq


@pytest.mark.slow
def test_sigkill_mid_produce_loses_nothing_acknowledged(odradek_factory, unique):
    n, partitions = 100_000, 3
    broker = odradek_factory({"log.segment.bytes": str(1 << 20)})
    topic = unique("crash")
    create_topic(broker.bootstrap, topic, partitions)
    t0 = time.monotonic()

    out = produce_until_killed(broker, topic, range(n), partitions, kill_at_acks=int(n * 0.4))
    print(f"before the kill: {out.describe()}")
    assert 0.4 * n <= len(out.acked) < n

    broker.restart(hard=True)
    log = log_since_last_start(broker.log_path)
    for p in range(partitions):
        assert f"partition {topic}-{p}: unclean shutdown" in log, f"no recovery logged for {topic}-{p}"

    logs = {
        p: verify_partition(broker.bootstrap, topic, p, [], out.sent[p], out.acked) for p in range(partitions)
    }
    total = sum(len(s) for s in logs.values())
    print(f"after restart: {total} messages on disk, {total - len(out.acked)} of them unacknowledged")

    produce_after_restart(broker.bootstrap, topic, partitions, logs, first_seq=n, per_partition=500)
    assert time.monotonic() - t0 < 60, "the crash test is meant to stay under a minute"


def test_repeated_sigkill_cycles(odradek_factory, unique):
    """Three produce / SIGKILL / restart cycles on one data dir, killing at different points, with small
    segments so kills land around segment rolls and recovery starts from a recovery point."""
    partitions, per_cycle = 3, 15_000
    broker = odradek_factory({"log.segment.bytes": str(64 * 1024), "log.index.interval.bytes": "1024"})
    topic = unique("cycles")
    create_topic(broker.bootstrap, topic, partitions)
    logs: dict[int, list[int]] = {p: [] for p in range(partitions)}
    seq = 0
    for cycle, fraction in enumerate((0.3, 0.6, 0.15)):
        out = produce_until_killed(
            broker, topic, range(seq, seq + per_cycle), partitions, kill_at_acks=int(per_cycle * fraction)
        )
        print(f"cycle {cycle}: {out.describe()}")
        seq += per_cycle
        broker.restart(hard=True)
        logs = {
            p: verify_partition(broker.bootstrap, topic, p, logs[p], out.sent[p], out.acked)
            for p in range(partitions)
        }
        seq = produce_after_restart(
            broker.bootstrap, topic, partitions, logs, first_seq=seq, per_partition=50
        )
    # A clean restart at the end changes nothing.
    assert broker.stop() == 0
    broker.start(listen=broker.bootstrap)
    for p in range(partitions):
        assert [check_value(v) for _, v in read_partition(broker.bootstrap, topic, p)] == logs[p]
