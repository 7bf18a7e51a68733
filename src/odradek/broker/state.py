"""The topic registry: which topics exist, their partitions' logs, their configs, durably.

Owned by the event loop alone. Topic metadata lives in ``<data-dir>/__odradek/topics.json``, replaced
atomically (write, fsync, rename, fsync the directory) so a crash leaves either the old or the new list.
Dynamic broker configs (per broker and cluster-wide) live in ``__odradek/broker-configs.json`` and the log
start offsets DeleteRecords set in ``__odradek/log-start-offsets.json``, written the same way, off the loop.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import KEYS, SENSITIVE_KEYS, BrokerConfig, ConfigError, topic_config
from ..log.files import fsync_dir, replace_durably
from ..log.partition import LogConfig, PartitionLog

log = logging.getLogger("odradek.broker")

META_DIR = "__odradek"
TOPICS_FILE = "topics.json"
BROKER_CONFIGS_FILE = "broker-configs.json"
LOG_STARTS_FILE = "log-start-offsets.json"
LOCK_FILE = ".lock"
TOPIC_NAME_MAX = 249
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_PARTITIONS_PER_TOPIC = 10000


class DataDirError(RuntimeError):
    """The data directory cannot be used: not creatable, not writable, or held by another broker."""


class TopicError(Exception):
    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


# Kafka error codes used here.
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40


def topic_name_problem(name: str | None) -> str | None:
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if len(name) > TOPIC_NAME_MAX:
        return f"topic name is longer than {TOPIC_NAME_MAX} characters"
    if not _TOPIC_NAME.match(name):
        return f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_' and '-'"
    return None


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, Any]  # the topic's own overrides (what is stored)
    partitions: list[PartitionLog] = field(default_factory=list)
    effective: dict[str, Any] = field(default_factory=dict)  # overrides over broker defaults; set on load

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_id": str(self.topic_id),
            "partitions": len(self.partitions),
            "configs": self.configs,
        }


class BrokerState:
    def __init__(self, data_dir: Path, config: BrokerConfig) -> None:
        self.data_dir = data_dir
        self.config = config
        self.topics: dict[str, Topic] = {}
        self.topics_by_id: dict[uuid.UUID, Topic] = {}
        self._lock_fd: int | None = None
        self._write_lock = asyncio.Lock()  # one off-loop metadata write at a time, in order
        self._log_starts: dict[str, int] = {}  # "<topic id>:<partition>" -> start set by DeleteRecords

    # --- lifecycle ----------------------------------------------------------------------------------

    def open(self, now_ms: int) -> None:
        self._take_data_dir()
        dynamic = self._read_json(BROKER_CONFIGS_FILE, {"broker": {}, "default": {}})
        self.config.apply_dynamic(dynamic["broker"], dynamic["default"])
        self._log_starts = self._read_json(LOG_STARTS_FILE, {})
        meta = self.data_dir / META_DIR / TOPICS_FILE
        if meta.exists():
            try:
                entries = json.loads(meta.read_text())
            except (OSError, ValueError) as e:
                raise DataDirError(f"cannot read topic metadata {meta}: {e}") from None
            for entry in entries:
                topic = Topic(entry["name"], uuid.UUID(entry["topic_id"]), dict(entry["configs"]))
                for p in range(entry["partitions"]):
                    plog = self._open_partition(topic, p, now_ms)
                    start = self._log_starts.get(f"{topic.topic_id}:{p}")
                    if start is not None:
                        plog.advance_log_start(start)
                    topic.partitions.append(plog)
                self._register(topic)
        log.info("loaded %d topics from %s", len(self.topics), self.data_dir)

    def _read_json(self, name: str, empty: Any) -> Any:
        path = self.data_dir / META_DIR / name
        if not path.exists():
            return empty
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataDirError(f"cannot read {path}: {e}") from None

    def close(self) -> None:
        for topic in self.topics.values():
            for plog in topic.partitions:
                plog.close(clean=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_data_dir(self) -> None:
        try:
            (self.data_dir / META_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataDirError(f"cannot create data directory {self.data_dir}: {e.strerror}") from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise DataDirError(f"data directory {self.data_dir} is not writable")
        try:
            fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DataDirError(f"data directory {self.data_dir} is not writable: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirError(
                    f"data directory {self.data_dir} is in use by another running broker"
                ) from None
            raise DataDirError(f"cannot lock data directory {self.data_dir}: {e.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    # --- topics -------------------------------------------------------------------------------------

    def log_config(self, configs: dict[str, Any]) -> LogConfig:
        c = self.effective_configs(configs)
        return LogConfig(
            segment_bytes=c["segment.bytes"],
            segment_ms=c["segment.ms"],
            retention_ms=c["retention.ms"],
            retention_bytes=c["retention.bytes"],
            index_interval_bytes=c["index.interval.bytes"],
            index_max_bytes=c["segment.index.bytes"],
            cleanup_policy=c["cleanup.policy"],
        )

    def effective_configs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        merged = self.config.topic_defaults()
        merged.update(overrides)
        return merged

    def _open_partition(self, topic: Topic, index: int, now_ms: int) -> PartitionLog:
        return PartitionLog.open(
            self.data_dir / f"{topic.name}-{index}", self.log_config(topic.configs), now_ms=now_ms
        )

    def _register(self, topic: Topic) -> None:
        topic.effective = self.effective_configs(topic.configs)
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic

    def validate_new_topic(
        self, name: str, num_partitions: int, replication_factor: int, configs: dict[str, str | None]
    ) -> tuple[int, dict[str, Any]]:
        """(partition count, parsed configs) for a topic that may be created, else TopicError."""
        problem = topic_name_problem(name)
        if problem:
            raise TopicError(INVALID_TOPIC_EXCEPTION, problem)
        if name in self.topics:
            raise TopicError(TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if num_partitions == -1:
            num_partitions = self.config["num.partitions"]
        if num_partitions <= 0:
            raise TopicError(INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if num_partitions > MAX_PARTITIONS_PER_TOPIC:
            raise TopicError(INVALID_PARTITIONS, f"Number of partitions exceeds {MAX_PARTITIONS_PER_TOPIC}.")
        if replication_factor not in (-1, 1):
            if replication_factor <= 0:
                raise TopicError(INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
            raise TopicError(
                INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): "
                "The target replication factor of {replication_factor} cannot be reached because only "
                "1 broker(s) are registered.".replace("{replication_factor}", str(replication_factor)),
            )
        parsed: dict[str, Any] = {}
        for key, value in configs.items():
            if value is None:
                raise TopicError(INVALID_CONFIG, f"Null value not supported for topic configs: {key}")
            try:
                parsed[key] = topic_config(key, value)
            except ConfigError as e:
                raise TopicError(INVALID_CONFIG, str(e)) from None
        return num_partitions, parsed

    def create_topic(self, name: str, num_partitions: int, configs: dict[str, Any], now_ms: int) -> Topic:
        topic = Topic(name, uuid.uuid4(), configs)
        for p in range(num_partitions):
            topic.partitions.append(self._open_partition(topic, p, now_ms))
        self._register(topic)
        self._save()
        log.info("created topic %s with %d partitions", name, num_partitions)
        return topic

    def auto_create(self, name: str, now_ms: int) -> Topic | None:
        """Create a topic on first use where ``auto.create.topics.enable`` allows; None where it does not."""
        if not self.config["auto.create.topics.enable"]:
            return None
        n, configs = self.validate_new_topic(name, -1, -1, {})
        return self.create_topic(name, n, configs, now_ms)

    def add_partitions(self, topic: Topic, count: int, now_ms: int) -> None:
        for p in range(len(topic.partitions), count):
            topic.partitions.append(self._open_partition(topic, p, now_ms))
        self._save()
        log.info("topic %s now has %d partitions", topic.name, count)

    def delete_topic(self, topic: Topic) -> None:
        del self.topics[topic.name]
        del self.topics_by_id[topic.topic_id]
        self._save()
        for plog in topic.partitions:
            plog.delete()
        log.info("deleted topic %s", topic.name)

    # --- altered configs and log starts (IncrementalAlterConfigs, AlterConfigs, DeleteRecords) -------

    def set_topic_configs(self, topic: Topic, configs: dict[str, Any]) -> None:
        """Replace a topic's overrides (already validated), apply them live and store them."""
        topic.configs = configs
        self._reconfigure(topic)
        self._save()
        log.info("topic %s configs are now %s", topic.name, configs)

    async def set_broker_configs(self, per_broker: dict[str, Any], cluster_default: dict[str, Any]) -> None:
        """Install new dynamic broker layers (already validated): live at once, durable on return."""
        self.config.apply_dynamic(per_broker, cluster_default)
        for topic in self.topics.values():
            self._reconfigure(topic)
        data = json.dumps({"broker": per_broker, "default": cluster_default}, indent=1).encode()
        await self._write_off_loop(BROKER_CONFIGS_FILE, data)
        log.info(
            "dynamic broker configs: per broker %s, cluster default %s",
            _shown(per_broker),
            _shown(cluster_default),
        )

    async def set_log_start(self, topic: Topic, partition: int, offset: int) -> int:
        """DeleteRecords: the new log start offset, applied and durable on return."""
        start = topic.partitions[partition].advance_log_start(offset)
        self._log_starts[f"{topic.topic_id}:{partition}"] = start
        live = {f"{t.topic_id}:{p}" for t in self.topics.values() for p in range(len(t.partitions))}
        for name in [n for n in self._log_starts if n not in live]:
            del self._log_starts[name]  # deleted topics
        await self._write_off_loop(LOG_STARTS_FILE, json.dumps(self._log_starts).encode())
        return start

    def _reconfigure(self, topic: Topic) -> None:
        topic.effective = self.effective_configs(topic.configs)
        config = self.log_config(topic.configs)
        for plog in topic.partitions:
            plog.reconfigure(config)

    async def _write_off_loop(self, name: str, data: bytes) -> None:
        async with self._write_lock:
            await asyncio.to_thread(replace_durably, self.data_dir / META_DIR / name, data)

    def _save(self) -> None:
        data = json.dumps([t.to_json() for t in self.topics.values()], indent=1).encode()
        replace_durably(self.data_dir / META_DIR / TOPICS_FILE, data)
        # Partition directories are created by PartitionLog.open; make their entries durable too.
        fsync_dir(self.data_dir)


def _shown(configs: dict[str, Any]) -> dict[str, Any]:
    """Configs for the log: values of sensitive keys, and of names the broker does not know (which may be
    secrets, as Kafka assumes), are left out."""
    return {k: v if k in KEYS and k not in SENSITIVE_KEYS else "[hidden]" for k, v in configs.items()}
