"""A deliberately small Kafka wire client for protocol-level tests against either broker.

Requests are kio entities encoded by hand-picked version; responses are decoded with kio. It can also
send raw bytes, so tests can feed a broker exactly the malformed input they mean to.
"""

from __future__ import annotations

import datetime
import io
import socket
import struct
import time
from typing import Any

from kio.index import load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer

from odradek.protocol.codec import build


class WireClient:
    def __init__(self, bootstrap: str, timeout_s: float = 10.0, client_id: str = "odradek-wire-test") -> None:
        host, _, port = bootstrap.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_correlation_id(self) -> int:
        self._correlation += 1
        return self._correlation

    def encode_request(self, request_cls: Any, data: dict[str, Any] | Any, correlation_id: int) -> bytes:
        entity = data if not isinstance(data, dict) else build(request_cls, data)
        buf = io.BytesIO()
        header_cls = RequestHeaderV2 if request_cls.__flexible__ else RequestHeaderV1
        entity_writer(header_cls)(
            buf,
            header_cls(
                request_api_key=request_cls.__api_key__,
                request_api_version=request_cls.__version__,
                correlation_id=correlation_id,
                client_id=self.client_id,
            ),
        )
        entity_writer(request_cls)(buf, entity)
        body = buf.getvalue()
        return struct.pack(">i", len(body)) + body

    def request(self, request_cls: Any, data: dict[str, Any] | Any) -> Any:
        """Send one request and return the decoded response entity."""
        corr = self.next_correlation_id()
        self.sock.sendall(self.encode_request(request_cls, data, corr))
        return self.read_response(request_cls.__api_key__, request_cls.__version__, corr)

    def read_response(self, api_key: int, api_version: int, correlation_id: int) -> Any:
        frame = self.read_frame()
        response_cls = load_response_schema(api_key, api_version)
        header_cls = ResponseHeaderV1 if response_cls.__flexible__ and api_key != 18 else ResponseHeaderV0
        header, used = entity_reader(header_cls)(frame, 0)
        assert header.correlation_id == correlation_id, (header.correlation_id, correlation_id)
        body, _ = entity_reader(response_cls)(frame, used)
        return body

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            out += chunk
        return bytes(out)

    def is_closed_by_peer(self, wait_s: float = 5.0) -> bool:
        """True when the broker closes the connection within ``wait_s`` without sending anything."""
        deadline = time.monotonic() + wait_s
        self.sock.settimeout(0.2)
        try:
            while time.monotonic() < deadline:
                try:
                    data = self.sock.recv(1)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    return True
                return data == b""
            return False
        finally:
            self.sock.settimeout(10.0)


# --- request bodies and batches the protocol tests build by hand ------------------------------------


def produce(client: WireClient, topic: str, records: bytes, acks: int = -1, partition: int = 0) -> Any:
    """One Produce v9 of one record batch to one partition; that partition's answer."""
    from kio.schema.produce.v9.request import ProduceRequest

    resp = client.request(
        ProduceRequest,
        {
            "transactional_id": None,
            "acks": acks,
            "timeout": datetime.timedelta(seconds=10),
            "topic_data": [
                {"name": topic, "partition_data": [{"index": partition, "records": bytes(records)}]}
            ],
        },
    )
    return resp.responses[0].partition_responses[0]


def list_offsets(client: WireClient, topic: str, partition: int = 0, timestamp: int = -1) -> Any:
    """One ListOffsets v7 (read uncommitted) of one partition at ``timestamp`` (-1 latest, -2 earliest,
    -3 max timestamp, else a time in ms); that partition's answer."""
    from kio.schema.list_offsets.v7.request import ListOffsetsRequest

    resp = client.request(
        ListOffsetsRequest,
        {
            "replica_id": -1,
            "isolation_level": 0,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {"partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp}
                    ],
                }
            ],
        },
    )
    return resp.topics[0].partitions[0]


def fetch_body(
    partitions: dict[tuple[str, int], int],
    *,
    session_id: int = 0,
    epoch: int = -1,
    forget: list[tuple[str, int]] | None = None,
    max_wait_ms: int = 10,
    max_bytes: int = 1 << 24,
    partition_max_bytes: int = 1 << 20,
    isolation_level: int = 0,
) -> dict[str, Any]:
    """A Fetch v12 request body: ``partitions`` maps (topic, partition) to its fetch offset; without a
    session (id 0, epoch -1) unless asked."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), offset in partitions.items():
        by_topic.setdefault(topic, []).append(
            {
                "partition": partition,
                "current_leader_epoch": -1,
                "fetch_offset": offset,
                "last_fetched_epoch": -1,
                "log_start_offset": -1,
                "partition_max_bytes": partition_max_bytes,
            }
        )
    forgotten: dict[str, list[int]] = {}
    for topic, partition in forget or []:
        forgotten.setdefault(topic, []).append(partition)
    return {
        "replica_id": -1,
        "max_wait": datetime.timedelta(milliseconds=max_wait_ms),
        "min_bytes": 1,
        "max_bytes": max_bytes,
        "isolation_level": isolation_level,
        "session_id": session_id,
        "session_epoch": epoch,
        "forgotten_topics_data": [{"topic": t, "partitions": ps} for t, ps in forgotten.items()],
        "rack_id": "",
        "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
    }


def record_batch(
    records: list[tuple[Any, ...]],
    *,
    codec: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    """One v2 record batch built by kafka-python's builder: each record is (key, value), optionally
    followed by a timestamp (None: now) and a list of (name, bytes) headers."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 22,
    )
    for i, (key, value, *rest) in enumerate(records):
        timestamp = rest[0] if rest else None
        headers = rest[1] if len(rest) > 1 else []
        b.append(i, timestamp=timestamp, key=key, value=value, headers=headers)
    return bytes(b.build())
