"""The log cleaner's schedule: compacts the partitions of ``cleanup.policy=compact`` topics, one at a time.

Like Kafka's cleaner thread (``log.cleaner.threads=1``): each round walks the compacted partitions, plans a
pass for each on the event loop (cheap: segment sizes and timestamps), runs it in a worker thread (reading,
key mapping, writing the cleaned segments), and swaps the result in on the loop. A round that found
nothing to clean sleeps ``log.cleaner.backoff.ms``. Topic and broker configs are read afresh every pass,
so altered configs apply from the next pass on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..log.cleaner import CleanerConfig, CleanerError
from ..log.partition import CleaningAborted, CleanJob, PartitionLog
from .clock import now_ms

if TYPE_CHECKING:
    from .server import Broker

log = logging.getLogger("odradek.cleaner")

COMMIT_RETRIES = 200  # a swap waits for an in-flight flush this many times ...
COMMIT_RETRY_S = 0.005  # ... this long each, then the pass is given up (and done again later)
T = TypeVar("T")


def cleaner_config(topic_configs: dict[str, Any], broker_config: Any) -> CleanerConfig:
    return CleanerConfig(
        delete_retention_ms=topic_configs["delete.retention.ms"],
        min_compaction_lag_ms=topic_configs["min.compaction.lag.ms"],
        max_compaction_lag_ms=topic_configs["max.compaction.lag.ms"],
        min_cleanable_dirty_ratio=topic_configs["min.cleanable.dirty.ratio"],
        segment_bytes=topic_configs["segment.bytes"],
        index_max_bytes=topic_configs["segment.index.bytes"],
        dedupe_buffer_bytes=broker_config["log.cleaner.dedupe.buffer.size"],
    )


class LogCleanerService:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._abort = threading.Event()  # set when the broker stops: a running pass gives up

    async def run(self) -> None:
        await asyncio.sleep(self._backoff_s())  # the broker serves first; cleaning can wait a moment
        while True:
            config = self.broker.config
            backoff_s = self._backoff_s()
            cleaned = 0
            if config["log.cleaner.enable"]:
                for topic in list(self.broker.state.topics.values()):
                    if "compact" not in str(topic.effective.get("cleanup.policy", "")):
                        continue
                    for plog in list(topic.partitions):
                        cleaned += await self._clean(plog, cleaner_config(topic.effective, config))
            await asyncio.sleep(0 if cleaned else backoff_s)

    def _backoff_s(self) -> float:
        return max(0.01, self.broker.config["log.cleaner.backoff.ms"] / 1000)

    async def _clean(self, plog: PartitionLog, config: CleanerConfig) -> int:
        job = plog.plan_clean(config, now_ms())
        if job is None:
            return 0
        try:
            await self._in_thread(plog.run_clean, job, self._abort)
        except CleaningAborted:
            return 0
        except (CleanerError, OSError) as e:
            log.warning("log cleaner: giving up a pass over %s: %s", plog.directory.name, e)
            return 0
        swapped = await self._commit(plog, job)
        if swapped:
            with contextlib.suppress(OSError):
                await self._in_thread(plog.write_cleaner_checkpoint)
            stats = job.stats
            if stats is not None:
                log.info(
                    "log cleaner: %s cleaned up to offset %d (dirty ratio %.2f): %d of %d records and "
                    "%d of %d bytes kept, %d tombstones, %d aborted records and %d markers removed",
                    plog.directory.name,
                    job.map_end,
                    job.plan.dirty_ratio,
                    stats.records_kept,
                    stats.records_read,
                    stats.bytes_written,
                    stats.bytes_read,
                    stats.tombstones_removed,
                    stats.aborted_removed,
                    stats.markers_removed,
                )
        return 1 if swapped else 0

    async def _commit(self, plog: PartitionLog, job: CleanJob) -> int:
        for _ in range(COMMIT_RETRIES):
            swapped = plog.commit_clean(job)
            if swapped >= 0:
                return swapped
            await asyncio.sleep(COMMIT_RETRY_S)
        for prepared in job.prepared:
            prepared.discard()
        job.prepared.clear()
        return 0

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker; when the broker stops meanwhile, ask it to give up and wait for it, so
        no cleaning thread outlives the logs it writes."""
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._abort.set()
            with contextlib.suppress(BaseException):
                await future
            raise
