"""``odradek txn list | describe`` (kafka-transactions.sh), over the project's wire client.

confluent-kafka 2.16's AdminClient has no ListTransactions or DescribeTransactions, so these two
requests go through :mod:`odradek.tools.wire` with the project's kio codec.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from kio.schema.errors import ErrorCode

from . import wire
from .common import Client, ToolError, parse_brokers
from .output import Output


def run(args: argparse.Namespace, out: Output) -> int:
    client = Client.from_args(args)
    client.probe()
    return {"list": list_, "describe": describe}[args.action](client, args, out)


def _ms(value: Any) -> int:
    """A kio duration or instant in Kafka's milliseconds (-1: none)."""
    if hasattr(value, "total_seconds"):
        return round(value.total_seconds() * 1000)
    if hasattr(value, "timestamp"):
        return max(-1, round(value.timestamp() * 1000))
    return int(value)


def list_(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Every broker is a transaction coordinator for some ids: each is asked, as Kafka's tool does."""
    brokers = client.metadata().brokers
    rows = []
    for node_id in sorted(brokers):
        b = brokers[node_id]
        with wire.Connection(b.host, b.port, client.timeout_s) as conn:
            v = conn.version(wire.LIST_TRANSACTIONS, 0, 1, "ListTransactions")
            r = conn.request(wire.LIST_TRANSACTIONS, v, {"state_filters": list(args.state)})
        if r.error_code != ErrorCode.none:
            raise ToolError(f"broker {node_id} refused ListTransactions ({wire.error_name(r.error_code)})")
        for t in r.transaction_states:
            rows.append(
                {
                    "transactional_id": t.transactional_id,
                    "coordinator": node_id,
                    "producer_id": int(t.producer_id),
                    "state": t.transaction_state,
                }
            )
    rows.sort(key=lambda r: r["transactional_id"])
    if out.json:
        out.document(rows)
    else:
        out.table(
            ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"], [list(r.values()) for r in rows]
        )
    return 0


def describe(client: Client, args: argparse.Namespace, out: Output) -> int:
    txid = args.transactional_id
    deadline = time.monotonic() + client.timeout_s
    conn = wire.bootstrap_connection(parse_brokers(client.brokers), client.timeout_s)
    try:
        node_id, _host, _port = wire.find_coordinator(conn, txid, 1, deadline)
        coord = wire.coordinator(conn, txid, 1, deadline)
        try:
            v = coord.version(wire.DESCRIBE_TRANSACTIONS, 0, 0, "DescribeTransactions")
            while True:
                r = coord.request(wire.DESCRIBE_TRANSACTIONS, v, {"transactional_ids": [txid]})
                t = r.transaction_states[0]
                if t.error_code not in wire.RETRIABLE or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            if coord is not conn:
                coord.close()
    finally:
        conn.close()
    if t.error_code == ErrorCode.transactional_id_not_found:
        raise ToolError(f"unknown transactional id {txid!r}")
    if t.error_code != ErrorCode.none:
        raise ToolError(f"cannot describe {txid!r} ({wire.error_name(t.error_code)})")
    start_ms = _ms(t.transaction_start_time)
    doc = {
        "transactional_id": t.transactional_id,
        "coordinator": node_id,
        "producer_id": int(t.producer_id),
        "producer_epoch": int(t.producer_epoch),
        "state": t.transaction_state,
        "transaction_timeout_ms": _ms(t.transaction_timeout),
        "transaction_start_time_ms": start_ms,
        "transaction_duration_ms": max(0, int(time.time() * 1000) - start_ms) if start_ms >= 0 else None,
        "partitions": sorted(f"{d.topic}:{p}" for d in t.topics for p in d.partitions),
    }
    if out.json:
        out.document(doc)
    else:
        out.table(
            [
                "COORDINATOR",
                "TRANSACTIONAL-ID",
                "PRODUCER-ID",
                "PRODUCER-EPOCH",
                "STATE",
                "TIMEOUT-MS",
                "START-TIME-MS",
                "DURATION-MS",
                "PARTITIONS",
            ],
            [
                [
                    doc["coordinator"],
                    doc["transactional_id"],
                    doc["producer_id"],
                    doc["producer_epoch"],
                    doc["state"],
                    doc["transaction_timeout_ms"],
                    start_ms if start_ms >= 0 else None,
                    doc["transaction_duration_ms"],
                    ",".join(doc["partitions"]) or None,
                ]
            ],
        )
    return 0
