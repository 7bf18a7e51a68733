"""The I/O side of transactions: producer ids, the coordinator's journal, markers, timeouts.

Ending a transaction is made crash-safe by order: the Prepare state is fsynced to the journal first;
then markers go to every partition and staged offsets are settled, and those are fsynced; then the
client is answered. That is two fsync rounds before EndTxn answers (Kafka, which writes its markers after
answering, has one). A broker that dies after the Prepare finds it on restart and finishes the job (a
marker written twice is harmless: the second closes nothing).

The Complete state is journaled without waiting for its fsync (that runs in the background within
log.flush.interval.ms, or sooner with the next journal fsync someone waits for): until it is on disk a
crash only replays the Prepare, which writes markers that close nothing. It cannot close a later
transaction of the same producer either: that one starts with AddPartitionsToTxn or AddOffsetsToTxn,
whose journal records are fsynced before they are answered and come after the Complete state in the same
file, so by the time any later transactional data exists the Complete state is durable.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ..coordinator.transactions import Completion, TransactionCoordinator, TxnConfig
from ..log.journal import Journal
from .clock import now_ms
from .handlers._common import LEADER_EPOCH, find_partition
from .producer_ids import ProducerIdManager

log = logging.getLogger("odradek.transactions")

TXN_JOURNAL = "__odradek/transactions.journal"
COMPACT_MIN_BYTES = 8 * 1024 * 1024
COORDINATOR_EPOCH = 0


class TransactionService:
    def __init__(self, broker: Any, data_dir: Path) -> None:
        self.broker = broker
        self.producer_ids = ProducerIdManager(data_dir)
        self.coordinator = TransactionCoordinator(
            self.producer_ids.allocate,
            TxnConfig(
                max_timeout_ms=broker.config["transaction.max.timeout.ms"],
                id_expiration_ms=broker.config["transactional.id.expiration.ms"],
            ),
        )
        self.journal = Journal(data_dir / TXN_JOURNAL)
        self._timer: asyncio.TimerHandle | None = None
        self._lazy_flush: asyncio.TimerHandle | None = None
        self._interrupted: list[Completion] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        self.producer_ids.open()
        self._interrupted = self.coordinator.replay(self.journal.open())
        log.info("restored %d transactional ids", len(self.coordinator.txns))

    async def start(self) -> None:
        """Finish transactions a crash interrupted between Prepare and Complete."""
        for completion in self._interrupted:
            log.info(
                "finishing interrupted transaction %s (%s)",
                completion.transactional_id,
                "commit" if completion.commit else "abort",
            )
            await self.finish(completion)
        self._interrupted = []
        self.reschedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._lazy_flush is not None:
            self._lazy_flush.cancel()  # journal.close() below fsyncs what it would have
        self.journal.close()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- persistence ------------------------------------------------------------------------------

    async def persist(self) -> None:
        records = self.coordinator.take_records()
        if records:
            self.journal.append(records)
            await self.broker.flusher.sync([self.journal])

    def persist_soon(self) -> None:
        """Queue the coordinator's records for the next group commit (for changes nobody waits on)."""
        records = self.coordinator.take_records()
        if records:
            self.journal.append(records)
            self.broker.flusher.mark_dirty([self.journal])

    def persist_later(self) -> None:
        """Journal the coordinator's records now and fsync them within log.flush.interval.ms (or sooner,
        with the next record someone waits for), for records whose loss a restart repairs. Not flushing at
        once keeps that fsync from running just when the producer's next request needs the journal."""
        records = self.coordinator.take_records()
        if records:
            self.journal.append(records)
            if self._lazy_flush is None:
                delay_s = max(0.01, self.broker.config["log.flush.interval.ms"] / 1000)
                self._lazy_flush = asyncio.get_running_loop().call_later(delay_s, self._flush_lazily)

    def _flush_lazily(self) -> None:
        self._lazy_flush = None
        self.broker.flusher.mark_dirty([self.journal])

    # --- completing transactions ------------------------------------------------------------------

    async def finish(self, completion: Completion) -> None:
        broker = self.broker
        await self.persist()  # the Prepare state is durable before any marker exists
        now = now_ms()
        touched = []
        for topic, partition in sorted(completion.partitions):
            plog = find_partition(broker, topic, partition)
            if plog is None:
                continue  # deleted meanwhile: nothing to mark
            plog.append_marker(
                completion.producer_id,
                completion.producer_epoch,
                completion.commit,
                COORDINATOR_EPOCH,
                leader_epoch=LEADER_EPOCH,
                now_ms=now,
            )
            touched.append(plog)
        offset_records: list[bytes] = []
        for group_id in sorted(completion.groups):
            offset_records += broker.groups.offsets.complete_txn(
                group_id, completion.producer_id, completion.commit
            )
        durable: list[Any] = list(touched)
        if offset_records:
            broker.groups.journal.append(offset_records)
            durable.append(broker.groups.journal)
        await broker.flusher.sync(durable)
        self.coordinator.complete(now_ms(), completion)
        self.broker.metrics.transaction_ended(completion.commit)
        self.persist_later()  # no wait: see the module docstring
        for plog in touched:
            broker.waiters.notify(plog)
        log.info(
            "transaction %s (producer %d epoch %d) %s on %d partitions",
            completion.transactional_id,
            completion.producer_id,
            completion.producer_epoch,
            "committed" if completion.commit else "aborted",
            len(touched),
        )
        self.maybe_compact()

    def finish_in_background(self, completion: Completion) -> None:
        task = asyncio.get_running_loop().create_task(self.finish(completion))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def maybe_compact(self) -> None:
        if self.journal.size_bytes > COMPACT_MIN_BYTES:
            live = self.coordinator.snapshot()
            if sum(len(r) + 8 for r in live) * 2 < self.journal.size_bytes:
                self.journal.rewrite(live)

    # --- timeouts ---------------------------------------------------------------------------------

    def reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.coordinator.next_deadline()
        # Also wake up now and then for transactional.id expiry.
        delay_s = 60.0 if deadline is None else max(0.0, (deadline - now_ms()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(min(delay_s, 60.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for completion in self.coordinator.expire(now_ms()):
            log.info(
                "transaction %s timed out: fencing producer %d and aborting",
                completion.transactional_id,
                completion.producer_id,
            )
            self.broker.metrics.transaction_timed_out()
            self.finish_in_background(completion)
        self.persist_soon()
        self.reschedule()
