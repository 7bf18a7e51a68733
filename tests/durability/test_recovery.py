"""Recovery of damaged segments, through the real broker process.

Each test writes known data into a one-partition topic with small segments (so there are several),
stops the broker (SIGTERM or SIGKILL), damages the files on disk the way a crash or a bad disk would,
starts the broker again on the same data directory and checks that it

* starts, and logs exactly one line naming the repair (segment and position);
* serves exactly the records before the first damaged batch, intact, and nothing after;
* answers ListOffsets latest with that first damaged offset (earliest stays 0);
* continues new produces from there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from durability_kit import (
    Batch,
    acks_all_producer,
    check_value,
    create_topic,
    flip_byte,
    layout,
    log_since_last_start,
    make_value,
    offsets,
    produce_acked,
    read_partition,
    segment_files,
)

SETTINGS = {"log.segment.bytes": "2048", "log.index.interval.bytes": "256"}
VALUE_SIZE = 100
PER_BATCH = 4


class Written:
    """A broker with one partition of known data: ``values[offset]`` and the on-disk batch layout."""

    def __init__(self, broker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.dir = broker.data_dir / f"{topic}-0"
        self.values: list[bytes] = []
        self.producer = acks_all_producer(broker.bootstrap)

    def produce_batch(self) -> None:
        seqs = range(len(self.values), len(self.values) + PER_BATCH)
        values = [make_value(s, VALUE_SIZE) for s in seqs]
        got = produce_acked(self.broker.bootstrap, self.topic, 0, values, producer=self.producer)
        assert got == list(seqs)
        self.values += values

    def segments(self) -> list[list[Batch]]:
        return layout(self.dir)

    def stop(self, how: str) -> None:
        self.producer = None
        if how == "kill":
            self.broker.kill()
        else:
            assert self.broker.stop() == 0, "SIGTERM should be a clean shutdown (exit 0)"

    def restart(self) -> str:
        """Start on the same data dir and port; the broker's log of this start."""
        self.broker.start(listen=f"127.0.0.1:{self.broker.port}")
        return log_since_last_start(self.broker.log_path)

    def check_serves(self, end: int) -> None:
        """Exactly values[:end], intact, at offsets 0..end-1; ListOffsets (0, end); produce continues."""
        bootstrap = self.broker.bootstrap
        assert offsets(bootstrap, self.topic, 0) == (0, end), "ListOffsets (earliest, latest)"
        records = read_partition(bootstrap, self.topic, 0)
        assert [o for o, _ in records] == list(range(end))
        for offset, value in records:
            assert value == self.values[offset], f"offset {offset} changed"
            check_value(value, VALUE_SIZE)
        new = [make_value(s, VALUE_SIZE) for s in range(10_000, 10_000 + 5)]
        assert produce_acked(bootstrap, self.topic, 0, new) == list(range(end, end + 5))
        records = read_partition(bootstrap, self.topic, 0)
        assert [v for _, v in records] == self.values[:end] + new
        assert offsets(bootstrap, self.topic, 0) == (0, end + 5)


@pytest.fixture
def written(odradek_factory, unique) -> Written:
    """At least 4 segments; the last one holds at least 3 batches."""
    broker = odradek_factory(SETTINGS)
    topic = unique("rec")
    create_topic(broker.bootstrap, topic, 1)
    w = Written(broker, topic)
    for _ in range(80):
        w.produce_batch()
        segs = w.segments()
        if len(segs) >= 4 and len(segs[-1]) >= 3:
            break
    else:
        pytest.fail(f"could not build the layout: {[len(s) for s in w.segments()]} batches per segment")
    return w


def repair_lines(log: str, topic: str) -> list[re.Match[str]]:
    pattern = re.compile(
        rf"recovered partition {re.escape(topic)}-0: truncated segment (?P<segment>\S+) at position "
        rf"(?P<position>\d+) \((?P<dropped>\d+) bytes dropped: .*\), removed (?P<removed>\d+) later segments"
    )
    lines = [line for line in log.splitlines() if "truncated segment" in line]
    matches = [pattern.search(line) for line in lines]
    assert all(matches), f"unexpected repair line format: {lines}"
    return matches  # type: ignore[return-value]


def assert_one_repair(log: str, topic: str, segment: Path, position: int, removed: int = 0) -> None:
    found = repair_lines(log, topic)
    assert len(found) == 1, f"expected exactly one repair line, got {[m.group(0) for m in found]}"
    m = found[0]
    assert (m.group("segment"), int(m.group("position")), int(m.group("removed"))) == (
        segment.name,
        position,
        removed,
    )


STOPS = ["clean", "kill"]


# --------------------------------------------------------------------------------------------------
# (a) torn tail


