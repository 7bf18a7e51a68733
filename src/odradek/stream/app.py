"""The I/O shell: a consumer, a producer, sinks and stores, driven by a commit discipline.

The loop polls a batch, feeds the events to the guarantee's state machine
(:mod:`odradek.stream.discipline`) and executes the actions it returns; it decides nothing about
commits itself. Everything runs on the thread that calls :meth:`App.run`; the client's rebalance
callbacks run on it too (inside ``consume``), so no state is shared between threads.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KTP

from . import discipline as d
from .config import Guarantee, GuaranteeConfigError, client_configs, dead_letter_producer_config
from .errors import (
    DLQ_ATTEMPTS,
    DLQ_ERROR,
    DLQ_ERROR_TYPE,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_PROCESSOR,
    DLQ_TOPIC,
    ErrorPolicy,
    FencedError,
    ProcessingError,
    StartupError,
    StreamError,
)
from .message import MESSAGE_ID_HEADER, SAME_KEY, Message, Output
from .metrics import StreamMetrics

log = logging.getLogger("odradek.stream")

TP = tuple[str, int]
_TXN_TIMEOUT_S = 30.0
_FENCED_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
_SEEK_ATTEMPTS = 20
_DATABASE_FAILING_S = 60.0  # rewinding and retrying for this long, then the App stops
_LAG_INTERVAL_S = 1.0  # consumer-lag gauges: cached watermarks, so cheap


class _Result:
    """A processor's result computed on the fast path, handed to the general path."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Failed:
    """A processor's first attempt raised on the fast path; the general path goes on with retries."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _AbortNeeded(Exception):
    """Sending an output failed in a way that dooms the open transaction."""

    def __init__(self, error: KafkaException) -> None:
        super().__init__(str(error))
        self.error = error


class TopicSink:
    """Outputs go to ``topic`` (a plain topic name as ``sink=`` means the same)."""

    def __init__(self, topic: str) -> None:
        if not topic:
            raise ValueError("TopicSink needs a topic name")
        self.topic = topic

    def __repr__(self) -> str:
        return f"TopicSink({self.topic!r})"


def _is_sql_sink(sink: object) -> bool:
    return hasattr(sink, "engine") and hasattr(sink, "write")


@dataclass
class _Processor:
    name: str
    fn: Callable[[Message], Any]
    sources: tuple[str, ...]
    sink: Any  # TopicSink | SqlSink | None
    dedup: Any | None
    dedup_key: Callable[[Message], str]
    errors: ErrorPolicy
    marks: list[str] = field(default_factory=list)
    fast: bool = False  # a topic sink and no dedup store: results may take the fast path
    sink_topic: str = ""

    def __post_init__(self) -> None:
        self.fast = isinstance(self.sink, TopicSink) and self.dedup is None
        self.sink_topic = self.sink.topic if isinstance(self.sink, TopicSink) else ""


def _default_dedup_key(msg: Message) -> str:
    return msg.message_id


def _encode(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"a topic sink takes bytes or str values, not {type(v).__name__}")


class App:
    """A stream processing application with one delivery guarantee.

    ``guarantee``: ``"at-most-once"``, ``"at-least-once"`` (default) or ``"exactly-once"``.
    ``instance_id`` names this instance: it becomes ``group.instance.id`` (static membership, so a
    restart gets its partitions back at once) and, under exactly-once, part of the transactional id
    (``<group_id>-<instance_id>``), so a restart fences its predecessor and aborts its open transaction at
    once. Without it an exactly-once instance uses a random transactional id, and an orphaned transaction
    holds read_committed readers back until ``transaction.timeout.ms`` (10 s here).
    ``commit_interval_ms``: how often positions are committed (at-least-once: 1000; exactly-once: 100, as
    Kafka Streams does under exactly-once). Under at-least-once it bounds the duplicates after a crash.
    ``message_ids=True`` stamps each output with a ``message-id`` header derived from its input's
    position (``topic/partition/offset/index``), so that an output sent again after a crash carries the
    same id and a dedup store downstream recognises it. Off by default, as outputs carry only what the
    processor gave them: the header costs about 2 µs per output in the client, a fifth of the
    throughput of a light transform here (``python -m bench.stream``).
    ``on_transaction``: under exactly-once into Kafka, called as ``fn(ordinal, outcome)`` when a
    transaction ends with a known outcome (``"committed"`` or ``"aborted"``); :attr:`transaction` is the
    ordinal (1, 2, ... in this run) of the one open while a processor runs. A transaction whose outcome
    the instance never learned (it was fenced, or the process died) is not reported: it is in doubt.
    Observers such as ``odradek verify`` tag outputs with the ordinal to know which ones were aborted.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        guarantee: str = "at-least-once",
        *,
        instance_id: str | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        commit_interval_ms: int | None = None,
        batch_size: int = 500,
        poll_timeout_ms: int = 100,
        errors: ErrorPolicy | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        startup_timeout_s: float = 15.0,
        message_ids: bool = False,
        on_transaction: Callable[[int, str], None] | None = None,
    ) -> None:
        if not bootstrap_servers:
            raise GuaranteeConfigError("App needs bootstrap_servers")
        if not group_id:
            raise GuaranteeConfigError("App needs a group_id")
        self.guarantee = Guarantee.parse(guarantee)
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.instance_id = instance_id
        if self.guarantee is Guarantee.EXACTLY_ONCE:
            self.transactional_id = f"{group_id}-{instance_id or uuid.uuid4().hex}"
        else:
            self.transactional_id = None
        self._consumer_cfg, self._producer_cfg = client_configs(
            self.guarantee,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            instance_id=instance_id,
            transactional_id=self.transactional_id,
            consumer_config=consumer_config,
            producer_config=producer_config,
        )
        self._user_producer_cfg = dict(producer_config or {})
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_ms / 1000.0
        self.commit_interval_ms = commit_interval_ms
        self.errors = errors or ErrorPolicy()
        self.metrics = StreamMetrics()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.startup_timeout_s = startup_timeout_s
        self.message_ids = message_ids
        self._processors: list[_Processor] = []
        self._by_topic: dict[str, list[_Processor]] = {}
        self._stop_requested = threading.Event()
        self._running = False
        self.bound_metrics_port: int | None = None
        self.on_transaction = on_transaction
        self.transaction: int | None = None  # the open Kafka transaction's ordinal
        self._transactions_begun = 0

    # -- building ---------------------------------------------------------------------------------
    def processor(
        self,
        source: str | Sequence[str],
        sink: Any = None,
        *,
        name: str | None = None,
        dedup: Any | None = None,
        dedup_key: Callable[[Message], str] | None = None,
        errors: ErrorPolicy | None = None,
    ) -> Callable[[Callable[[Message], Any]], Callable[[Message], Any]]:
        """Register ``fn(msg)`` for the records of ``source``; its results go to ``sink``.

        ``sink``: a topic name or :class:`TopicSink` (results: a value, a list of values, or
        :class:`Output` objects), a :class:`~odradek.stream.sql.SqlSink` (results: a row mapping or a
        list of them), or None (results ignored; the function's own effects are the point).
        ``dedup``: a dedup store; records whose ``dedup_key(msg)`` (default: the ``message-id`` header,
        else topic/partition/offset) is in it are skipped, and processed ones are marked once their
        outputs are acknowledged.
        """
        sources = (source,) if isinstance(source, str) else tuple(source)
        if not sources or not all(sources):
            raise ValueError("processor needs at least one source topic")
        if isinstance(sink, str):
            sink = TopicSink(sink)
        if sink is not None and not isinstance(sink, TopicSink) and not _is_sql_sink(sink):
            raise TypeError(f"sink must be a topic name, a TopicSink, a SqlSink or None, not {sink!r}")

        def register(fn: Callable[[Message], Any]) -> Callable[[Message], Any]:
            given = name or getattr(fn, "__name__", "processor")
            if name is None and any(q.name == given for q in self._processors):
                given = f"{given}-{len(self._processors)}"  # e.g. two lambdas
            p = _Processor(
                name=given,
                fn=fn,
                sources=sources,
                sink=sink,
                dedup=dedup,
                dedup_key=dedup_key or _default_dedup_key,
                errors=errors or self.errors,
            )
            self._check_new(p)
            self._processors.append(p)
            for t in sources:
                self._by_topic.setdefault(t, []).append(p)
            return fn

        return register

    def _check_new(self, p: _Processor) -> None:
        if any(q.name == p.name for q in self._processors):
            raise ValueError(f"two processors are named {p.name!r}; pass name=")
        if self.guarantee is not Guarantee.EXACTLY_ONCE:
            return
        sql = [q.sink for q in [*self._processors, p] if _is_sql_sink(q.sink)]
        kafka = [q for q in [*self._processors, p] if isinstance(q.sink, TopicSink)]
        if sql and kafka:
            raise GuaranteeConfigError(
                "guarantee='exactly-once' cannot write one App's results both to Kafka and to SQL "
                "atomically; use one App per kind of sink"
            )
        if len({id(s.engine) for s in sql}) > 1:
            raise GuaranteeConfigError(
                "guarantee='exactly-once' into SQL needs every SqlSink of the App on one engine (one "
                "database transaction)"
            )

    # -- running ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and leave (safe from any thread)."""
        self._stop_requested.set()

    def run(self, *, exit_on_error: bool = True, install_signal_handlers: bool = True) -> None:
        """Process until :meth:`stop`, SIGTERM or SIGINT; then finish, commit and leave the group.

        A fatal error (unreachable broker or database, a fenced instance, a record that failed with
        ``on_failure="stop"``) is logged as one line; with ``exit_on_error`` the process then exits with
        status 1 (2 for start-up errors) instead of raising the :class:`StreamError`.
        """
        if not self._processors:
            raise StreamError("the App has no processors: decorate a function with @app.processor(...)")
        if self._running:
            raise StreamError("App.run is already running")
        self._running = True
        previous = self._install_signals() if install_signal_handlers else {}
        try:
            _Runner(self).run()
        except StreamError as e:
            log.critical("odradek.stream: %s", e)
            if exit_on_error:
                raise SystemExit(e.exit_code) from e
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.metrics.close()
            self._running = False

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: self._stop_requested.set())
        return previous


