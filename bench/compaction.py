"""How fast the log cleaner compacts, beside Kafka: ``python -m bench.compaction``.

Each broker (``odradek``, ``kafka``: bench/brokers.py, defaults plus ``log.cleaner.backoff.ms=100``) gets a
fresh one-partition ``cleanup.policy=compact`` topic (``segment.ms`` 40 s, longer than producing takes;
``min.cleanable.dirty.ratio`` 0.01) and ``--records`` records (100-byte values) over ``--keys`` keys from
confluent-kafka. Once the segment has aged (Odradek may roll it on its timer up to 0.1 s earlier), one
more record rolls it; from then on the topic's segment files are polled every 20 ms until they shrank
below a quarter of their size. Reported: seconds from the roll to compacted (including up to one backoff
of the cleaner's idle wait), the dirty bytes cleaned per second, the broker's CPU seconds over that time,
and the bytes on disk before and after. Compare the ratios of one run; the machine is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/compaction.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEGMENT_MS = 40000
POLL_S = 0.02
TIMEOUT_S = 300


def _stored_bytes(work: Path, topic: str) -> int:
    return sum(f.stat().st_size for f in work.rglob(f"{topic}-0/*.log") if f.is_file())


def _produce(bootstrap: str, topic: str, records: int, keys: int, timestamp_ms: int) -> None:
    """``records`` records, all stamped ``timestamp_ms``: Kafka rolls a segment on the record timestamps
    (the time a segment spans), so producing slowly on a loaded machine cannot roll it early."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "1", "log_level": 0})
    rng = random.Random(7)
    for i in range(records):
        key = b"key-%06d" % rng.randrange(keys)
        while True:
            try:
                p.produce(topic, b"%08d" % i + b"v" * 92, key, partition=0, timestamp=timestamp_ms)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def run_broker(name: str, args: argparse.Namespace) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    from bench.brokers import SPECS, RunningBroker, cpu_seconds

    base = SPECS[name]
    spec = dataclasses.replace(base, settings={**base.settings, "log.cleaner.backoff.ms": "100"})
    work = Path(tempfile.mkdtemp(prefix=f"odradek-bench-compaction-{name}-", dir=args.work_dir))
    broker = RunningBroker(spec, work)
    topic = "bench-compaction"
    try:
        broker.start()
        a = AdminClient({"bootstrap.servers": broker.bootstrap})
        config = {
            "cleanup.policy": "compact",
            "segment.ms": str(SEGMENT_MS),
            "min.cleanable.dirty.ratio": "0.01",
        }
        a.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(60)
        time.sleep(1)
        t_produce = time.monotonic()
        stamp_ms = int(time.time() * 1000)
        _produce(broker.bootstrap, topic, args.records, args.keys, stamp_ms)
        produce_s = time.monotonic() - t_produce
        if produce_s > SEGMENT_MS / 1000:  # Odradek rolls on its own clock: the log would be split
            return {"label": spec.label, "error": f"producing took {produce_s:.0f}s, over segment.ms"}
        time.sleep(max(0.0, SEGMENT_MS / 1000 + 0.1 - produce_s))
        before = _stored_bytes(work, topic)
        cpu0 = cpu_seconds(broker.pid)
        t0 = time.monotonic()
        # The roll: stamped after segment.ms, so the segment of all records becomes cleanable.
        _produce(broker.bootstrap, topic, 1, 1, stamp_ms + SEGMENT_MS + 1000)
        while _stored_bytes(work, topic) > before / 4:
            if time.monotonic() - t0 > TIMEOUT_S:
                return {"label": spec.label, "error": f"not compacted within {TIMEOUT_S}s"}
            time.sleep(POLL_S)
        seconds = time.monotonic() - t0
        cpu = cpu_seconds(broker.pid) - cpu0
        time.sleep(1)
        after = _stored_bytes(work, topic)
        row = {
            "label": spec.label,
            "seconds": seconds,
            "mb_per_s": before / 1e6 / seconds,
            "broker_cpu_s": cpu,
            "bytes_before": before,
            "bytes_after": after,
        }
        print(
            f"{spec.label:<28} {seconds:6.2f} s to compact {before / 1e6:6.1f} MB -> {after / 1e6:5.2f} MB "
            f"({row['mb_per_s']:5.1f} MB/s, broker CPU {cpu:5.2f} s)",
            flush=True,
        )
        return row
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--brokers", default="odradek,kafka")
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="30,000 records")
    args = ap.parse_args(argv)
    if args.quick:
        args.records = 30_000
    results = {name: run_broker(name, args) for name in args.brokers.split(",")}
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"compaction-{stamp}.json"
    out.write_text(json.dumps({"records": args.records, "keys": args.keys, "results": results}, indent=1))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    from bench.side import end_cleanly_on_signals

    end_cleanly_on_signals()
    sys.exit(main())
