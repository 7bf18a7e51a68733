"""Property: whatever was flushed before a crash is all there after reopen, offsets contiguous.

A crash here is what a power cut can do to the files: every byte past the flushed position of each
segment may be lost (cut at any point), replaced by junk, or a whole unflushed segment may vanish (so
an unflushed log may even come back starting later). Index files are left as they were, possibly
pointing past the cut.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from odradek.log import PartitionLog
from odradek.protocol.records import read_header

from .batches import (
    SMALL,
    as_stored,
    batch_positions,
    crash,
    make_batch,
    open_log,
    read_all,
    segment_files,
    value_of,
)

CONFIG = replace(SMALL, segment_bytes=700, segment_ms=1_000, index_interval_bytes=100)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 8), st.integers(1, 4), st.integers(0, 150)),
        st.tuples(st.just("append"), st.integers(1, 8), st.integers(1, 4), st.integers(0, 150)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("age_roll")),
        st.tuples(st.just("reopen")),
        st.tuples(st.just("crash"), st.integers(0, 2**32)),
        st.tuples(st.just("truncate"), st.integers(0, 100)),
    ),
    max_size=40,
)


def simulate_power_cut(path: Path, flushed: int, rng: random.Random) -> None:
    segments = segment_files(path)
    for seg in segments:
        data = seg.read_bytes()
        # boundary = end of the last batch wholly below the flushed offset
        ends = [p for p, _, last in batch_positions(data) if last < flushed]
        boundary = 0 if not ends else ends[-1] + _size_at(data, ends[-1])
        if boundary == len(data) and seg != segments[-1]:
            continue  # fully flushed and sealed: a power cut cannot touch it
        if boundary == 0 and int(seg.stem) >= flushed and rng.random() < 0.3:
            seg.unlink()
            continue
        cut = rng.randint(boundary, len(data))
        junk = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 0, 5, 80])))
        seg.write_bytes(data[:cut] + junk)


def _size_at(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos + 8 : pos + 12], "big") + 12


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_flushed_data_survives_crashes(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t-0"
        now_ms = 0
        log = open_log(path, CONFIG)
        model: list[bytes] = []  # stored batches, in order, as the log should serve them
        for step in steps:
            now_ms += 10
            if step[0] == "append":
                _, count, records, size = step
                for _ in range(count):
                    n = log.log_end_offset
                    batch = make_batch([value_of(n + r, size) for r in range(records)], base_timestamp=now_ms)
                    log.append(batch, leader_epoch=1, now_ms=now_ms)
                    model.append(as_stored(batch, n, 1))
            elif step[0] == "flush":
                assert log.flush() == log.log_end_offset
            elif step[0] == "age_roll":
                now_ms += 2_000
                log.maybe_roll(now_ms)
            elif step[0] == "reopen":
                log.close(clean=True)
                log = open_log(path, CONFIG, now_ms)
                assert read_all(log) == model
            elif step[0] == "truncate":
                target = log.log_start_offset + step[1] * (log.log_end_offset - log.log_start_offset) // 100
                log.truncate_to(target)
                model = model[: len(read_all(log))]
                assert log.log_end_offset <= max(target, log.log_start_offset)
            else:
                flushed = log.flushed_offset
                segments = min(len(segment_files(path)), 3)
                event(f"crash with {segments}+ segments, flushed {'>0' if flushed else '0'}")
                crash(log)
                simulate_power_cut(path, flushed, random.Random(step[1]))
                log = open_log(path, CONFIG, now_ms)
                served = read_all(log)  # contiguous offsets, every CRC good
                written = {read_header(b).base_offset: b for b in model}
                assert all(written.get(read_header(b).base_offset) == b for b in served), "not as written"
                durable = [b for b in model if read_header(b).last_offset < flushed]
                assert served[: len(durable)] == durable, "lost flushed data"
                event("crash lost unflushed batches" if len(served) < len(model) else "crash lost nothing")
                model = served
            assert log.flushed_offset <= log.log_end_offset
        log.close(clean=True)
        assert read_all(PartitionLog.open(path, CONFIG, now_ms=now_ms)) == model