class _Runner:
    """One run of an App: the clients, the machine, and the action executor."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.g = app.guarantee
        self.m = app.metrics
        self.sql_sinks = list({id(p.sink): p.sink for p in app._processors if _is_sql_sink(p.sink)}.values())
        self.sql_eos = self.g is Guarantee.EXACTLY_ONCE and bool(self.sql_sinks)
        self.sm = d.machine_for(self.g.value, sql=self.sql_eos, commit_interval_ms=app.commit_interval_ms)
        self.consumer: Consumer | None = None
        self._p_cfg: dict[str, Any] = {}
        self.producer: Producer | None = None  # outputs (and dead letters, but under at-most-once)
        self.dlq: Producer | None = None  # dead letters under at-most-once and exactly-once into SQL
        self.offsets: Any = None  # SqlOffsetStore under exactly-once into SQL
        self.batch: list[Any] = []
        self.rows: dict[int, list[Mapping[str, Any]]] = {id(s): [] for s in self.sql_sinks}
        self.delivery_errors: list[str] = []
        self.stopped = False
        self.stop_error: BaseException | None = None
        self.cooperative = False
        self._lag_at = 0.0
        self._assigning: dict[TP, int] | None = None  # positions chosen inside the assign callback
        self._sent: dict[str, int] = {}  # records sent per topic in this batch (metrics, once a batch)
        self._stop_batch: tuple[str, Any] | None = None
        self.batch_positions: dict[TP, int] = {}
        self.batch_counts: dict[str, int] = {}
        self._db_failing_since: float | None = None
        self._reset = app._consumer_cfg.get("auto.offset.reset", "earliest")

    # -- start / close ------------------------------------------------------------------------------
    def start(self) -> None:
        app = self.app
        c_cfg = dict(app._consumer_cfg)
        c_cfg["on_commit"] = self._on_commit
        c_cfg.setdefault("error_cb", self._on_client_error)
        strategy = str(c_cfg.get("partition.assignment.strategy", ""))
        self.cooperative = "cooperative" in strategy or str(c_cfg.get("group.protocol", "")) == "consumer"
        self.consumer = Consumer(c_cfg)
        try:
            self.consumer.list_topics(timeout=app.startup_timeout_s)
        except KafkaException as e:
            raise StartupError(
                f"cannot reach Kafka at {app.bootstrap_servers} within {app.startup_timeout_s:.0f}s: "
                f"{e.args[0].str()}"
            ) from e
        # Exactly-once into Kafka commits positions in transactions even when nothing is output.
        needs_producer = any(isinstance(p.sink, TopicSink) for p in app._processors) or (
            self.g is Guarantee.EXACTLY_ONCE and not self.sql_eos
        )
        needs_dlq = any(p.errors.on_failure == "dead-letter" for p in app._processors)
        if needs_producer or (needs_dlq and self.g is not Guarantee.AT_MOST_ONCE and not self.sql_eos):
            p_cfg = dict(app._producer_cfg)
            p_cfg.setdefault("error_cb", self._on_client_error)
            if self.g is Guarantee.AT_LEAST_ONCE:
                # One callback for the producer, called for failed deliveries only: at-least-once must
                # know that an output was lost before it commits past its input.
                p_cfg["on_delivery"] = self._on_delivery
                p_cfg["delivery.report.only.error"] = True
            self.producer = Producer(p_cfg)
            self._p_cfg = p_cfg
        if needs_dlq and (self.g is Guarantee.AT_MOST_ONCE or self.sql_eos):
            dlq_cfg = dead_letter_producer_config(app.bootstrap_servers, app._user_producer_cfg)
            dlq_cfg.update({"on_delivery": self._on_delivery, "delivery.report.only.error": True})
            self.dlq = Producer(dlq_cfg)
        if self.g is Guarantee.EXACTLY_ONCE and self.producer is not None:
            try:
                self.producer.init_transactions(app.startup_timeout_s)
            except KafkaException as e:
                raise StartupError(
                    f"guarantee='exactly-once' needs transactions, and {app.bootstrap_servers} refused "
                    f"them: {e.args[0].str()}"
                ) from e
        for sink in self.sql_sinks:
            try:
                sink.check()
            except Exception as e:  # the sink's own one-line error
                raise StartupError(str(e)) from e
        for p in app._processors:
            if p.dedup is not None:
                try:
                    p.dedup.check()
                except Exception as e:
                    raise StartupError(str(e)) from e
        if self.sql_eos:
            from .sql import SqlOffsetStore

            self.offsets = SqlOffsetStore(self.sql_sinks[0].engine)
        if app.metrics_port is not None:
            app.bound_metrics_port = self.m.serve(app.metrics_port, app.metrics_host)
        topics = sorted(app._by_topic)
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info(
            "odradek.stream: group %s (%s) subscribed to %s", app.group_id, self.g.value, ", ".join(topics)
        )

    def close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError) as e:
                log.warning("odradek.stream: consumer close: %s", e)
            self.consumer = None
        for prod in (self.producer, self.dlq):
            if prod is None:
                continue
            try:
                prod.flush(10)
            except KafkaException as e:  # a producer already failed fatally (reported before)
                log.info("odradek.stream: producer close: %s", e.args[0].str())

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.start()
            c = self.consumer
            assert c is not None
            while not self.stopped:
                if self.app._stop_requested.is_set() and not self.sm.stopping:
                    self.execute(self.sm.stop())
                    continue
                msgs = c.consume(self.app.batch_size, self.app.poll_timeout_s)
                now = time.monotonic()
                if msgs and not self.stopped:
                    self.handle_batch(msgs, int(now * 1000))
                if not self.stopped:
                    self.execute(self.sm.tick(int(time.monotonic() * 1000)))
                if self.producer is not None:
                    self.producer.poll(0)
                if now - self._lag_at >= _LAG_INTERVAL_S:
                    self._lag_at = now
                    self._update_lag()
        finally:
            self.close()
        if self.stop_error is not None:
            raise self.stop_error

    def handle_batch(self, msgs: list[Any], now_ms: int) -> None:
        for m in msgs:
            if m.error() is not None:
                msgs = self._drop_errors(msgs)
                if not msgs:
                    return
                break
        positions = self._last_positions(msgs)
        self.batch_counts = counts = self._per_topic(msgs)
        for t, n in counts.items():
            self.m.consumed.labels(t).inc(n)
        self.batch = msgs
        self.batch_positions = positions
        self.execute(self.sm.polled(positions, now_ms))
        self.batch = []

    def _last_positions(self, msgs: list[Any]) -> dict[TP, int]:
        """The position after the batch, per partition: found from the end, stopping once every
        assigned partition is seen (records of a partition are in offset order within a batch)."""
        assert self.consumer is not None
        want = len(self.consumer.assignment()) or len(msgs)
        positions: dict[TP, int] = {}
        for m in reversed(msgs):
            tp = (m.topic(), m.partition())
            if tp not in positions:
                positions[tp] = m.offset() + 1
                if len(positions) >= want:
                    break
        return positions

    def _per_topic(self, msgs: list[Any]) -> dict[str, int]:
        if len(self.app._by_topic) == 1:
            return {next(iter(self.app._by_topic)): len(msgs)}
        counts: dict[str, int] = {}
        for m in msgs:
            t = m.topic()
            counts[t] = counts.get(t, 0) + 1
        return counts

    @staticmethod
    def _drop_errors(msgs: list[Any]) -> list[Any]:
        for m in msgs:
            err = m.error()
            if err is None:
                continue
            if err.fatal():
                raise StreamError(f"consumer failed: {err.str()}")
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("odradek.stream: consumer: %s", err.str())
        return [m for m in msgs if m.error() is None]

    # -- actions ----------------------------------------------------------------------------------
    def execute(self, actions: Iterable[d.Action]) -> None:
        for a in actions:
            if self.stopped:
                return
            if isinstance(a, d.Process):
                self.process(a.only)
            elif isinstance(a, d.Commit):
                self.commit(a)
            elif isinstance(a, d.Flush):
                self.flush(a.wait)
            elif isinstance(a, d.BeginTransaction):
                self.begin()
            elif isinstance(a, d.CommitTransaction):
                self.commit_transaction(a.positions)
            elif isinstance(a, d.AbortTransaction):
                self.abort_transaction()
            elif isinstance(a, d.Rewind):
                self.rewind(a)
            elif isinstance(a, d.Claim):
                self.claim(a.partitions)
            elif isinstance(a, d.Seek):
                self.seek(a.positions)
            elif isinstance(a, d.SqlCommit):
                self.sql_commit(a.positions)
            elif isinstance(a, d.Stop):
                self.stopped = True
                self.stop_error = a.error
            else:  # pragma: no cover - every action is handled above
                raise AssertionError(f"unknown action {a!r}")

    # Processing ---------------------------------------------------------------------------------
    def process(self, only: frozenset[TP] | None) -> None:
        """Run the processors over the batch in hand, in order.

        This is the per-record path. An App of one processor with a topic sink and no dedup store takes
        :meth:`_process_one`, where a result of one ``bytes`` value is sent straight away; anything else
        (other results, dedup, SQL rows, several processors, errors and retries) takes the general path
        record by record."""
        started = time.perf_counter()
        msgs = self.batch
        if only is not None:
            kept = [m for m in msgs if (m.topic(), m.partition()) in only]
            if len(kept) != len(msgs):
                self.m.discarded.inc(len(msgs) - len(kept))
            msgs = kept
        seen = self._seen(msgs)
        if len(self.app._processors) == 1 and self.app._processors[0].fast:
            return self._process_one(msgs, only, seen, started)
        # Several processors: each record through each of its processors on the general path.
        route = self.app._by_topic
        n_done = 0
        for m in msgs:
            for p in route[m.topic()]:
                if self._general(p, m, Message(m), seen, None):
                    self._finish(msgs, n_done, only, started)
                    return
            n_done += 1
        self._finish(msgs, n_done, only, started)

    def _process_one(
        self, msgs: list[Any], only: frozenset[TP] | None, seen: dict[str, set[str]], started: float
    ) -> None:
        """The loop of :meth:`process` for an App of one processor with a topic sink: the common case,
        with nothing looked up per record."""
        p = self.app._processors[0]
        fn = p.fn
        sink = p.sink_topic
        stamp = self.app.message_ids
        producer = self.producer
        produce = producer.produce  # type: ignore[union-attr]
        n_done = n_fast = 0  # records done (before the one that stopped the batch), fast sends
        for m in msgs:
            msg = Message(m)
            first: _Result | _Failed | None
            try:
                r = fn(msg)
            except Exception as e:  # its first attempt; the general path retries
                first = _Failed(e)
            else:
                if r.__class__ is bytes:
                    headers = None
                    try:
                        if stamp:
                            mid = f"{m.topic()}/{m.partition()}/{m.offset()}/0".encode()
                            headers = [(MESSAGE_ID_HEADER, mid)]
                            produce(sink, r, m.key(), headers=headers)
                        else:
                            produce(sink, r, m.key())
                        n_fast += 1
                        n_done += 1
                        continue
                    except BufferError:
                        self._produce(producer, sink, {"value": r, "key": m.key(), "headers": headers})
                        n_done += 1
                        continue
                    except KafkaException:
                        pass  # the general path sends it again and judges the error
                first = _Result(r)
            if self._general(p, m, msg, seen, first):
                break
            n_done += 1
        self._sent[sink] = self._sent.get(sink, 0) + n_fast
        self._finish(msgs, n_done, only, started)

    def _general(self, p: _Processor, m: Any, msg: Message, seen: dict[str, set[str]], first: Any) -> bool:
        """One record through one processor the slow way; True when the batch must stop here."""
        key = None
        if p.dedup is not None:
            key = p.dedup_key(msg)
            if key in seen[p.name]:
                self.m.duplicates.labels(p.name).inc()
                return False
        try:
            failure = self._call(p, msg, first)
        except _AbortNeeded as e:  # exactly-once: the transaction cannot commit; abort, rewind
            log.warning("odradek.stream: sending failed, aborting: %s", e.error.args[0].str())
            self._stop_batch = ("abort", e.error)
            return True
        if failure is not None:  # stop: commit what came before this record, then stop
            self._stop_batch = ("failed", failure)
            return True
        if key is not None:  # marked once its outputs are acknowledged (or its letter sent)
            seen[p.name].add(key)
            p.marks.append(key)
        return False

    def _finish(self, msgs: list[Any], n_done: int, only: frozenset[TP] | None, started: float = 0.0) -> None:
        """Report what the batch reached: all of it, or the records before the one that stopped it."""
        if n_done == len(msgs) and only is None:
            done = self.batch_positions
        else:
            done = {}
            for m in msgs[:n_done]:
                done[(m.topic(), m.partition())] = m.offset() + 1
        full = n_done == len(msgs) and len(msgs) == len(self.batch)
        self._note_processed(self.batch_counts if full else self._per_topic(msgs[:n_done]))
        for topic, n in self._sent.items():
            if n:
                self.m.produced.labels(topic).inc(n)
        self._sent.clear()
        if started:
            self.m.batch_latency.observe(time.perf_counter() - started)
        stop, self._stop_batch = self._stop_batch, None
        if self.g is Guarantee.AT_MOST_ONCE and stop is None:
            self._mark_all(conn=None)  # at-most-once marks before anything is sent
        self.execute(self.sm.processed(done))
        if stop is None:
            return
        if stop[0] == "abort":
            self.execute(self.sm.commit_failed(stop[1], retriable=True))
        else:
            self.execute(self.sm.failed(stop[1]))

    def _note_processed(self, per_topic: dict[str, int]) -> None:
        for p in self.app._processors:
            n = sum(per_topic.get(t, 0) for t in p.sources)
            if n:
                self.m.processed.labels(p.name).inc(n)

    def _seen(self, msgs: list[Any]) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for p in self.app._processors:
            if p.dedup is None:
                continue
            keys = [p.dedup_key(Message(m)) for m in msgs if m.topic() in p.sources]
            if not keys:
                seen[p.name] = set()
                continue
            # Processed but not yet marked in the store (marks are written with each commit) counts too.
            pending = set(p.marks)
            seen[p.name] = set(p.dedup.seen(keys)) | {k for k in keys if k in pending}
        return seen

    def _call(
        self, p: _Processor, msg: Message, first: _Result | _Failed | None = None
    ) -> ProcessingError | None:
        """Run ``p`` on ``msg`` with the retry policy and send its results; the error if it must stop.

        Only the processor's own errors (and results of the wrong type) are processing failures. A
        client error while sending is not retried here: fatal ones stop the App, abortable ones (under
        exactly-once) abort and rewind, and any other (an output the broker can never take, such as one
        too large) goes the way of a processing failure, without retries."""
        policy = p.errors
        attempt = 0
        while True:
            attempt += 1
            try:
                if attempt == 1 and first is not None:
                    if isinstance(first, _Failed):
                        raise first.error
                    outputs = self._outputs(p, msg, first.value)
                else:
                    outputs = self._outputs(p, msg, p.fn(msg))
            except Exception as e:  # the user's code: any error is a processing failure
                self.m.failed_attempts.labels(p.name).inc()
                if attempt <= policy.retries:
                    log.warning(
                        "odradek.stream: %s failed on %s/%d@%d (attempt %d): %r",
                        p.name,
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        attempt,
                        e,
                    )
                    time.sleep(policy.backoff_s(attempt))
                    continue
                return self._give_up(p, msg, e, attempt)
            try:
                self._send(p, outputs)
            except KafkaException as e:
                err = e.args[0]
                if err.fatal():
                    raise FencedError(f"the producer failed fatally: {err.str()}") from e
                if err.txn_requires_abort() or (
                    self.g is Guarantee.EXACTLY_ONCE and err.code() != KafkaError.MSG_SIZE_TOO_LARGE
                ):
                    # Under exactly-once a send refused for any reason but the record's own size
                    # (e.g. "erroneous state" once the broker aborted a transaction that outlived
                    # transaction.timeout.ms) is the transaction's failure, not the record's.
                    raise _AbortNeeded(e) from e
                self.m.failed_attempts.labels(p.name).inc()
                return self._give_up(p, msg, e, attempt)
            return None

    def _give_up(
        self, p: _Processor, msg: Message, e: BaseException, attempts: int
    ) -> ProcessingError | None:
        if p.errors.on_failure == "dead-letter":
            self._dead_letter(p, msg, e, attempts)
            return None
        err = ProcessingError(
            f"processor {p.name!r} failed {attempts} time(s) on {msg.topic}/{msg.partition} offset "
            f"{msg.offset}: {type(e).__name__}: {e}",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            attempts=attempts,
        )
        err.__cause__ = e
        return err

    def _outputs(self, p: _Processor, msg: Message, result: Any) -> list[Any]:
        """The processor's result as sendable outputs (raises TypeError for a result of the wrong kind)."""
        if result is None or p.sink is None:
            return []
        # None in a list is "no output" (a tombstone is Output(None)).
        items = [i for i in result if i is not None] if isinstance(result, list | tuple) else [result]
        if isinstance(p.sink, TopicSink):
            return [self._prepare(p.sink.topic, msg, i, item) for i, item in enumerate(items)]
        for item in items:
            if not isinstance(item, Mapping):
                raise TypeError(f"a SqlSink takes row mappings, not {type(item).__name__}")
        return items

    def _send(self, p: _Processor, outputs: list[Any]) -> None:
        if not outputs:
            return
        if isinstance(p.sink, TopicSink):
            for topic, kw in outputs:
                self._produce(self.producer, topic, kw)
        else:
            self.rows[id(p.sink)].extend(outputs)

    def _prepare(self, topic: str, msg: Message, i: int, item: Any) -> tuple[str, dict[str, Any]]:
        # Output ids are derived from the input's position, so a record processed twice (at-least-once)
        # produces outputs with the same ids, and a dedup store downstream recognises them.
        stamp = self.app.message_ids
        mid = f"{msg.topic}/{msg.partition}/{msg.offset}/{i}".encode() if stamp else b""
        if isinstance(item, Output):
            headers = [(k, _encode(v)) for k, v in item.headers or ()]
            if stamp and not any(k == MESSAGE_ID_HEADER for k, _ in headers):
                headers.append((MESSAGE_ID_HEADER, mid))
            kw: dict[str, Any] = {
                "value": _encode(item.value),
                "key": msg.key if item.key is SAME_KEY else _encode(item.key),
                "headers": headers or None,
            }
            if item.partition is not None:
                kw["partition"] = item.partition
            return item.topic or topic, kw
        headers = [(MESSAGE_ID_HEADER, mid)] if stamp else None
        return topic, {"value": _encode(item), "key": msg.key, "headers": headers}

    def _produce(self, producer: Producer | None, topic: str, kw: dict[str, Any]) -> None:
        assert producer is not None
        while True:
            try:
                producer.produce(topic, **kw)
                break
            except BufferError:  # the client's queue is full: serve delivery reports, then again
                producer.poll(0.05)
        self._sent[topic] = self._sent.get(topic, 0) + 1

    def _dead_letter(self, p: _Processor, msg: Message, e: BaseException, attempts: int) -> None:
        topic = p.errors.dead_letter_topic_for(msg.topic)
        headers = [
            *msg.headers,
            (DLQ_ERROR, f"{type(e).__name__}: {e}".encode()[:8192]),
            (DLQ_ERROR_TYPE, type(e).__name__.encode()),
            (DLQ_TOPIC, msg.topic.encode()),
            (DLQ_PARTITION, str(msg.partition).encode()),
            (DLQ_OFFSET, str(msg.offset).encode()),
            (DLQ_ATTEMPTS, str(attempts).encode()),
            (DLQ_PROCESSOR, p.name.encode()),
        ]
        kw = {"value": msg.value, "key": msg.key, "headers": headers}
        log.warning(
            "odradek.stream: %s gave up on %s/%d@%d after %d attempt(s); sent to %s: %r",
            p.name,
            msg.topic,
            msg.partition,
            msg.offset,
            attempts,
            topic,
            e,
        )
        if self.dlq is not None:
            self._produce(self.dlq, topic, kw)
            if self.g is Guarantee.AT_MOST_ONCE:
                self._flush_dlq()
        else:
            self._produce(self.producer, topic, kw)  # same transaction / same acknowledgement as outputs
        self.m.dead_lettered.labels(p.name).inc()

    def _flush_dlq(self) -> None:
        assert self.dlq is not None
        if self.dlq.flush(30) or self.delivery_errors:
            errors, self.delivery_errors = self.delivery_errors, []
            raise StreamError(f"dead letters not acknowledged: {'; '.join(errors) or 'flush timed out'}")

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.delivery_errors.append(f"{msg.topic()}: {err.str()}")

    # Commits --------------------------------------------------------------------------------------
    def commit(self, a: d.Commit) -> None:
        assert self.consumer is not None
        tps = [KTP(t, p, o) for (t, p), o in a.positions.items()]
        if not a.sync:
            try:
                self.consumer.commit(offsets=tps, asynchronous=True)
            except KafkaException as e:
                self.m.commits.labels("failed").inc()
                log.info("odradek.stream: commit: %s", e.args[0].str())
            return
        started = time.perf_counter()
        try:
            result = self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            self.m.commits.labels("failed").inc()
            log.info("odradek.stream: commit failed: %s", e.args[0].str())
            self.execute(self.sm.commit_failed(e, retriable=e.args[0].retriable()))
            return
        ok = {(tp.topic, tp.partition): tp.offset for tp in result or () if tp.error is None}
        self.m.commit_latency.observe(time.perf_counter() - started)
        self.m.commits.labels("ok").inc()
        self.execute(self.sm.committed(ok))

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        # Answers to asynchronous commits (at-least-once intervals; exactly-once into SQL's copies).
        if err is not None:
            self.m.commits.labels("failed").inc()
            log.info("odradek.stream: commit: %s", err.str())
            return
        self.m.commits.labels("ok").inc()
        if isinstance(self.sm, d.AtLeastOnce):
            mine = self.sm.processed_positions  # not partitions revoked since the commit was sent
            ok = {
                (tp.topic, tp.partition): tp.offset
                for tp in partitions
                if tp.error is None and (tp.topic, tp.partition) in mine
            }
            self.execute(self.sm.committed(ok))

    def flush(self, wait: bool) -> None:
        if not wait:
            if self.producer is not None:
                self.producer.poll(0)
            self._write_rows_unchecked()
            return
        for prod in (self.producer, self.dlq):
            if prod is not None and prod.flush(60):
                self.delivery_errors.append("outputs still queued after 60 s")
        if self.sql_eos:
            if self.delivery_errors:
                errors, self.delivery_errors = self.delivery_errors, []
                self.execute(self.sm.delivery_failed(StreamError("; ".join(errors))))
            else:
                self.execute(self.sm.acknowledged())
            return
        try:
            self._write_rows()
        except Exception as e:  # the database's error: outputs not acknowledged
            self._database_failed(e)
            log.warning(
                "odradek.stream: writing rows failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG)
            )
            self.delivery_errors.append(f"database: {e}")
        if self.delivery_errors:
            errors, self.delivery_errors = self.delivery_errors, []
            log.warning(
                "odradek.stream: outputs not acknowledged, processing again from the last commit: %s",
                errors[0],
            )
            self._clear_marks()
            self.execute(self.sm.delivery_failed(StreamError("; ".join(errors))))
            return
        self._db_failing_since = None
        self._mark_all(conn=None)
        self.execute(self.sm.acknowledged())

    def _database_failed(self, e: BaseException) -> None:
        """A database that keeps failing stops the App (it would otherwise rewind and retry forever)."""
        now = time.monotonic()
        if self._db_failing_since is None:
            self._db_failing_since = now
        elif now - self._db_failing_since > _DATABASE_FAILING_S:
            raise StreamError(
                f"the database has failed for {_DATABASE_FAILING_S:.0f}s; last error: {e}"
            ) from e

    def _write_rows(self) -> None:
        """At-least-once into SQL: each sink's rows (and marks of dedup stores on its engine) in one
        transaction of its own."""
        for sink in self.sql_sinks:
            rows = self.rows[id(sink)]
            if not rows:
                continue
            with sink.engine.begin() as conn:
                sink.write(conn, rows)
                self._mark_all(conn=conn, engine=sink.engine)
            self.m.written.labels(self._table(sink)).inc(len(rows))
            rows.clear()

    def _write_rows_unchecked(self) -> None:
        """At-most-once: rows go once; a failure loses them (that is the promise), loudly."""
        try:
            self._write_rows()
        except Exception as e:
            n = sum(len(r) for r in self.rows.values())
            log.warning("odradek.stream: at-most-once: %d row(s) lost: %s", n, e)
            for r in self.rows.values():
                r.clear()

    @staticmethod
    def _table(sink: Any) -> str:
        return str(getattr(sink, "table_name", "?"))

    def _mark_all(self, conn: Any, engine: Any = None) -> None:
        for p in self.app._processors:
            if not p.marks or p.dedup is None:
                continue
            same_db = engine is not None and getattr(p.dedup, "engine", None) is engine
            if conn is not None and not same_db:
                continue
            p.dedup.mark(p.marks, conn=conn) if conn is not None else p.dedup.mark(p.marks)
            p.marks = []

    def _clear_marks(self) -> None:
        for p in self.app._processors:
            p.marks = []

    # Transactions ------------------------------------------------------------------------------
    def begin(self) -> None:
        assert self.producer is not None
        try:
            self.producer.begin_transaction()
            app = self.app
            app._transactions_begun += 1
            app.transaction = app._transactions_begun
        except KafkaException as e:  # only a fatal producer refuses to begin
            raise FencedError(
                f"transactional id {self.app.transactional_id!r} cannot begin a transaction: "
                f"{e.args[0].str()}"
            ) from e

    def commit_transaction(self, positions: dict[TP, int]) -> None:
        assert self.producer is not None and self.consumer is not None
        started = time.perf_counter()
        deadline = time.monotonic() + _TXN_TIMEOUT_S
        try:
            if positions:
                tps = [KTP(t, p, o) for (t, p), o in positions.items()]
                self.producer.send_offsets_to_transaction(
                    tps, self.consumer.consumer_group_metadata(), _TXN_TIMEOUT_S
                )
            while True:
                try:
                    self.producer.commit_transaction(_TXN_TIMEOUT_S)
                    break
                except KafkaException as e:
                    if e.args[0].retriable() and time.monotonic() < deadline:
                        continue
                    raise
        except KafkaException as e:
            err = e.args[0]
            fatal = err.fatal() or err.code() in _FENCED_CODES
            self.m.transactions.labels("kafka", "failed").inc()
            if fatal:
                log.error("odradek.stream: transactional id %s: %s", self.app.transactional_id, err.str())
                fenced = FencedError(
                    f"transactional id {self.app.transactional_id!r} was fenced ({err.str()}): another "
                    f"instance with the same instance_id took over, or this one paused past "
                    f"transaction.timeout.ms; this instance stops"
                )
                self.execute(self.sm.commit_failed(fenced, fatal=True))
            else:
                log.warning("odradek.stream: transaction aborted, rewinding: %s", err.str())
                self._clear_marks()
                self.execute(self.sm.commit_failed(e, retriable=True))
            return
        self.m.commit_latency.observe(time.perf_counter() - started)
        self.m.transactions.labels("kafka", "committed").inc()
        self._ended("committed")
        self._mark_all(conn=None)
        self.execute(self.sm.committed(positions))

    def abort_transaction(self) -> None:
        assert self.producer is not None
        try:
            self.producer.abort_transaction(_TXN_TIMEOUT_S)
            self.m.transactions.labels("kafka", "aborted").inc()
            self._ended("aborted")
        except KafkaException as e:
            err = e.args[0]
            if err.fatal() or err.code() in _FENCED_CODES:
                raise FencedError(
                    f"cannot abort the transaction of {self.app.transactional_id!r} ({err.str()}): another "
                    f"instance with the same instance_id took over, or this one paused past "
                    f"transaction.timeout.ms; this instance stops"
                ) from e
            self._renew_producer(err)

    def _renew_producer(self, err: Any) -> None:
        """The transaction cannot be ended from this producer (seen: INVALID_TXN_STATE after its
        coordinator's broker crashed mid-transaction on a cluster). A new producer with the same
        transactional id resolves it: its init_transactions makes the coordinator finish the old
        transaction (abort it, or complete a commit already decided) and fences the old producer. Its
        outcome stays unknown here (not reported to on_transaction); the rewind that follows reads the
        group's committed positions, which tell."""
        log.warning(
            "odradek.stream: cannot end the transaction (%s); starting a new producer for %s",
            err.str(),
            self.app.transactional_id,
        )
        self.m.transactions.labels("kafka", "unknown").inc()
        self.app.transaction = None
        old, self.producer = self.producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.purge()
        producer = Producer(self._p_cfg)
        try:
            producer.init_transactions(_TXN_TIMEOUT_S)
        except KafkaException as e:
            raise FencedError(
                f"transactional id {self.app.transactional_id!r} could not start again after a failed "
                f"transaction ({e.args[0].str()}); this instance stops"
            ) from e
        self.producer = producer

    def _ended(self, outcome: str) -> None:
        app = self.app
        ordinal, app.transaction = app.transaction, None
        if app.on_transaction is not None and ordinal is not None:
            try:
                app.on_transaction(ordinal, outcome)
            except Exception:  # an observer's bug must not change what the App does
                log.exception("odradek.stream: on_transaction callback failed")

    _COORDINATOR_MOVING = (
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._WAIT_COORD,
    )

    def _committed_positions(self, tps: list[Any]) -> list[Any]:
        """The group's committed positions. A coordinator that moves (its broker crashed, or leadership
        of the offsets partition changed) answers NOT_COORDINATOR and the like, which the client does
        not retry on this call: asked again until ``_TXN_TIMEOUT_S`` has passed."""
        assert self.consumer is not None
        deadline = time.monotonic() + _TXN_TIMEOUT_S
        while True:
            try:
                return self.consumer.committed(tps, timeout=max(1.0, deadline - time.monotonic()))
            except KafkaException as e:
                err = e.args[0]
                moving = err.retriable() or err.code() in self._COORDINATOR_MOVING
                if not moving or time.monotonic() >= deadline:
                    raise StreamError(f"cannot read committed offsets to rewind: {err.str()}") from e
                log.warning("odradek.stream: reading committed offsets again: %s", err.str())
                time.sleep(0.2)

    def rewind(self, a: d.Rewind) -> None:
        assert self.consumer is not None
        self.m.rewinds.inc()
        for rows in self.rows.values():
            rows.clear()
        self._clear_marks()
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        targets: dict[TP, int] = {tp: o for tp, o in (a.positions or {}).items() if tp in assigned}
        ask: set[TP] = set()
        if a.positions is None and a.partitions is None:
            ask = assigned
        elif a.partitions is not None:
            ask = set(a.partitions) & assigned
        if ask:
            committed = self._committed_positions([KTP(t, p) for t, p in ask])
            for tp in committed:
                targets[(tp.topic, tp.partition)] = tp.offset
        self.seek(targets)

    def seek(self, positions: Mapping[TP, int]) -> None:
        assert self.consumer is not None
        for (t, p), o in positions.items():
            if o < 0:
                o = OFFSET_END if self._reset == "latest" else OFFSET_BEGINNING
            if self._assigning is not None:
                # Inside the assignment callback: the positions become the assignment's own offsets
                # (a seek there would race the assignment, which starts from Kafka's committed offset).
                self._assigning[(t, p)] = o
                continue
            for attempt in range(_SEEK_ATTEMPTS):
                try:
                    self.consumer.seek(KTP(t, p, o))
                    break
                except KafkaException as e:
                    # Carrying on from the current position could skip records (after an abort): stop
                    # instead, once the client has had time to start fetching the partition.
                    if attempt == _SEEK_ATTEMPTS - 1:
                        raise StreamError(f"cannot seek {t}/{p} to {o}: {e.args[0].str()}") from e
                    time.sleep(0.1)

    # Exactly-once into SQL ----------------------------------------------------------------------
    def claim(self, partitions: frozenset[TP]) -> None:
        try:
            claims = self.offsets.claim(self.app.group_id, sorted(partitions))
        except Exception as e:
            raise StreamError(f"cannot claim partitions in the database: {e}") from e
        self.execute(self.sm.claimed(claims))

    def sql_commit(self, positions: Mapping[TP, tuple[int, int]]) -> None:
        from .sql import Fenced

        sink = self.sql_sinks[0]
        started = time.perf_counter()
        try:
            with sink.engine.begin() as conn:
                self.offsets.commit(conn, self.app.group_id, positions)
                n = 0
                for s in self.sql_sinks:
                    rows = self.rows[id(s)]
                    if rows:
                        s.write(conn, rows)
                        n += len(rows)
                self._mark_all(conn=conn, engine=sink.engine)
        except Fenced as e:
            self.m.transactions.labels("sql", "fenced").inc()
            log.warning(
                "odradek.stream: fenced on %s: another instance owns them now; rolled back",
                ", ".join(f"{t}/{p}" for t, p in e.partitions),
            )
            self.execute(self.sm.fenced(e.partitions))
            return
        except Exception as e:  # the database's error: rolled back, processed again
            self.m.transactions.labels("sql", "failed").inc()
            log.warning("odradek.stream: database commit failed, rewinding: %s", e)
            self._database_failed(e)
            self.execute(self.sm.commit_failed(e, retriable=True))
            return
        self._db_failing_since = None
        for r in self.rows.values():
            r.clear()
        self._mark_all(conn=None)
        self.m.commit_latency.observe(time.perf_counter() - started)
        self.m.transactions.labels("sql", "committed").inc()
        self.m.written.labels(self._table(sink)).inc(n)
        self.execute(self.sm.committed({tp: o for tp, (o, _e) in positions.items()}))

    # Rebalance callbacks (run inside consume) -----------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        self.m.rebalances.labels("assigned").inc()
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self._assigning = {}
        try:
            self.execute(self.sm.assigned(tps, int(time.monotonic() * 1000)))
            for tp in partitions:
                o = self._assigning.get((tp.topic, tp.partition))
                if o is not None:
                    tp.offset = o
        finally:
            self._assigning = None
        if self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        self.m.rebalances.labels("revoked").inc()
        tps = [(tp.topic, tp.partition) for tp in partitions]
        if not self.stopped:
            self.execute(self.sm.revoked(tps))
        if self.cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _on_lost(self, consumer: Consumer, partitions: list[Any]) -> None:
        """Partitions taken away without a revocation (session expired): never commit for them."""
        self.m.rebalances.labels("lost").inc()
        tps = [(tp.topic, tp.partition) for tp in partitions]
        log.warning(
            "odradek.stream: partitions lost (session expired): %s", ", ".join(f"{t}/{p}" for t, p in tps)
        )
        if not self.stopped:
            self.execute(self.sm.lost(tps))
        if self.cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _on_client_error(self, err: Any) -> None:
        if err.fatal():
            log.error("odradek.stream: fatal client error: %s", err.str())
        else:
            log.debug("odradek.stream: client: %s", err.str())

    def _update_lag(self) -> None:
        c = self.consumer
        if c is None:
            return
        try:
            parts = c.assignment()
            if not parts:
                return
            for tp in c.position(parts):
                if tp.offset < 0:
                    continue
                _lo, hi = c.get_watermark_offsets(tp, cached=True)
                if hi >= 0:
                    self.m.lag.labels(tp.topic, str(tp.partition)).set(max(0, hi - tp.offset))
        except KafkaException:
            return
