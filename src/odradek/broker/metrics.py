"""The broker's Prometheus metrics, served over HTTP when ``metrics.listen`` is set (off by default).

Two kinds of numbers. Events are counted as they happen. Those of every request (requests, errors,
latency, bytes and records in and out) go into plain dicts owned by the event loop (HotCounts), a dict
lookup and an add per request or partition, never work per record: records are counted from the batch
headers' record-count field. The rare ones (fsyncs, which run in worker threads; transactions ended;
rebalances; connections) go into prometheus_client metrics. State (log sizes and offsets, consumer-group
lag and members, open transactions and connections) is read at scrape time.

The endpoint is prometheus_client's own HTTP server (a thread; HTTP and the exposition formats are the
library's, not ours). The event loop owns broker state and mutates its dicts without locks, so a scrape
thread never iterates them: the collector posts a snapshot function to the loop
(``asyncio.run_coroutine_threadsafe``) and waits for the plain tuples it returns. A scrape therefore
costs the loop one pass over topics and groups, and sees a consistent picture between two loop steps.

prometheus_client is an optional extra (``odradek[metrics]``); this module imports it only when the
endpoint is turned on, so the plain broker install runs without it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kio.schema.errors import ErrorCode

from ..config import BrokerConfig, ConfigError
from ..coordinator.groups import GroupState
from ..coordinator.transactions import TxnState
from ..protocol.apis import ApiKey
from ..protocol.records import ATTR_CONTROL, HEADER_SIZE, LOG_OVERHEAD

log = logging.getLogger("odradek.metrics")

LOOPBACK = "127.0.0.1"
# A scrape waits at most this long for the event loop to hand over its snapshot (a stuck loop must not
# pile up scrape threads); the state families are left out of that scrape.
SNAPSHOT_TIMEOUT_S = 5.0
# Per-partition and per-group-partition series in one scrape (log offsets, lag). Past it the rest is
# left out and counted in odradek_metrics_series_omitted, so a broker with a huge number of partitions
# cannot make a scrape unbounded in time and memory.
STATE_SERIES_MAX = 50_000

FSYNC_SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Fetch long-polls for up to 30 s (fetch.MAX_WAIT_CAP_MS), hence the last bucket.
REQUEST_SECONDS_BUCKETS = (*FSYNC_SECONDS_BUCKETS, 30.0)
FSYNC_BATCH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# Plain ints: comparing with an IntEnum member costs a class attribute lookup on every request.
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
# The consumer-group APIs after which a group's generation (classic) or epoch (KIP-848) may have moved.
_GROUP_APIS = frozenset(
    int(k)
    for k in (ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP, ApiKey.LEAVE_GROUP, ApiKey.CONSUMER_GROUP_HEARTBEAT)
)
_OPEN_TXN = frozenset(
    (TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE)
)
# batchLength at 8, attributes at 21, recordCount at 57 of the 61-byte record batch v2 header.
_BATCH_FIELDS = struct.Struct(">8xi9xh34xi")
assert _BATCH_FIELDS.size == HEADER_SIZE


# --- pure helpers ---------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int] | None:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (loopback) as (host, port); None for empty (off)."""
    text = value.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise ConfigError(
            f"metrics.listen: expected HOST:PORT or :PORT (loopback), or empty to turn the endpoint off, "
            f"got {value!r}"
        )
    return host or LOOPBACK, int(port)


def api_name(api_key: int) -> str:
    """Kafka's name of an API as its request metrics spell it: ``Produce``, ``FindCoordinator``."""
    try:
        return "".join(part.capitalize() for part in ApiKey(api_key).name.split("_"))
    except ValueError:
        return str(api_key)


def error_name(code: int) -> str:
    """Kafka's name of an error code, as in its ErrorsPerSec metric: ``UNKNOWN_TOPIC_OR_PARTITION``."""
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return str(code)


def response_errors(response: dict[str, Any], out: list[int] | None = None) -> list[int]:
    """Every non-zero ``error_code`` in a response, top level and per topic / partition / member.

    Walks dicts and lists of dicts only; lists of anything else (a Fetch partition's stored batches)
    are skipped after one look at their first item.
    """
    if out is None:
        out = []
    for key, value in response.items():
        if key == "error_code":
            if value:
                out.append(value)
        elif type(value) is list and value and type(value[0]) is dict:
            for item in value:
                response_errors(item, out)
    return out


