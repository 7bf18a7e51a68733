"""Open a transaction, write to it, and hang (the test SIGKILLs this process).

    python txn_hold.py BOOTSTRAP TOPIC TRANSACTIONAL_ID TIMEOUT_MS COUNT

Prints ``{"ready": true, "producer_id": ...}`` once COUNT messages are written (acked) inside the open
transaction, then sleeps.
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Producer


def main() -> None:
    bootstrap, topic, txn_id, timeout_ms, count = sys.argv[1:6]
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": int(timeout_ms),
            "linger.ms": 5,
            "log_level": 0,
        }
    )
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(int(count)):
        p.produce(topic, value=b"zombie-%d" % i, partition=0)
    assert p.flush(30) == 0
    print(json.dumps({"ready": True}), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
