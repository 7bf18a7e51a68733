"""Crash safety of compaction: a real ``odradek serve`` SIGKILLed while its log cleaner rewrites a compacted
log, at every step of the segment swap and at random moments, restarts with a consistent log.

The exact steps use the test-only crash points of the cleaner: with ``ODRADEK_TEST_CLEANER_KILL_AT=<step>``
in its environment the broker SIGKILLs itself at that step (see docs/compaction.md). After every crash
the broker restarts (cleaner off) and the partition, read from offset 0, must give the same last value for
every key at the same offset as before, hold only records that were written at the offsets they are
read at, and no offset twice.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from durability_kit import create_topic

from support.kit import read_to_end, wait_until
from support.odradek import OdradekBroker

pytestmark = pytest.mark.slow

KEYS = 150
RECORDS = 4000
BASE = {"log.segment.bytes": "16384", "log.cleaner.backoff.ms": "300"}
STEPS = ["cleaned", "swap", "unlinked", "indexed", "replaced"]
COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"}


def _broker(data_dir: Path, *, cleaner: bool, kill_at: str = "") -> OdradekBroker:
    settings = {**BASE, "log.cleaner.enable": "true" if cleaner else "false"}
    env = {"ODRADEK_TEST_CLEANER_KILL_AT": kill_at} if kill_at else {}
    return OdradekBroker(data_dir, settings=settings, env=env)


def _read(bootstrap: str, topic: str, group: str) -> list[tuple[int, bytes, bytes]]:
    msgs = read_to_end(bootstrap, topic, 1, committed=False, group=group, timeout=60)
    return [(m.offset(), m.key(), m.value()) for m in msgs]


def _last(rows) -> dict[bytes, tuple[int, bytes]]:
    out = {}
    for offset, key, value in rows:
        out[key] = (offset, value)
    return out


def _check(rows, written: set, expected: dict) -> None:
    offsets = [o for o, _, _ in rows]
    assert offsets == sorted(set(offsets)), "an offset read twice or out of order"
    assert set(rows) <= written, "a record that was never written at that offset"
    assert _last(rows) == expected, "the last value of some key changed"


def test_sigkill_during_cleaning_leaves_a_consistent_log(tmp_path: Path, unique) -> None:
    data = tmp_path / "data"
    topic = unique("compacted")
    b = _broker(data, cleaner=False).start()
    try:
        create_topic(b.bootstrap, topic, 1, COMPACTED)
        # Small batches, so that the log spans many segments.
        settings = {"acks": "all", "linger.ms": 5, "batch.size": 4096, "log_level": 0}
        p = Producer({"bootstrap.servers": b.bootstrap, **settings})
        rng = random.Random(7)
        for i in range(RECORDS):
            p.produce(topic, b"%06d-" % i + b"x" * 150, b"key-%03d" % rng.randrange(KEYS), partition=0)
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(30) == 0
        rows = _read(b.bootstrap, topic, unique("g"))
        assert len(rows) == RECORDS
    finally:
        b.stop()
    written = set(rows)
    expected = _last(rows)
    segments = len(list((data / f"{topic}-0").glob("*.log")))
    assert segments > 20

    def crash_and_check(kill_at: str, delay_s: float | None) -> None:
        crashing = _broker(data, cleaner=True, kill_at=kill_at).start()
        if delay_s is None:
            wait_until(lambda: not crashing.running, 30, f"the broker to kill itself at {kill_at}")
            assert crashing.kill() == -9
            assert f"ODRADEK_TEST_CLEANER_KILL_AT={kill_at}" in crashing.log_path.read_text()
        else:
            time.sleep(delay_s)
            crashing.kill()
        check = _broker(data, cleaner=False).start()
        try:
            _check(_read(check.bootstrap, topic, unique("g")), written, expected)
        finally:
            check.kill()  # a crash again: the next start recovers once more
        assert not list((data / f"{topic}-0").glob("*.cleaned")), "recovery left a .cleaned file"
        assert not list((data / f"{topic}-0").glob("*.swap")), "recovery left a .swap file"

    for step in STEPS:
        crash_and_check(step, None)
    rng = random.Random(11)
    for _ in range(3):
        crash_and_check("", 0.35 + rng.random() * 0.6)

    # Finally a pass runs to its end: the log shrinks to about one record per key, same values.
    final = _broker(data, cleaner=True).start()
    try:

        def compacted():
            r = _read(final.bootstrap, topic, unique("g"))
            return r if len(r) < RECORDS // 4 else None

        final_rows = wait_until(compacted, 60, "a complete compaction", interval=0.5)
        _check(final_rows, written, expected)
    finally:
        final.stop()