@pytest.mark.parametrize("where", ["in-header", "in-records", "after-length"])
@pytest.mark.parametrize("how", STOPS)
def test_truncated_tail_mid_batch(written: Written, how: str, where: str):
    written.stop(how)
    last = written.segments()[-1][-1]
    cut = {"in-header": 30, "in-records": last.size // 2, "after-length": 12}[where]
    with open(last.segment, "r+b") as f:
        f.truncate(last.position + cut)

    log = written.restart()
    assert_one_repair(log, written.topic, last.segment, last.position)
    assert last.segment.stat().st_size == last.position
    written.check_serves(last.base_offset)


# --------------------------------------------------------------------------------------------------
# (b) a damaged batch in the middle of the last segment


FLIPS = {
    "record-byte": lambda b: b.position + b.size - 20,  # inside a record value (covered by the CRC)
    "crc-field": lambda b: b.position + 18,
    "magic": lambda b: b.position + 16,
    "attributes": lambda b: b.position + 22,
    "record-count": lambda b: b.position + 60,
    "base-offset": lambda b: b.position + 7,  # outside the CRC: caught as an out-of-sequence offset
    "batch-length": lambda b: b.position + 11,
}


@pytest.mark.parametrize("field", sorted(FLIPS))
@pytest.mark.parametrize("how", STOPS)
def test_flipped_byte_mid_last_segment(written: Written, how: str, field: str):
    written.stop(how)
    batches = written.segments()[-1]
    bad = batches[len(batches) // 2]
    assert 0 < len(batches) // 2 < len(batches) - 1
    flip_byte(bad.segment, FLIPS[field](bad))

    log = written.restart()
    assert_one_repair(log, written.topic, bad.segment, bad.position)
    assert bad.segment.stat().st_size == bad.position
    written.check_serves(bad.base_offset)


# --------------------------------------------------------------------------------------------------
# (c) a damaged batch in an earlier segment


@pytest.mark.parametrize("how", STOPS)
def test_flipped_byte_in_earlier_segment_drops_the_rest(written: Written, how: str):
    """Segments below the recovery point were fsynced and are trusted on start (as in Kafka); without a
    recovery point (a crash before the first checkpoint, or a lost checkpoint file) every segment is
    validated, so the damage in segment 2 must cut the log there and remove every later segment."""
    written.stop(how)
    (written.dir / "recovery-point").unlink(missing_ok=True)
    segs = written.segments()
    victim = segs[1]
    bad = victim[len(victim) // 2]
    later = segment_files(written.dir)[2:]
    assert later
    flip_byte(bad.segment, bad.position + bad.size - 20)

    log = written.restart()
    assert_one_repair(log, written.topic, bad.segment, bad.position, removed=len(later))
    assert bad.segment.stat().st_size == bad.position
    for seg in later:
        stem = seg.name.removesuffix(".log")
        leftovers = [p.name for p in written.dir.glob(stem + ".*")]
        assert not leftovers, f"files of a later segment survived: {leftovers}"
    assert segment_files(written.dir) == [s[0].segment for s in segs[:2]]
    written.check_serves(bad.base_offset)


# --------------------------------------------------------------------------------------------------
# (d) index files deleted


@pytest.mark.parametrize("how", STOPS)
def test_deleted_index_files_are_rebuilt(written: Written, how: str):
    written.stop(how)
    segs = written.segments()
    removed = [p for p in written.dir.iterdir() if p.suffix in (".index", ".timeindex")]
    assert len(removed) == 2 * len(segs)
    for p in removed:
        p.unlink()

    log = written.restart()
    assert not repair_lines(log, written.topic), "no data may be dropped for missing indexes"
    rebuilt = [line for line in log.splitlines() if "rebuilt indexes" in line]
    assert rebuilt, "the index rebuild should be logged"
    for p in removed:
        assert p.exists(), f"{p.name} was not recreated"
    # Reads that start inside each segment (they go through the rebuilt sparse index).
    bootstrap = written.broker.bootstrap
    for batches in segs:
        for b in (batches[0], batches[-1]):
            start = b.base_offset + 1
            got = read_partition(bootstrap, written.topic, 0, start=start)
            assert got[0][0] == start and got[0][1] == written.values[start]
            assert [v for _, v in got] == written.values[start:]
    written.check_serves(len(written.values))


# --------------------------------------------------------------------------------------------------
# (e) garbage after the last batch


GARBAGE = {
    "pattern": b"\xde\xad\xbe\xef" * 40,
    "zeros": bytes(4096),  # preallocated, never written: a common sight after power loss
    "short": b"\x00\x01\x02\x03\x04\x05\x06",  # not even a batch header
    "plausible-header": (10**6).to_bytes(8, "big") + (200).to_bytes(4, "big") + b"\x00" * 100,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
@pytest.mark.parametrize("how", STOPS)
def test_garbage_after_last_batch(written: Written, how: str, kind: str):
    written.stop(how)
    last = written.segments()[-1][-1]
    end = last.position + last.size
    with open(last.segment, "ab") as f:
        f.write(GARBAGE[kind])

    log = written.restart()
    assert_one_repair(log, written.topic, last.segment, end)
    assert last.segment.stat().st_size == end
    written.check_serves(len(written.values))


# --------------------------------------------------------------------------------------------------
# Clean shutdown


def test_sigterm_is_clean_and_restart_serves_everything(written: Written):
    before = written.segments()
    assert written.broker.stop() == 0
    log = written.restart()
    assert "unclean shutdown" not in log
    assert not repair_lines(log, written.topic)
    assert written.segments() == before, "a clean restart must not rewrite segments"
    written.check_serves(len(written.values))
    # and once more, after produces on the reopened log
    written.values += [make_value(s, VALUE_SIZE) for s in range(10_000, 10_005)]
    assert written.broker.stop() == 0
    log = written.restart()
    assert "unclean shutdown" not in log and not repair_lines(log, written.topic)
    assert offsets(written.broker.bootstrap, written.topic, 0) == (0, len(written.values))
    assert [v for _, v in read_partition(written.broker.bootstrap, written.topic, 0)] == written.values
