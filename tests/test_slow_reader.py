"""A client that pipelines Fetch requests and never reads the responses cannot exhaust the broker's memory.

Kafka handles one request at a time per connection, so such a client costs it one response. Odradek
pipelines requests, so it bounds what waits unwritten instead (see ``broker/server.py``). Here a client
sends 60 Fetch requests for 20 MB each on one connection and reads nothing: without the bound the broker
would hold 60 responses (about 1.2 GB); the check allows a few. Meanwhile other clients are served.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from kio.schema.fetch.v12.request import FetchRequest
from kio.schema.metadata.v12.request import MetadataRequest

from wire import WireClient

FILL_MB = 20
REQUESTS = 60


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_unread_fetch_responses_are_bounded(fresh_odradek, unique):
    b = fresh_odradek
    topic = unique("slow-reader")
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20})
    for i in range(FILL_MB * 1000):
        p.produce(topic, b"x" * 1000)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0

    with WireClient(b.bootstrap) as w:
        md = w.request(
            MetadataRequest,
            {
                "topics": [{"name": topic, "topic_id": None}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        frame = w.encode_request(
            FetchRequest,
            {
                "replica_id": -1,
                "max_wait": 0,
                "min_bytes": 1,
                "max_bytes": 50 << 20,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {
                        "topic": topic,
                        "topic_id": md.topics[0].topic_id,
                        "partitions": [
                            {
                                "partition": 0,
                                "current_leader_epoch": -1,
                                "fetch_offset": 0,
                                "last_fetched_epoch": -1,
                                "log_start_offset": -1,
                                "partition_max_bytes": 50 << 20,
                            }
                        ],
                    }
                ],
                "forgotten_topics_data": [],
                "rack_id": "",
            },
            1,
        )

    before = _rss_mb(b.pid)
    host, port = b.bootstrap.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        silent.settimeout(10)
        for _ in range(REQUESTS):
            silent.sendall(frame)
        time.sleep(2)
        grown = _rss_mb(b.pid) - before
        # One response in the socket buffer, one being handled, and slack: far below 60 of them.
        assert grown < 5 * FILL_MB, f"broker memory grew by {grown:.0f} MB for unread responses"

        # Everyone else is served meanwhile.
        c = Consumer(
            {"bootstrap.servers": b.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest"}
        )
        try:
            c.subscribe([topic])
            deadline = time.monotonic() + 30
            while True:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    break
                assert time.monotonic() < deadline, "another consumer got nothing"
        finally:
            c.close()
    finally:
        silent.close()
    assert b.running
