"""A small produce/consume throughput check against a fresh Odradek broker (and start-up time).

    python bench/quick.py [--messages 200000] [--size 1024] [--acks all] [--partitions 1]

Starts ``odradek serve`` in a separate process on a free loopback port with a temporary data
directory, produces with confluent-kafka (librdkafka) from this process, consumes everything back by
assignment, and prints one JSON object with the figures. Numbers depend on the machine; compare runs
made in one sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def start_broker(data_dir: str) -> tuple[subprocess.Popen[bytes], str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "odradek.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("odradek listening on "):
        proc.kill()
        raise SystemExit(f"broker did not start: {line!r}")
    return proc, line.split()[3], time.perf_counter() - started


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return -1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--compression", default="none")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="odradek-bench-") as data_dir:
        proc, bootstrap, startup_s = start_broker(data_dir)
        try:
            idle_rss = rss_mb(proc.pid)
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic("bench", args.partitions, 1)])["bench"].result()
            producer = Producer({"bootstrap.servers": bootstrap, "acks": args.acks, "linger.ms": 5,
                                 "batch.size": 1_000_000,
                                 "compression.type": args.compression,
                                 "queue.buffering.max.messages": 1_000_000})
            value = os.urandom(args.size)
            failures = 0

            def on_delivery(err: object, _msg: object) -> None:
                nonlocal failures
                if err is not None:
                    failures += 1

            t0 = time.perf_counter()
            for i in range(args.messages):
                while True:
                    try:
                        producer.produce("bench", value=value, partition=i % args.partitions,
                                         on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.01)
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(120)
            produce_s = time.perf_counter() - t0
            load_rss = rss_mb(proc.pid)
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench",
                                 "enable.auto.commit": False, "fetch.max.bytes": 52428800})
            consumer.assign([TopicPartition("bench", p, 0) for p in range(args.partitions)])
            got = 0
            t1 = time.perf_counter()
            while got < args.messages and time.perf_counter() - t1 < 120:
                for m in consumer.consume(10_000, 1.0):
                    if m.error() is None:
                        got += 1
            consume_s = time.perf_counter() - t1
            consumer.close()
            mb = args.messages * args.size / 1e6
            print(json.dumps({
                "messages": args.messages, "value_bytes": args.size, "acks": args.acks,
                "partitions": args.partitions, "compression": args.compression,
                "startup_s": round(startup_s, 3),
                "produce_msg_per_s": round(args.messages / produce_s),
                "produce_mb_per_s": round(mb / produce_s, 1),
                "consume_msg_per_s": round(got / consume_s), "consume_mb_per_s": round(got * args.size / 1e6
                                                                                        / consume_s, 1),
                "delivery_failures": failures, "consumed": got,
                "broker_rss_mb_idle": round(idle_rss, 1), "broker_rss_mb_after_produce": round(load_rss, 1),
                "client_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
