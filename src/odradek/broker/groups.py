"""The I/O side of consumer groups: futures for barrier replies, timers, durable offsets.

The state machines (``coordinator.groups``, ``coordinator.offsets``) are pure; this service feeds them
the clock, turns their reply callbacks into futures, runs ``tick`` when the next deadline is due, and
appends offset changes to the journal, answering OffsetCommit only once the journal is fsynced.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..coordinator.consumer_groups import ConsumerGroupConfig, ConsumerGroupCoordinator
from ..coordinator.groups import GroupConfig, GroupCoordinator, GroupState
from ..coordinator.offsets import OffsetStore
from ..log.files import replace_durably
from ..log.journal import Journal
from .clock import now_ms

log = logging.getLogger("odradek.groups")

OFFSETS_JOURNAL = "__odradek/consumer-offsets.journal"
GROUP_CONFIGS_FILE = "__odradek/group-configs.json"
COMPACT_MIN_BYTES = 8 * 1024 * 1024


def _group_record(exported: dict[str, Any], kind: str = "group") -> bytes:
    """A journal record of a group's state: kind "group" for classic groups, "cgroup" for KIP-848 ones."""
    return json.dumps({"t": kind, **exported}, separators=(",", ":")).encode()


class GroupService:
    def __init__(self, data_dir: Path, config: Any, flusher: Any) -> None:
        self.config = config
        self.flusher = flusher
        self.coordinator = GroupCoordinator(
            on_group_change=self._group_changed,
            config=GroupConfig(
                min_session_timeout_ms=config["group.min.session.timeout.ms"],
                max_session_timeout_ms=config["group.max.session.timeout.ms"],
                max_size=config["group.max.size"],
                initial_rebalance_delay_ms=config["group.initial.rebalance.delay.ms"],
            ),
        )
        self.consumer = ConsumerGroupCoordinator(
            ConsumerGroupConfig(
                session_timeout_ms=config["group.consumer.session.timeout.ms"],
                heartbeat_interval_ms=config["group.consumer.heartbeat.interval.ms"],
                max_size=config["group.consumer.max.size"],
            )
        )
        self.offsets = OffsetStore()
        self.journal = Journal(data_dir / OFFSETS_JOURNAL)
        # KIP-848 group configs (IncrementalAlterConfigs on GROUP resources): group id -> overrides.
        self.group_configs: dict[str, dict[str, Any]] = {}
        self._group_configs_path = data_dir / GROUP_CONFIGS_FILE
        self._group_configs_lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        # KIP-848 group id -> its last journalled record, so only changes are written.
        self._consumer_saved: dict[str, bytes] = {}

    def open(self) -> None:
        if self._group_configs_path.exists():
            for group_id, overrides in json.loads(self._group_configs_path.read_text()).items():
                self._apply_group_config(group_id, overrides)
        offsets = []
        groups: dict[str, dict[str, Any]] = {}
        consumer_groups: dict[str, dict[str, Any]] = {}
        for raw in self.journal.open():
            record = json.loads(raw)
            if record["t"] == "group":
                groups[record["g"]] = record
            elif record["t"] == "cgroup":
                consumer_groups[record["g"]] = record
            else:
                offsets.append(raw)
        self.offsets.replay(offsets)
        now = now_ms()
        for record in groups.values():
            if not record.get("deleted"):
                self.coordinator.restore(now, record)
        for record in consumer_groups.values():
            if not record.get("deleted"):
                group = self.consumer.restore(now, record)
                self._consumer_saved[group.group_id] = _group_record(self.consumer.export(group), "cgroup")
        # Groups with committed offsets exist (Empty) after a restart, as Kafka's do.
        for group_id in self.offsets.groups:
            if group_id not in self.coordinator.groups and group_id not in self.consumer.groups:
                self.coordinator.get_or_create(group_id).empty_since_ms = now
        log.info(
            "restored %d classic groups, %d consumer groups and the committed offsets of %d",
            len(self.coordinator.groups),
            len(self.consumer.groups),
            len(self.offsets.groups),
        )

    def _apply_group_config(self, group_id: str, overrides: dict[str, Any]) -> None:
        if overrides:
            self.group_configs[group_id] = overrides
        else:
            self.group_configs.pop(group_id, None)
        self.consumer.set_group_config(
            group_id,
            overrides.get("consumer.session.timeout.ms"),
            overrides.get("consumer.heartbeat.interval.ms"),
        )

    async def set_group_config(self, group_id: str, overrides: dict[str, Any]) -> None:
        """Replace a group's configs (already validated): used from the next heartbeat, durable on return."""
        self._apply_group_config(group_id, overrides)
        data = json.dumps(self.group_configs, indent=1).encode()
        async with self._group_configs_lock:
            await asyncio.to_thread(replace_durably, self._group_configs_path, data)
        log.info("group %s configs are now %s", group_id, overrides)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.journal.close()

    def _group_changed(self, group: Any) -> None:
        """Group metadata goes into the journal with the next group commit (Kafka: __consumer_offsets)."""
        exported = self.coordinator.export(group)
        if exported is not None:
            self.journal.append([_group_record(exported)])
            self.flusher.mark_dirty([self.journal])

    def group_deleted(self, group_id: str) -> None:
        self.journal.append([_group_record({"g": group_id, "deleted": True})])
        self.flusher.mark_dirty([self.journal])

    def consumer_changed(self, group_ids: Iterable[str]) -> None:
        """Journal the KIP-848 groups whose state changed (or that are gone) with the next group commit."""
        records = []
        for group_id in group_ids:
            group = self.consumer.groups.get(group_id)
            if group is None:
                if self._consumer_saved.pop(group_id, None) is not None:
                    records.append(_group_record({"g": group_id, "deleted": True}, "cgroup"))
                continue
            record = _group_record(self.consumer.export(group), "cgroup")
            if self._consumer_saved.get(group_id) != record:
                self._consumer_saved[group_id] = record
                records.append(record)
        if records:
            self.journal.append(records)
            self.flusher.mark_dirty([self.journal])

    def consumer_heartbeat(self, *args: Any) -> Any:
        result = self.run(self.consumer.heartbeat, *args)
        self.consumer_changed([args[0].group_id])
        return result

    # --- bridging callbacks to futures ------------------------------------------------------------

    def call(self, fn: Callable[..., None], *args: Any) -> asyncio.Future[Any]:
        """Run a coordinator event whose reply may come later; the future resolves with the reply."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def reply(result: Any) -> None:
            if not fut.done():
                fut.set_result(result)

        fn(now_ms(), *args, reply)
        self.reschedule()
        return fut

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = fn(now_ms(), *args)
        self.reschedule()
        return result

    def reschedule(self) -> None:
        deadlines = [
            d for d in (self.coordinator.next_deadline(), self.consumer.next_deadline()) if d is not None
        ]
        deadline = min(deadlines) if deadlines else None
        if deadline is None or deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, (deadline - now_ms()) / 1000), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = now_ms()
        self.coordinator.tick(now)
        fenced = self.consumer.tick(now)
        for group_id, member_id in fenced:
            log.info(
                "consumer group %s: member %s fenced (session or rebalance timeout)", group_id, member_id
            )
        self.consumer_changed({group_id for group_id, _ in fenced})
        self.reschedule()

    def kind(self, group_id: str) -> str | None:
        """'consumer' (KIP-848), 'classic', or None for a group id nobody uses."""
        if group_id in self.consumer.groups:
            return "consumer"
        if group_id in self.coordinator.groups:
            return "classic"
        return None

    # --- offsets ----------------------------------------------------------------------------------

    async def persist(self, records: list[bytes]) -> None:
        if records:
            self.journal.append(records)
            await self.flusher.sync([self.journal])

    def topic_deleted(self, topic: str) -> None:
        """A deleted topic's committed offsets go from every group, as Kafka's coordinator drops them."""
        records: list[bytes] = []
        for group_id in list(self.offsets.groups):
            gone = [tp for tp in self.offsets.groups[group_id] if tp[0] == topic]
            records += self.offsets.delete(group_id, gone)
        if records:
            self.journal.append(records)
            self.flusher.mark_dirty([self.journal])

    def expire_offsets(self) -> None:
        """offsets.retention.minutes: an Empty group's offsets older than the retention go away."""
        retention_ms = self.config["offsets.retention.minutes"] * 60_000
        now = now_ms()
        records: list[bytes] = []
        for group_id in list(self.offsets.groups):
            group = self.coordinator.group(group_id)
            if group is not None and group.state != GroupState.EMPTY:
                continue
            modern = self.consumer.groups.get(group_id)
            if modern is not None and modern.members:
                continue
            records += self.offsets.expire(group_id, now - retention_ms)
            if group_id not in self.offsets.groups and group is not None and not group.members:
                self.coordinator.delete(group_id)
                self.group_deleted(group_id)
        if records:
            self.journal.append(records)
            log.info("expired committed offsets: %d journal records", len(records))
        if self.journal.size_bytes > COMPACT_MIN_BYTES:
            live = (
                self.offsets.snapshot()
                + [
                    _group_record(e)
                    for g in self.coordinator.groups.values()
                    if (e := self.coordinator.export(g)) is not None
                ]
                + list(self._consumer_saved.values())
            )
            if sum(len(r) + 8 for r in live) * 2 < self.journal.size_bytes:
                self.journal.rewrite(live)
                log.info("compacted the offsets journal to %d bytes", self.journal.size_bytes)
