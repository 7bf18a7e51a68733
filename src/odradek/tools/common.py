"""What every command shares: the connection settings, a bounded reachability check, and turning the
client's failures into one line a person can act on."""

from __future__ import annotations

import argparse
import concurrent.futures
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

DEFAULT_BROKERS = "127.0.0.1:9092"


class ToolError(Exception):
    """One line for stderr; exit code 1 (the cluster said no or is out of reach) or 2 (usage)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_brokers(value: str) -> list[tuple[str, int]]:
    out = []
    for item in value.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ToolError(f"-b/--brokers expects HOST:PORT[,HOST:PORT...], got {value!r}", 2)
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def parse_assignments(items: Iterable[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments (``--config``, ``--header``, ``-X``) in order; the value may hold ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"{what} expects KEY=VALUE, got {item!r}", 2)
        out[key] = value
    return out


def read_properties(path: str) -> dict[str, str]:
    """A Java .properties file of client settings (``--command-config``): ``key=value`` lines, ``#`` and
    ``!`` comments. Line continuations and escapes are not supported (client settings do not need them)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ToolError(f"cannot read --command-config {path}: {e.strerror}", 2) from None
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep:
            raise ToolError(f"{path}:{n}: expected key=value, got {raw!r}", 2)
        out[key.strip()] = value.strip()
    return out


@dataclass
class Client:
    """The connection settings of one command, and the client handles it opened.

    Handles are kept here until the command ends: confluent-kafka fails the pending requests of an
    AdminClient that is garbage-collected, so one must outlive every future it returned.
    """

    brokers: str
    timeout_s: float
    settings: dict[str, str] = field(default_factory=dict)
    _admin: Any = None
    _probed: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        settings = read_properties(args.command_config) if args.command_config else {}
        settings.update(parse_assignments(args.client_property, "-X"))
        if args.request_timeout_ms < 1:
            raise ToolError("--request-timeout-ms must be positive", 2)
        return cls(args.brokers, args.request_timeout_ms / 1000, settings)

    def config(self, **extra: Any) -> dict[str, Any]:
        timeout_ms = int(self.timeout_s * 1000)
        conf: dict[str, Any] = {
            "bootstrap.servers": self.brokers,
            "client.id": "odradek-cli",
            "log_level": 0,  # librdkafka's own log lines would break the one-line error rule
            "socket.timeout.ms": max(10, timeout_ms),
            "socket.connection.setup.timeout.ms": max(1000, timeout_ms),
        }
        conf.update(extra)
        conf.update(self.settings)
        return conf

    def probe(self) -> None:
        """Fail fast, with the reason, when no bootstrap address accepts a TCP connection: librdkafka
        would otherwise retry quietly until the request timeout and then report only a timeout."""
        if self._probed:
            return
        reasons = []
        for host, port in parse_brokers(self.brokers):
            try:
                with socket.create_connection((host, port), timeout=min(self.timeout_s, 5.0)):
                    self._probed = True
                    return
            except OSError as e:
                reasons.append(f"{host}:{port}: {e.strerror or e}")
        raise ToolError(f"cannot reach any broker ({'; '.join(reasons)}); check -b/--brokers")

    def admin(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self.probe()
            self._admin = AdminClient(self.config())
        return self._admin

    def consumer(self, group: str | None = None, **extra: Any) -> Any:
        """A consumer; without ``group`` it gets a throwaway group id that it never joins nor commits
        to (confluent-kafka insists on one even for assign())."""
        from confluent_kafka import Consumer

        self.probe()
        conf = self.config(
            **{
                "group.id": group or f"odradek-cli-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                **extra,
            }
        )
        return Consumer(conf)

    def metadata(self) -> Any:
        """The whole cluster's metadata (asking for every topic never auto-creates one)."""
        try:
            return self.admin().list_topics(timeout=self.timeout_s)
        except KafkaException as e:
            raise ToolError(describe_error(e, "cannot read the cluster's metadata")) from None

    def topic_partitions(self, topic: str) -> list[int]:
        md = self.metadata().topics.get(topic)
        if md is None or (md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise ToolError(f"unknown topic {topic!r}")
        if md.error is not None:
            raise ToolError(f"topic {topic!r}: {md.error.str()} ({md.error.name()})")
        return sorted(md.partitions)

    def wait(self, futures: Mapping[Any, concurrent.futures.Future], what: str) -> dict[Any, Any]:
        """Each future's result; the first failure becomes a ToolError naming ``what`` and the key."""
        out = {}
        for key, fut in futures.items():
            try:
                out[key] = fut.result(timeout=self.timeout_s + 5)
            except concurrent.futures.TimeoutError:
                raise ToolError(f"{what}: no answer within {self.timeout_s:g} s") from None
            except KafkaException as e:
                raise ToolError(describe_error(e, f"{what} {key_name(key)}".strip())) from None
        return out


def key_name(key: Any) -> str:
    if isinstance(key, str):
        return repr(key)
    topic, partition = getattr(key, "topic", None), getattr(key, "partition", None)
    if topic is not None:
        return f"{topic}:{partition}" if partition is not None and partition >= 0 else repr(topic)
    name = getattr(key, "name", None) or getattr(key, "group_id", None)
    return repr(name) if name else ""


def describe_error(e: BaseException, context: str) -> str:
    """``context: what went wrong (KAFKA_ERROR_NAME)``, with Kafka's error name for searching."""
    err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
    if err is None:
        return f"{context}: {e}"
    if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT):
        return f"{context}: the broker did not answer ({err.str()})"
    text = err.str()
    return f"{context}: {text} ({err.name()})" if err.name() not in text else f"{context}: {text}"