def batch_totals(chunks: Iterable[bytes | memoryview]) -> tuple[int, int]:
    """(bytes, records) of whole stored batches, from their headers; control batches hold no records."""
    nbytes = records = 0
    for chunk in chunks:
        size = len(chunk)
        nbytes += size
        pos = 0
        while pos + HEADER_SIZE <= size:
            length, attributes, count = _BATCH_FIELDS.unpack_from(chunk, pos)
            if not attributes & ATTR_CONTROL:
                records += count
            pos += length + LOG_OVERHEAD
    return nbytes, records


class LoopHistogram:
    """One histogram's bucket counts, written by the event loop only.

    Written by hand rather than with prometheus_client's Histogram, which is made for threaded programs:
    it takes a mutex for every observation and scans its buckets one by one, several microseconds per
    request here. The loop is the only writer, so plain ints and a bisect do; a scrape copies them on the
    loop and hands them to the library's HistogramMetricFamily for the exposition.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets are "less or equal"
        self.total += value

    def copy(self) -> LoopHistogram:
        other = LoopHistogram(self.bounds)
        other.counts = list(self.counts)
        other.total = self.total
        return other

    def cumulative(self) -> list[tuple[str, float]]:
        from prometheus_client.utils import floatToGoString

        out = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((floatToGoString(bound), running))
        return out


class HotCounts:
    """The per-request counts (requests, errors, latency, topic bytes and records), in plain dicts.

    Written on the event loop only (see LoopHistogram for why not prometheus_client's metric objects);
    the keys are bounded by what exists: supported API versions, Kafka's error codes, existing topics.
    """

    __slots__ = ("requests", "errors", "latency", "topics")

    def __init__(self) -> None:
        self.requests: dict[tuple[int, int], int] = {}  # (api key, version) -> requests
        self.errors: dict[tuple[int, int, int], int] = {}  # (api key, version, error code) -> count
        self.latency: dict[int, LoopHistogram] = {}  # api key -> seconds
        self.topics: dict[str, list[int]] = {}  # topic -> [bytes in, records in, bytes out, records out]

    def fetched(self, response: dict[str, Any]) -> list[int]:
        """Count a Fetch response's bytes and records out per topic; its non-zero error codes."""
        codes = [response["error_code"]] if response.get("error_code") else []
        for t in response["responses"]:
            nbytes = records = 0
            for p in t["partitions"]:
                if p["error_code"]:
                    codes.append(p["error_code"])
                chunks = p.get("records")
                if chunks:
                    b, n = batch_totals(chunks if type(chunks) is list else (chunks,))
                    nbytes += b
                    records += n
            if nbytes:
                counts = self.topics.get(t["topic"])
                if counts is None:
                    counts = self.topics[t["topic"]] = [0, 0, 0, 0]
                counts[2] += nbytes
                counts[3] += records
        return codes

    def copy(self) -> HotCounts:
        other = HotCounts()
        other.requests = dict(self.requests)
        other.errors = dict(self.errors)
        other.latency = {k: h.copy() for k, h in self.latency.items()}
        other.topics = {k: list(v) for k, v in self.topics.items()}
        return other

    def families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily(
            "odradek_requests", "Requests handled, by API and version.", labels=["api", "version"]
        )
        for (api_key, version), n in sorted(self.requests.items()):
            requests.add_metric([api_name(api_key), str(version)], n)
        errors = CounterMetricFamily(
            "odradek_request_errors",
            "Error codes in responses (top level and per topic, partition or member), by API, version and "
            "Kafka error name.",
            labels=["api", "version", "error"],
        )
        for (api_key, version, code), n in sorted(self.errors.items()):
            errors.add_metric([api_name(api_key), str(version), error_name(code)], n)
        latency = HistogramMetricFamily(
            "odradek_request_duration_seconds",
            "Time from a request's dispatch to its response being ready to send (long-poll Fetch waits "
            "and acks=all fsync waits included), by API.",
            labels=["api"],
        )
        for api_key, h in sorted(self.latency.items()):
            latency.add_metric([api_name(api_key)], h.cumulative(), h.total)
        yield from (requests, errors, latency)
        helps = (
            ("odradek_topic_bytes_in", "Record batch bytes appended by Produce, by topic."),
            ("odradek_topic_records_in", "Records appended by Produce, by topic."),
            ("odradek_topic_bytes_out", "Record batch bytes sent in Fetch responses, by topic."),
            (
                "odradek_topic_records_out",
                "Records in the batches sent in Fetch responses (control records excluded), by topic.",
            ),
        )
        for i, (name, text) in enumerate(helps):
            family = CounterMetricFamily(name, text, labels=["topic"])
            for topic, counts in sorted(self.topics.items()):
                family.add_metric([topic], counts[i])
            yield family


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a scrape reports of broker state, copied on the event loop into plain values."""

    # (topic, partition, size bytes, log start offset, log end offset)
    partitions: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # (group, topic, partition, committed offset, lag)
    lag: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    # (group, protocol, member count)
    members: list[tuple[str, str, int]] = field(default_factory=list)
    open_transactions: int = 0
    transactions_begun: int = 0
    connections: int = 0
    # (sessions, partitions cached, evictions) of the fetch session cache (KIP-227)
    fetch_sessions: tuple[int, int, int] = (0, 0, 0)
    omitted: int = 0
    offline_partitions: int = 0  # logs failed by a write or fsync, out of service until a restart
    hot: HotCounts | None = None  # the event counts, copied in the same loop step


def take_snapshot(broker: Any, ended_transactions: int, limit: int = STATE_SERIES_MAX) -> Snapshot:
    """Read broker state into a Snapshot; call on the event loop that owns it."""
    partitions: list[tuple[str, str, int, int, int]] = []
    lag: list[tuple[str, str, str, int, int]] = []
    omitted = 0
    offline = 0
    topics = broker.state.topics
    for name, topic in topics.items():
        for index, plog in enumerate(topic.partitions):
            offline += plog.failed
            if len(partitions) >= limit:
                omitted += 1
                continue
            partitions.append((name, str(index), plog.size_bytes, plog.log_start_offset, plog.log_end_offset))
    for group_id, committed in broker.groups.offsets.groups.items():
        for (topic_name, partition), c in committed.items():
            topic = topics.get(topic_name)
            if topic is None or not 0 <= partition < len(topic.partitions) or c.offset < 0:
                continue
            if len(lag) >= limit:
                omitted += 1
                continue
            end = topic.partitions[partition].log_end_offset
            lag.append((group_id, topic_name, str(partition), c.offset, max(0, end - c.offset)))
    members = [
        (group_id, "classic", len(g.members)) for group_id, g in broker.groups.coordinator.groups.items()
    ]
    members += [
        (group_id, "consumer", len(g.members)) for group_id, g in broker.groups.consumer.groups.items()
    ]
    open_txns = sum(1 for t in broker.txns.coordinator.txns.values() if t.state in _OPEN_TXN)
    sessions = broker.fetch_sessions
    fetch_sessions = (len(sessions), sessions.total_partitions, sessions.evictions)
    return Snapshot(
        partitions,
        lag,
        members,
        open_transactions=open_txns,
        # Every transaction begun has ended (committed or aborted, counted as they end) or is still
        # open, so the count of those begun is exact without a hook inside the pure coordinator.
        transactions_begun=ended_transactions + open_txns,
        connections=broker.connection_count(),
        fetch_sessions=fetch_sessions,
        omitted=omitted,
        offline_partitions=offline,
    )


def rebalance_marks(broker: Any, group_id: str | None = None) -> dict[tuple[str, str], int]:
    """(protocol, group id) -> what marks a rebalance, for one group or (None) every group.

    As Kafka counts them: a classic group's rebalance completes when a generation reaches Stable (the
    leader's SyncGroup), so a classic group is listed only while Stable, with its generation; a KIP-848
    group rebalances each time its group epoch moves on, so it is listed with that epoch.
    """
    classic = broker.groups.coordinator.groups
    consumer = broker.groups.consumer.groups
    ids = classic.keys() | consumer.keys() if group_id is None else (group_id,)
    marks: dict[tuple[str, str], int] = {}
    for gid in ids:
        if (g := classic.get(gid)) is not None and g.state == GroupState.STABLE:
            marks[("classic", gid)] = g.generation_id
        if (cg := consumer.get(gid)) is not None:
            marks[("consumer", gid)] = cg.group_epoch
    return marks


def count_rebalances(seen: dict[tuple[str, str], int], marks: dict[tuple[str, str], int]) -> dict[str, int]:
    """Rebalances per protocol since ``seen`` (updated in place) was last compared with ``marks``."""
    out: dict[str, int] = {}
    for key, mark in marks.items():
        before = seen.get(key, 0)
        if key[0] == "classic":
            n = 1 if mark != before else 0
        else:
            n = mark - before if mark >= before else mark  # a lower epoch: deleted and created again
        if n > 0:
            out[key[0]] = out.get(key[0], 0) + n
        seen[key] = mark
    return out


# --- metrics off ----------------------------------------------------------------------------------


class NullMetrics:
    """``metrics.listen`` empty: every hook is a no-op, and prometheus_client is never imported."""

    enabled = False
    address: tuple[str, int] | None = None

    def start(self, broker: Any) -> None:
        pass

    async def stop(self) -> None:
        pass

    def close_now(self) -> None:
        pass

    def request_done(self, api_key: int, api_version: int, started: float, request: Any, result: Any) -> None:
        pass

    def connection_opened(self) -> None:
        pass

    def produced(self, topic: str, nbytes: int, records: int) -> None:
        pass

    def transaction_ended(self, commit: bool) -> None:
        pass

    def transaction_timed_out(self) -> None:
        pass


def create(config: BrokerConfig) -> NullMetrics | BrokerMetrics:
    """The broker's metrics for its configuration; ConfigError for a bad or unusable ``metrics.listen``."""
    address = parse_listen(config["metrics.listen"])
    if address is None:
        return NullMetrics()
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "metrics.listen is set but prometheus_client is not installed: pip install 'odradek[metrics]'"
        ) from None
    return BrokerMetrics(address)


