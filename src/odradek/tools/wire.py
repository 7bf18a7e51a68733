"""A small blocking Kafka wire client for the requests confluent-kafka's AdminClient does not offer.

Written by hand because confluent-kafka 2.16 has no ListTransactions / DescribeTransactions, and its
list_consumer_group_offsets can crash the process (SIGSEGV in librdkafka) on an OffsetFetch error
answer, which a fresh Kafka gives while its offsets topic loads. Messages are the project's kio entities,
built with :func:`odradek.protocol.codec.build`; versions are agreed with the broker through ApiVersions.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from functools import cache
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from ..protocol.codec import build
from .common import ToolError

API_VERSIONS = 18
FIND_COORDINATOR = 10
OFFSET_FETCH = 9
LIST_TRANSACTIONS = 66
DESCRIBE_TRANSACTIONS = 65

# The largest answer this client accepts: a ListTransactions or OffsetFetch of a big cluster fits easily.
RESPONSE_BYTES_MAX = 64 * 1024 * 1024
# Coordinator errors that clear up by themselves (the coordinator is loading or moving): asked again.
RETRIABLE = {
    ErrorCode.coordinator_load_in_progress,
    ErrorCode.coordinator_not_available,
    ErrorCode.not_coordinator,
}
_I32 = struct.Struct(">i")


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"


@cache
def _request_cls(key: int, version: int) -> Any:
    return load_request_schema(key, version)


@cache
def _response_cls(key: int, version: int) -> Any:
    return load_response_schema(key, version)


class Connection:
    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.address = f"{host}:{port}"
        self.timeout_s = timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as e:
            raise ToolError(f"cannot reach the broker at {self.address}: {e.strerror or e}") from None
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        self._read_versions()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_versions(self) -> None:
        r = self._send(API_VERSIONS, 0, {})
        if r.error_code != ErrorCode.none:
            raise ToolError(f"{self.address} refused ApiVersions ({error_name(r.error_code)})")
        self.versions = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in r.api_keys}

    def version(self, key: int, lowest: int, highest: int, what: str) -> int:
        """The highest version both sides speak in ``lowest..highest``."""
        low, high = self.versions.get(key, (0, -1))
        v = min(high, highest)
        if v < max(low, lowest):
            raise ToolError(f"the broker at {self.address} does not support {what}")
        return v

    def request(self, key: int, version: int, data: dict[str, Any]) -> Any:
        return self._send(key, version, data)

    def _send(self, key: int, version: int, data: dict[str, Any]) -> Any:
        cls = _request_cls(key, version)
        self._correlation += 1
        buf = io.BytesIO()
        header_cls = RequestHeaderV2 if cls.__flexible__ else RequestHeaderV1
        header = header_cls(
            request_api_key=key,
            request_api_version=version,
            correlation_id=self._correlation,
            client_id="odradek-cli",
        )
        entity_writer(header_cls)(buf, header)
        entity_writer(cls)(buf, build(cls, data))
        body = buf.getvalue()
        try:
            self.sock.sendall(_I32.pack(len(body)) + body)
            frame = self._read_frame()
        except TimeoutError:
            raise ToolError(f"{self.address} did not answer within {self.timeout_s:g} s") from None
        except OSError as e:
            raise ToolError(f"lost the connection to {self.address}: {e.strerror or e}") from None
        resp_cls = _response_cls(key, version)
        flexible_header = resp_cls.__flexible__ and key != API_VERSIONS
        hdr, used = entity_reader(ResponseHeaderV1 if flexible_header else ResponseHeaderV0)(frame, 0)
        if hdr.correlation_id != self._correlation:
            raise ToolError(f"{self.address} answered out of order")
        try:
            entity, _ = entity_reader(resp_cls)(frame, used)
        except (SerialError, ValueError, IndexError, UnicodeDecodeError) as e:
            raise ToolError(f"cannot read {self.address}'s answer to api {key} v{version}: {e}") from None
        return entity

    def _read_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise OSError("connection closed by the broker")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self) -> bytes:
        (size,) = _I32.unpack(self._read_exact(4))
        if not 0 <= size <= RESPONSE_BYTES_MAX:
            raise ToolError(f"{self.address} sent a response of {size} bytes (limit {RESPONSE_BYTES_MAX})")
        return self._read_exact(size)


def find_coordinator(conn: Connection, key: str, key_type: int, deadline: float) -> tuple[int, str, int]:
    """(node id, host, port) of the group (key_type 0) or transaction (1) coordinator of ``key``."""
    v = conn.version(FIND_COORDINATOR, 1, 4, "FindCoordinator")
    while True:
        if v >= 4:
            r = conn.request(FIND_COORDINATOR, v, {"key_type": key_type, "coordinator_keys": [key]})
            c = r.coordinators[0]
            code, node, host, port = c.error_code, c.node_id, c.host, c.port
        else:
            r = conn.request(FIND_COORDINATOR, v, {"key_type": key_type, "key": key})
            code, node, host, port = r.error_code, r.node_id, r.host, r.port
        if code == ErrorCode.none:
            return int(node), host, int(port)
        if code not in RETRIABLE or time.monotonic() > deadline:
            raise ToolError(f"cannot find the coordinator of {key!r} ({error_name(code)})")
        time.sleep(0.2)


def coordinator(conn: Connection, key: str, key_type: int, deadline: float) -> Connection:
    """A connection to the coordinator of ``key`` (``conn`` itself when it is that broker)."""
    _node, host, port = find_coordinator(conn, key, key_type, deadline)
    if f"{host}:{port}" == conn.address:
        return conn
    return Connection(host, port, conn.timeout_s)


def committed_offsets(
    conn: Connection, group: str, deadline: float
) -> tuple[int, dict[tuple[str, int], tuple[int, str]]]:
    """(error code, {(topic, partition): (offset, metadata)}) of every offset ``group`` has committed.

    Asks OffsetFetch for all topics (a null topic list), which is what confluent-kafka cannot do safely.
    """
    v = conn.version(OFFSET_FETCH, 2, 9, "OffsetFetch of all topics")
    while True:
        if v >= 8:
            r = conn.request(OFFSET_FETCH, v, {"groups": [{"group_id": group, "topics": None}]})
            g = r.groups[0]
            code, topics = g.error_code, g.topics
        else:
            r = conn.request(OFFSET_FETCH, v, {"group_id": group, "topics": None})
            code, topics = r.error_code, r.topics
        if code in RETRIABLE and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        out = {}
        for t in topics:
            for p in t.partitions:
                if p.error_code == ErrorCode.none and p.committed_offset >= 0:
                    out[(t.name, int(p.partition_index))] = (int(p.committed_offset), p.metadata or "")
        return int(code), out


def bootstrap_connection(brokers: list[tuple[str, int]], timeout_s: float) -> Connection:
    """A connection to the first bootstrap broker that answers."""
    last: ToolError | None = None
    for host, port in brokers:
        try:
            return Connection(host, port, timeout_s)
        except ToolError as e:
            last = e
    assert last is not None
    raise last
