"""A disk that refuses a write, under a real broker answering on the wire: the produce is answered with
KAFKA_STORAGE_ERROR (Kafka's code for a log it can no longer write), never acknowledged, other partitions
and the rest of the broker go on, and a restart serves the log exactly as it was written.

The failure is injected into the broker's own process (the embedded broker, ``odradek.testing``) by
replacing ``os.writev`` or ``os.fsync`` as the log module calls them: no filesystem here can be made to
fail on demand without privileges."""

from __future__ import annotations

import errno
import os
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.fetch.v12.request import FetchRequest
from prometheus_client.parser import text_string_to_metric_families

from odradek.log import partition as partition_module
from odradek.log import segment as segment_module
from odradek.testing import EmbeddedBroker
from support.kit import read_values
from wire import WireClient, fetch_body, list_offsets, produce, record_batch

NONE = 0
KAFKA_STORAGE_ERROR = 56


def produce_values(client: WireClient, topic: str, partition: int, values: list[bytes], acks: int) -> object:
    return produce(client, topic, record_batch([(None, v) for v in values]), acks=acks, partition=partition)


def fetch_error(client: WireClient, topic: str, partition: int, offset: int) -> int:
    resp = client.request(FetchRequest, fetch_body({(topic, partition): offset}))
    return resp.responses[0].partitions[0].error_code


def offline_partitions(broker: EmbeddedBroker) -> float:
    with urllib.request.urlopen(f"http://{broker.metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    families = text_string_to_metric_families(text)
    (family,) = (f for f in families if f.name == "odradek_log_offline_partitions")
    return family.samples[0].value


# acks=1 waits for the write only, so a failing fsync is acks=all's case alone.
@pytest.mark.parametrize(("what", "acks"), [("writev", 1), ("writev", -1), ("fsync", -1)])
def test_a_failed_write_is_a_storage_error_and_the_restart_finds_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, acks: int, what: str
) -> None:
    # No background flush meets the failing disk first.
    settings = {"log.flush.interval.ms": 60_000, "metrics.listen": "127.0.0.1:0"}
    broker = EmbeddedBroker(tmp_path / "data", settings).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("disk", 2, 1)])["disk"].result(20)
        with WireClient(broker.bootstrap_servers) as client:
            for p in (0, 1):
                assert produce_values(client, "disk", p, [b"kept-%d" % p], acks=-1).error_code == NONE
            assert offline_partitions(broker) == 0
            module = segment_module if what == "writev" else partition_module
            real = getattr(module.os, what)
            target = str(tmp_path / "data" / "disk-0")

            def refuse_partition_0(fd: int, *args: object) -> int:
                if os.readlink(f"/proc/self/fd/{fd}").startswith(target):
                    raise OSError(
                        errno.ENOSPC if what == "writev" else errno.EIO, f"{what} refused by the test"
                    )
                return real(fd, *args)

            monkeypatch.setattr(module.os, what, refuse_partition_0)
            answer = produce_values(client, "disk", 0, [b"lost-1", b"lost-2"], acks=acks)
            assert answer.error_code == KAFKA_STORAGE_ERROR, answer
            assert answer.base_offset == -1
            again = produce_values(client, "disk", 0, [b"lost-3"], acks=acks)
            assert again.error_code == KAFKA_STORAGE_ERROR, "a failed log took a write"
            other = produce_values(client, "disk", 1, [b"still-1"], acks=acks)
            assert other.error_code == NONE, "one partition's failed disk stopped another's"
            # The failed partition is offline for reads too, as Kafka's failed log directory is.
            for timestamp in (-1, -2, -3, 0):  # latest, earliest, max timestamp, by time
                answer = list_offsets(client, "disk", 0, timestamp)
                assert (answer.error_code, answer.offset) == (KAFKA_STORAGE_ERROR, -1), (timestamp, answer)
                assert list_offsets(client, "disk", 1, timestamp).error_code == NONE
            assert fetch_error(client, "disk", 0, 0) == KAFKA_STORAGE_ERROR
            assert fetch_error(client, "disk", 1, 0) == NONE
            assert offline_partitions(broker) == 1
            monkeypatch.setattr(module.os, what, real)
    finally:
        broker.stop()
    restarted = EmbeddedBroker(tmp_path / "data", settings).start()
    try:
        assert offline_partitions(restarted) == 0
        values = read_values(restarted.bootstrap_servers, "disk", "after", partition=0)
        # What the failed fsync covered may be on disk or not (never acknowledged either way); nothing
        # produced after the failure is.
        unacknowledged = [b"lost-1", b"lost-2"] if what == "fsync" else []
        assert values in ([b"kept-0"], [b"kept-0", *unacknowledged]), values
        assert read_values(restarted.bootstrap_servers, "disk", "after-1", partition=1) == [
            b"kept-1",
            b"still-1",
        ]
        with WireClient(restarted.bootstrap_servers) as client:
            assert produce_values(client, "disk", 0, [b"after"], acks=-1).error_code == NONE
    finally:
        restarted.stop()
