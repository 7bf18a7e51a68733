"""The command line for people (``odradek topic | group | produce | consume | txn``), run as a real
process against both brokers, plus its pure parts (the line reader, the reset plan, byte rendering)."""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from odradek.tools.common import ToolError
from odradek.tools.groups import PlanRow, Reset, parse_datetime, parse_topic_spec, plan
from odradek.tools.output import show_bytes
from odradek.tools.produce import LineError, LineReader
from odradek.tools.wire import Connection
from support.kit import create_topic, wait_until
from support.odradek import child_env

CLI_TIMEOUT_S = 60


def odradek(
    *argv: str, stdin: bytes | None = None, timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """``python -m odradek ARGV...`` with the working tree's code, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "odradek", *argv],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=child_env(),
        timeout=timeout,
    )


def ok(*argv: str, stdin: bytes | None = None) -> str:
    r = odradek(*argv, stdin=stdin)
    assert r.returncode == 0, f"odradek {' '.join(argv)} exited {r.returncode}: {r.stderr.decode()}"
    return r.stdout.decode()


def ok_json(*argv: str, stdin: bytes | None = None):
    return json.loads(ok(*argv, "--format", "json", stdin=stdin))


def one_line_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets, read by a consumer of the group that never joins it."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return [tp.offset for tp in got]
    finally:
        c.close()


def lines(n: int) -> bytes:
    return b"".join(b"k%d:v%d\n" % (i, i) for i in range(n))


# --------------------------------------------------------------------------------------------------
# Topics


def test_topic_create_list_describe_delete(broker, topic_name):
    b = ("-b", broker.bootstrap)
    out = ok("topic", "create", topic_name, "--partitions", "3", "--config", "retention.ms=3600000", *b)
    assert f"created topic {topic_name}" in out
    r = odradek("topic", "create", topic_name, *b)
    assert "TOPIC_ALREADY_EXISTS" in one_line_error(r)
    assert ok_json("topic", "create", topic_name, "--if-not-exists", *b) == {
        "created": [],
        "existed": [topic_name],
    }

    listed = {t["topic"]: t for t in ok_json("topic", "list", *b)}
    assert listed[topic_name] == {"topic": topic_name, "partitions": 3, "replication_factor": 1}
    assert topic_name in ok("topic", "list", *b)

    doc = ok_json("topic", "describe", topic_name, *b)
    assert [p["partition"] for p in doc["partitions"]] == [0, 1, 2]
    assert all(p["log_start_offset"] == 0 and p["log_end_offset"] == 0 for p in doc["partitions"])
    assert doc["configs"] == {"retention.ms": "3600000"}
    everything = ok_json("topic", "describe", topic_name, "--all-configs", *b)["configs"]
    assert everything["retention.ms"] == "3600000" and "cleanup.policy" in everything
    text = ok("topic", "describe", topic_name, *b)
    assert "PartitionCount: 3" in text and "retention.ms" in text

    assert ok_json("topic", "delete", topic_name, *b) == {"deleted": [topic_name]}
    wait_until(
        lambda: topic_name not in {t["topic"] for t in ok_json("topic", "list", *b)}, 30, "the topic gone"
    )
    assert "UNKNOWN_TOPIC_OR_PART" in one_line_error(odradek("topic", "delete", topic_name, *b))


def _speaks(bootstrap: str, api_key: int) -> bool:
    host, _, port = bootstrap.rpartition(":")
    with Connection(host, int(port), 10) as conn:
        return api_key in conn.versions


def test_topic_alter_configs_and_partitions(broker, topic_name):
    assert _speaks(broker.bootstrap, 44), "IncrementalAlterConfigs (44) is not advertised"
    b = ("-b", broker.bootstrap)
    ok("topic", "create", topic_name, "--config", "retention.ms=3600000", *b)
    doc = ok_json("topic", "alter", topic_name, "--config", "segment.ms=7200000", "--partitions", "2", *b)
    assert doc["set"] == {"segment.ms": "7200000"} and doc["partitions"] == 2
    described = ok_json("topic", "describe", topic_name, *b)
    assert described["configs"] == {"retention.ms": "3600000", "segment.ms": "7200000"}
    assert len(described["partitions"]) == 2
    ok("topic", "alter", topic_name, "--delete-config", "retention.ms", *b)
    assert ok_json("topic", "describe", topic_name, *b)["configs"] == {"segment.ms": "7200000"}
    r = odradek("topic", "alter", topic_name + "-missing", "--config", "segment.ms=1", *b)
    assert "unknown topic" in one_line_error(r)


# --------------------------------------------------------------------------------------------------
# Produce and consume


def test_produce_then_consume_json_with_metadata(broker, topic_name):
    b = ("-b", broker.bootstrap)
    ok("topic", "create", topic_name, "--partitions", "2", *b)
    stdin = b"alpha:one\nbeta:two=2\r\ngamma:\xff\xfe\ndelta:last"
    report = ok_json(
        "produce", topic_name, "--key-separator", ":", "--header", "source=cli", "--header", "trace=a=b",
        "--partition", "1", *b, stdin=stdin,
    )  # fmt: skip
    assert report["sent"] == report["delivered"] == 4 and report["failed"] == 0
    assert report["partitions"] == {"1": {"first_offset": 0, "last_offset": 3}}
    ok("produce", topic_name, "--partition", "0", *b, stdin=b"no key here\n")

    out = ok("consume", topic_name, "--from-beginning", "--format", "json", "--count", "5", *b)
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 5
    by_partition = {p: [r for r in records if r["partition"] == p] for p in (0, 1)}
    assert [r["offset"] for r in by_partition[1]] == [0, 1, 2, 3]
    assert [(r["key"], r["value"]) for r in by_partition[1]] == [
        ("alpha", "one"),
        ("beta", "two=2"),
        ("gamma", {"base64": base64.b64encode(b"\xff\xfe").decode()}),
        ("delta", "last"),
    ]
    headers = [{"key": "source", "value": "cli"}, {"key": "trace", "value": "a=b"}]
    assert all(r["headers"] == headers for r in by_partition[1])
    assert by_partition[0] == [
        {**by_partition[0][0], "offset": 0, "key": None, "value": "no key here", "headers": []}
    ]
    assert all(r["topic"] == topic_name and r["timestamp_type"] == "CreateTime" for r in records)
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 0 for r in records)

    raw = odradek("consume", topic_name, "--partition", "1", "--offset", "3", "--timeout-ms", "1500", *b)
    assert raw.returncode == 0 and raw.stdout == b"last\n", raw
    as_b64 = ok("consume", topic_name, "--partition", "1", "--offset", "2", "--count", "1", "--format",
                "json", "--encoding", "base64", *b)  # fmt: skip
    assert json.loads(as_b64)["value"] == base64.b64encode(b"\xff\xfe").decode()

    bad = odradek("produce", topic_name, "--key-separator", ":", *b, stdin=b"k:v\nnope\nk:w\n")
    assert "no key separator ':' on line 2" in one_line_error(bad)
    assert "delivered 1 of 1" in bad.stdout.decode()
    unconfirmed = ok_json("produce", topic_name, "--acks", "0", "--partition", "0", *b, stdin=b"fire\n")
    assert (
        unconfirmed["delivered"] == 1 and unconfirmed["partitions"] == {} and "acks=0" in unconfirmed["note"]
    )


def test_consume_as_group_then_describe_seek_and_delete(broker, topic_name, group_name):
    b = ("-b", broker.bootstrap)
    ok("topic", "create", topic_name, "--partitions", "2", *b)
    ok("produce", topic_name, "--partition", "0", "--key-separator", ":", *b, stdin=lines(5))
    ok("produce", topic_name, "--partition", "1", "--key-separator", ":", *b, stdin=lines(3))
    got = ok("consume", topic_name, "--group", group_name, "--from-beginning", "--count", "8", *b)
    assert sorted(got.split()) == sorted([f"v{i}" for i in range(5)] + [f"v{i}" for i in range(3)])

    doc = ok_json("group", "describe", group_name, *b)
    assert doc["state"] == "Empty" and doc["members"] == []
    assert [(r["partition"], r["current_offset"], r["log_end_offset"], r["lag"]) for r in doc["offsets"]] == [
        (0, 5, 5, 0),
        (1, 3, 3, 0),
    ]
    assert group_name in {g["group"] for g in ok_json("group", "list", *b)}

    # No --execute: the plan is printed and nothing changes (Kafka's default), nor with --dry-run.
    for mode in ([], ["--dry-run"]):
        r = odradek("group", "seek", group_name, "--topic", topic_name, "--to-earliest", *mode, *b)
        assert r.returncode == 0, r.stderr
        assert [line.split()[-1] for line in r.stdout.decode().splitlines()[1:]] == ["0", "0"]
        assert ("--execute" in r.stderr.decode()) == (not mode)
        assert committed(broker.bootstrap, group_name, topic_name, 2) == [5, 3]

    executed = ok_json("group", "seek", group_name, "--topic", topic_name, "--to-earliest", "--execute", *b)
    assert executed["executed"] and [r["new_offset"] for r in executed["plan"]] == [0, 0]
    assert committed(broker.bootstrap, group_name, topic_name, 2) == [0, 0]

    ok("group", "seek", group_name, "--topic", f"{topic_name}:0", "--to-offset", "4", "--execute", *b)
    assert committed(broker.bootstrap, group_name, topic_name, 2) == [4, 0]
    shifted = ok_json("group", "seek", group_name, "--all-topics", "--shift-by", "2", "--execute", *b)
    assert [r["new_offset"] for r in shifted["plan"]] == [5, 2]  # 4+2 is past the log end: 5
    assert shifted["warnings"] and "past the log end" in shifted["warnings"][0]

    assert ok_json("group", "delete", group_name, *b) == {"deleted": [group_name]}
    assert "does not exist" in one_line_error(odradek("group", "describe", group_name, *b))


def test_seek_refused_while_the_group_has_members(broker, topic_name, group_name):
    create_topic(broker.bootstrap, topic_name)
    c = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group_name, "auto.offset.reset": "earliest"}
    )
    try:
        c.subscribe([topic_name])
        wait_until(lambda: c.poll(0.2) is None and c.assignment(), 30, "an assignment")
        doc = ok_json("group", "describe", group_name, "-b", broker.bootstrap)
        assert doc["state"] == "Stable" and len(doc["members"]) == 1
        assert doc["members"][0]["assignment"] == [{"topic": topic_name, "partition": 0}]
        r = odradek("group", "seek", group_name, "--topic", topic_name, "--to-earliest", "--execute",
                    "-b", broker.bootstrap)  # fmt: skip
        assert "has 1 active member (state Stable)" in one_line_error(r)
        r = odradek("group", "delete", group_name, "-b", broker.bootstrap)
        assert "NON_EMPTY_GROUP" in one_line_error(r)
    finally:
        c.close()


def test_seek_to_datetime(broker, topic_name, group_name):
    create_topic(broker.bootstrap, topic_name)
    t0 = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(4):
        p.produce(topic_name, b"v%d" % i, partition=0, timestamp=t0 + i * 1000)
    assert p.flush(20) == 0

    def iso(ms: int) -> str:
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat()

    b = ("-b", broker.bootstrap, "--topic", topic_name, "--execute")
    # The group does not exist yet (state Dead): resetting it is allowed, as in Kafka.
    plan_doc = ok_json("group", "seek", group_name, "--to-datetime", iso(t0 + 1500), *b)
    assert [r["new_offset"] for r in plan_doc["plan"]] == [2]
    assert committed(broker.bootstrap, group_name, topic_name, 1) == [2]
    ok("group", "seek", group_name, "--to-datetime", iso(t0 + 1000).replace("+00:00", "Z"), *b)
    assert committed(broker.bootstrap, group_name, topic_name, 1) == [1]
    ok("group", "seek", group_name, "--to-datetime", iso(t0 + 60_000), *b)  # after the last record: log end
    assert committed(broker.bootstrap, group_name, topic_name, 1) == [4]


# --------------------------------------------------------------------------------------------------
# Transactions


def test_txn_list_and_describe(broker, topic_name, unique):
    create_topic(broker.bootstrap, topic_name)
    txid = unique("txn")
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txid})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic_name, b"in a transaction")
    p.commit_transaction(30)

    def listed():
        rows = [t for t in ok_json("txn", "list", "-b", broker.bootstrap) if t["transactional_id"] == txid]
        return rows if rows and rows[0]["state"] == "CompleteCommit" else None

    (row,) = wait_until(listed, 30, "the transaction listed as CompleteCommit")
    assert row["producer_id"] >= 0
    assert txid not in ok("txn", "list", "--state", "Ongoing", "-b", broker.bootstrap)
    doc = ok_json("txn", "describe", txid, "-b", broker.bootstrap)
    assert doc["transactional_id"] == txid and doc["producer_id"] == row["producer_id"]
    assert doc["state"] == "CompleteCommit" and doc["transaction_timeout_ms"] == 60_000
    assert doc["partitions"] == []
    assert txid in ok("txn", "describe", txid, "-b", broker.bootstrap)

    p.begin_transaction()
    p.produce(topic_name, b"aborted")
    assert p.flush(30) == 0  # sent before the abort, which would otherwise purge it unsent
    p.abort_transaction(30)
    b = ("-b", broker.bootstrap, "--from-beginning", "--timeout-ms", "2000")
    assert (
        ok("consume", topic_name, "--isolation-level", "read_uncommitted", *b)
        == "in a transaction\naborted\n"
    )
    assert ok("consume", topic_name, "--isolation-level", "read_committed", *b) == "in a transaction\n"

    err = one_line_error(odradek("txn", "describe", txid + "-unknown", "-b", broker.bootstrap))
    assert "unknown transactional id" in err, err


# --------------------------------------------------------------------------------------------------
# Errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_errors_are_one_line_with_an_exit_code(broker, topic_name):
    b = ("-b", broker.bootstrap)
    assert "unknown topic" in one_line_error(odradek("consume", topic_name, "--timeout-ms", "100", *b))
    assert "unknown topic" in one_line_error(odradek("produce", topic_name, *b, stdin=b"x\n"))
    assert "UNKNOWN_TOPIC" in one_line_error(odradek("topic", "describe", topic_name, *b))
    nowhere = ("-b", f"127.0.0.1:{_closed_port()}", "--request-timeout-ms", "3000")
    for argv in (("topic", "list"), ("consume", topic_name)):
        assert "cannot reach any broker" in one_line_error(odradek(*argv, *nowhere, timeout=20))
    usage = odradek("consume", topic_name, "--offset", "3", *b)
    assert "--offset needs --partition" in one_line_error(usage, code=2)


def test_without_the_cli_extra_one_line_says_what_to_install():
    script = (
        "import sys; sys.modules['rich'] = None; from odradek.cli import main; "
        "sys.exit(main(['topic', 'list']))"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=child_env(), timeout=30)
    assert (
        r.returncode == 2 and r.stderr.decode().strip() == "odradek topic needs: pip install 'odradek[cli]'"
    )


def test_console_script_runs():
    exe = shutil.which("odradek", path=str(Path(sys.executable).parent))
    assert exe is not None, "the odradek console script is not installed beside this Python"
    r = subprocess.run([exe, "topic", "--help"], capture_output=True, env=child_env(), timeout=30)
    assert r.returncode == 0 and b"create" in r.stdout and b"describe" in r.stdout


# --------------------------------------------------------------------------------------------------
# Pure parts


def test_line_reader_follows_the_console_producer():
    r = LineReader.from_options(":", [])
    assert r.parse(b"k:v:w", 1) == (b"k", b"v:w")
    assert r.parse(b":v", 1) == (b"", b"v")
    with pytest.raises(LineError, match="line 7"):
        r.parse(b"no separator", 7)
    lenient = LineReader.from_options(None, ["parse.key=true", "ignore.error=true", "null.marker=NULL"])
    assert lenient.key_separator == b"\t"
    assert lenient.parse(b"alone", 1) == (None, b"alone")
    assert lenient.parse(b"NULL\tv", 1) == (None, b"v")
    assert lenient.parse(b"k\tNULL", 1) == (b"k", None)
    assert LineReader.from_options(None, []).parse(b"a:b", 1) == (None, b"a:b")
    with pytest.raises(ToolError):
        LineReader.from_options(None, ["print.key=true"])


def test_reset_plan_clamps_to_the_log_as_kafka_does():
    tps = [("t", 0), ("t", 1)]
    earliest, latest, current = {("t", 0): 2, ("t", 1): 0}, {("t", 0): 10, ("t", 1): 4}, {("t", 0): 5}
    rows, warnings = plan(Reset("offset", 7), tps, current, earliest, latest)
    assert rows == [PlanRow("t", 0, 5, 7), PlanRow("t", 1, None, 4)] and len(warnings) == 1
    rows, warnings = plan(Reset("earliest"), tps, current, earliest, latest)
    assert [r.new_offset for r in rows] == [2, 0] and not warnings
    rows, _ = plan(Reset("latest"), tps, current, earliest, latest)
    assert [r.new_offset for r in rows] == [10, 4]
    rows, _ = plan(Reset("shift", -4), [("t", 0)], current, earliest, latest)
    assert rows == [PlanRow("t", 0, 5, 2)]
    with pytest.raises(ToolError, match="no committed offset"):
        plan(Reset("shift", 1), tps, current, earliest, latest)
    rows, _ = plan(Reset("datetime", 0), tps, current, earliest, latest, {("t", 0): 6, ("t", 1): -1})
    assert [r.new_offset for r in rows] == [6, 4]


def test_small_parsers():
    assert parse_topic_spec("orders") == ("orders", None)
    assert parse_topic_spec("orders:2,0,2") == ("orders", [0, 2])
    with pytest.raises(ToolError):
        parse_topic_spec("orders:x")
    assert parse_datetime("1970-01-01T00:00:01Z") == 1000
    assert parse_datetime("1970-01-01T02:00:01.5+02:00") == 1500
    with pytest.raises(ToolError):
        parse_datetime("yesterday")
    assert show_bytes(b"caf\xc3\xa9", "utf8") == "café"
    assert show_bytes(b"\xff", "utf8") == {"base64": "/w=="}
    assert show_bytes(b"ok", "base64") == "b2s="
    assert show_bytes(None, "utf8") is None