# --- metrics on -----------------------------------------------------------------------------------


class BrokerMetrics:
    """The metrics of one broker in a registry of its own (several embedded brokers may share a process)."""

    enabled = True

    def __init__(self, address: tuple[str, int]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        self.requested_address = address
        self.address: tuple[str, int] | None = None  # bound (the port is known once a 0 is resolved)
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self._fsync = Histogram(
            "odradek_fsync_duration_seconds",
            "Duration of one group-commit flush (fsync) of a partition log or a coordinator journal, "
            "with the write of a partition log's queued batches before it.",
            buckets=FSYNC_SECONDS_BUCKETS,
            registry=r,
        )
        self._fsync_batch = Histogram(
            "odradek_fsync_batch_requests",
            "Requests acknowledged by one fsync (group commit); 0 for a background flush nobody awaited.",
            buckets=FSYNC_BATCH_BUCKETS,
            registry=r,
        )
        self._rebalances = Counter(
            "odradek_consumer_group_rebalances",
            "Completed rebalances: a classic group's generation reaching Stable, a KIP-848 group's epoch "
            "moving on.",
            ["protocol"],
            registry=r,
        )
        self._committed = Counter("odradek_transactions_committed", "Transactions committed.", registry=r)
        self._aborted = Counter(
            "odradek_transactions_aborted", "Transactions aborted (timed out ones included).", registry=r
        )
        self._timed_out = Counter(
            "odradek_transactions_timed_out",
            "Transactions aborted by the coordinator past their transaction.timeout.ms.",
            registry=r,
        )
        self._connections = Counter(
            "odradek_connections_accepted", "Client connections accepted.", registry=r
        )
        self._rebalances_by = {p: self._rebalances.labels(p) for p in ("classic", "consumer")}
        for child in self._rebalances_by.values():
            child.inc(0)
        self.hot = HotCounts()
        self._epochs: dict[tuple[str, str], int] = {}
        self._ended_transactions = 0
        self._response_error_logged = False
        self._broker: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        # One snapshot at a time: concurrent scrapes queue here instead of each posting work to the loop.
        self._snapshot_lock = threading.Lock()
        r.register(_StateCollector(self))

    # --- lifecycle (on the event loop) -------------------------------------------------------------

    def start(self, broker: Any) -> None:
        """Serve the endpoint; OSError (naming metrics.listen) when the address cannot be bound."""
        from prometheus_client import start_http_server

        self._broker = broker
        self._loop = asyncio.get_running_loop()
        self._epochs = rebalance_marks(broker)  # groups restored from disk: their past is not counted
        host, port = self.requested_address
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise OSError(e.errno, f"metrics.listen {host}:{port}: {e.strerror}") from None
        self.address = (host, self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", self.address[0], self.address[1])

    async def stop(self) -> None:
        if self._server is not None:
            # shutdown() waits for the serving thread's next poll (up to half a second): off the loop.
            await asyncio.get_running_loop().run_in_executor(None, self.close_now)

    def close_now(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # --- hooks (on the event loop, except timed_fsync) ----------------------------------------------

    def request_done(self, api_key: int, api_version: int, started: float, request: Any, result: Any) -> None:
        """One request answered (or about to be): count it, time it, count its errors, its Fetch data."""
        hot = self.hot
        key = (api_key, api_version)
        hot.requests[key] = hot.requests.get(key, 0) + 1
        latency = hot.latency.get(api_key)
        if latency is None:
            latency = hot.latency[api_key] = LoopHistogram(REQUEST_SECONDS_BUCKETS)
        latency.observe(time.perf_counter() - started)
        if type(result) is not dict:
            return
        try:
            if api_key == _PRODUCE:
                codes = [
                    p["error_code"]
                    for t in result["responses"]
                    for p in t["partition_responses"]
                    if p["error_code"]
                ]
            elif api_key == _FETCH:
                codes = hot.fetched(result)
            else:
                codes = response_errors(result)
                if api_key in _GROUP_APIS:
                    self._count_rebalances(getattr(request, "group_id", None))
            for code in codes:
                k = (api_key, api_version, code)
                hot.errors[k] = hot.errors.get(k, 0) + 1
        except Exception:  # a response shape the metrics do not know must never fail the request
            if not self._response_error_logged:
                self._response_error_logged = True
                log.exception("metrics: could not read a %s response (logged once)", api_name(api_key))

    def produced(self, topic: str, nbytes: int, records: int) -> None:
        """One batch appended by Produce (``records`` from its header's record count)."""
        counts = self.hot.topics.get(topic)
        if counts is None:
            counts = self.hot.topics[topic] = [0, 0, 0, 0]
        counts[0] += nbytes
        counts[1] += records

    def connection_opened(self) -> None:
        self._connections.inc()

    def transaction_ended(self, commit: bool) -> None:
        """Called in the same loop step as the coordinator's ``complete`` (see take_snapshot)."""
        self._ended_transactions += 1
        (self._committed if commit else self._aborted).inc()

    def transaction_timed_out(self) -> None:
        self._timed_out.inc()

    def timed_fsync(self, flush: Callable[[], Any], waiting: int) -> Any:
        """Run one flush (in the flusher's worker thread) and observe its duration and batch size."""
        started = time.perf_counter()
        try:
            return flush()
        finally:
            self._fsync.observe(time.perf_counter() - started)
            self._fsync_batch.observe(waiting)

    def _count_rebalances(self, group_id: str | None = None) -> None:
        """Count rebalances since last looked: of one group (after its requests), or (None) of all."""
        if not group_id and group_id is not None:
            return
        for protocol, n in count_rebalances(self._epochs, rebalance_marks(self._broker, group_id)).items():
            self._rebalances_by[protocol].inc(n)
        if group_id is None:  # forget groups that are gone
            groups = self._broker.groups
            live = {"classic": groups.coordinator.groups, "consumer": groups.consumer.groups}
            for key in [k for k in self._epochs if k[1] not in live[k[0]]]:
                del self._epochs[key]

    # --- scrape -------------------------------------------------------------------------------------

    def _snapshot_on_loop(self) -> Snapshot:
        broker = self._broker
        self._count_rebalances()
        for topic in [t for t in self.hot.topics if t not in broker.state.topics]:
            del self.hot.topics[topic]  # a deleted topic's series go with it
        snap = take_snapshot(broker, self._ended_transactions)
        return replace(snap, hot=self.hot.copy())

    def snapshot(self) -> Snapshot | None:
        """From a scrape thread: the loop's snapshot, or None when the loop is gone or does not answer."""
        loop = self._loop
        if loop is None or self._broker is None:
            return Snapshot(hot=self.hot.copy())  # not started: nothing else touches the counts

        async def on_loop() -> Snapshot:
            return self._snapshot_on_loop()

        if not self._snapshot_lock.acquire(timeout=SNAPSHOT_TIMEOUT_S):
            return None
        try:
            try:
                future = asyncio.run_coroutine_threadsafe(on_loop(), loop)
            except RuntimeError:
                return None  # the loop is closed
            try:
                return future.result(timeout=SNAPSHOT_TIMEOUT_S)
            except TimeoutError:
                future.cancel()
                log.warning("metrics scrape: the event loop did not answer within %.0f s", SNAPSHOT_TIMEOUT_S)
                return None
        finally:
            self._snapshot_lock.release()


class _StateCollector:
    """The state families, built from one loop snapshot per scrape."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # registration must not take a snapshot (the broker may not be started yet)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.metrics.snapshot()
        if snap is None:
            return
        if snap.hot is not None:
            yield from snap.hot.families()
        tp = ["topic", "partition"]
        size = GaugeMetricFamily("odradek_log_size_bytes", "Bytes in a partition's log segments.", labels=tp)
        start = GaugeMetricFamily(
            "odradek_log_start_offset", "A partition's log start offset (first offset kept).", labels=tp
        )
        end = GaugeMetricFamily(
            "odradek_log_end_offset", "A partition's log end offset (the next offset to write).", labels=tp
        )
        for topic, partition, nbytes, first, leo in snap.partitions:
            size.add_metric([topic, partition], nbytes)
            start.add_metric([topic, partition], first)
            end.add_metric([topic, partition], leo)
        gtp = ["group", "topic", "partition"]
        committed = GaugeMetricFamily(
            "odradek_consumer_group_committed_offset",
            "A group's committed offset of a partition.",
            labels=gtp,
        )
        lag = GaugeMetricFamily(
            "odradek_consumer_group_lag",
            "A group's lag on a partition: log end offset minus committed offset (records, at least 0).",
            labels=gtp,
        )
        for group, topic, partition, offset, behind in snap.lag:
            committed.add_metric([group, topic, partition], offset)
            lag.add_metric([group, topic, partition], behind)
        members = GaugeMetricFamily(
            "odradek_consumer_group_members",
            "Members of a consumer group; protocol classic (JoinGroup) or consumer (KIP-848).",
            labels=["group", "protocol"],
        )
        for group, protocol, count in snap.members:
            members.add_metric([group, protocol], count)
        yield from (size, start, end, committed, lag, members)
        yield CounterMetricFamily(
            "odradek_transactions_begun",
            "Transactions begun (first partition or group added).",
            value=snap.transactions_begun,
        )
        yield GaugeMetricFamily(
            "odradek_transactions_open",
            "Transactions begun and not yet completed.",
            value=snap.open_transactions,
        )
        yield GaugeMetricFamily(
            "odradek_connections_open", "Open client connections.", value=snap.connections
        )
        yield GaugeMetricFamily(
            "odradek_log_offline_partitions",
            "Partitions whose log failed a write or fsync: they answer KAFKA_STORAGE_ERROR until a restart.",
            value=snap.offline_partitions,
        )
        sessions, cached, evicted = snap.fetch_sessions
        yield GaugeMetricFamily(
            "odradek_fetch_sessions", "Incremental fetch sessions in the cache (KIP-227).", value=sessions
        )
        yield GaugeMetricFamily(
            "odradek_fetch_session_partitions",
            "Partitions held by all incremental fetch sessions.",
            value=cached,
        )
        yield CounterMetricFamily(
            "odradek_fetch_session_evictions",
            "Incremental fetch sessions evicted to make room for others.",
            value=evicted,
        )
        yield GaugeMetricFamily(
            "odradek_metrics_series_omitted",
            f"State series left out of this scrape past the bound of {STATE_SERIES_MAX} per family.",
            value=snap.omitted,
        )
