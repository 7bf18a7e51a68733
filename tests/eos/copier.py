"""Consume-transform-produce with exactly-once (KIP-98 / KIP-447), as a process the tests SIGKILL.

    python copier.py '{"bootstrap": ..., "input": ..., "output": ..., "group": ..., "txn_id": ...,
                       "batch": 500, "instance": "copier-0"}'

A read_committed consumer in a group (static membership, so that a restarted copier takes its place at
once) feeds a transactional producer. Each transaction holds up to ``batch`` records copied to the same
partition of the output topic plus the consumer's positions (``send_offsets_to_transaction``). On an
abortable error the transaction is aborted and the consumer rewinds to its committed offsets; on a fatal
one the process exits (code 3) and the test starts it again. Prints one JSON line per commit.
"""

from __future__ import annotations

import faulthandler
import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def log(**kw) -> None:
    print(json.dumps(kw), flush=True)


def rewind(c: Consumer) -> None:
    """Seek every assigned partition back to the group's committed offset (read with require_stable)."""
    parts = c.assignment()
    if not parts:
        return
    for tp in c.committed(parts, timeout=30):
        if tp.offset < 0:
            tp.offset = -2  # OFFSET_BEGINNING: nothing committed yet
        c.seek(tp)


def main() -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps where a stuck copier is
    cfg = json.loads(sys.argv[1])
    bootstrap = cfg["bootstrap"]
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": cfg["txn_id"],
            "transaction.timeout.ms": 20000,
            "linger.ms": 5,
            **cfg.get("producer", {"log_level": 0}),
        }
    )
    p.init_transactions(60)  # fences a previous incarnation and aborts its open transaction
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": cfg["group"],
            "group.instance.id": cfg["instance"],
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 50,
            **cfg.get("consumer", {"log_level": 0}),
        }
    )
    c.subscribe([cfg["input"]])
    out = cfg["output"]
    copied = 0
    while True:
        msgs = c.consume(cfg.get("batch", 500), 0.3)
        msgs = [m for m in msgs if m.error() is None or m.error().code() != KafkaError._PARTITION_EOF]
        for m in msgs:
            if m.error() is not None:
                raise KafkaException(m.error())
        if not msgs:
            continue
        try:
            p.begin_transaction()
            for m in msgs:
                while True:
                    try:
                        p.produce(out, key=m.key(), value=m.value(), partition=m.partition())
                        break
                    except BufferError:
                        p.poll(0.05)
            positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
            commit_with_retries(p)
            copied += len(msgs)
            log(ev="commit", n=len(msgs), copied=copied)
        except KafkaException as e:
            err = e.args[0]
            if err.fatal():
                log(ev="fatal", error=str(err))
                return 3
            if err.txn_requires_abort():
                log(ev="abort", error=str(err))
                p.abort_transaction(60)
                rewind(c)
                continue
            log(ev="error", error=str(err))
            return 4


def commit_with_retries(p: Producer) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            p.commit_transaction(30)
            return
        except KafkaException as e:
            if e.args[0].retriable() and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise


if __name__ == "__main__":
    sys.exit(main())
