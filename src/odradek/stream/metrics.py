"""Delivery metrics, with prometheus_client, on a registry of the App's own.

Counters of the record path (consumed, processed, produced, rows written) are increased once per batch,
so that metrics cost nothing measurable there; the rare events (duplicates, failures, dead letters)
count as they happen.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.consumed = Counter("odradek_stream_records_consumed", "Records polled", ["topic"], registry=r)
        self.processed = Counter(
            "odradek_stream_records_processed", "Records processed", ["processor"], registry=r
        )
        self.produced = Counter(
            "odradek_stream_records_produced", "Records sent to topics", ["topic"], registry=r
        )
        self.written = Counter(
            "odradek_stream_rows_written", "Rows written to SQL sinks", ["table"], registry=r
        )
        self.dead_lettered = Counter(
            "odradek_stream_records_dead_lettered",
            "Records sent to a dead-letter topic",
            ["processor"],
            registry=r,
        )
        self.failed_attempts = Counter(
            "odradek_stream_processing_failures", "Processor calls that raised", ["processor"], registry=r
        )
        self.duplicates = Counter(
            "odradek_stream_duplicates_skipped", "Records skipped by a dedup store", ["processor"], registry=r
        )
        self.discarded = Counter(
            "odradek_stream_records_discarded",
            "Polled records not processed because their position could not be committed first "
            "(at-most-once) or their partition was fenced (exactly-once into SQL)",
            registry=r,
        )
        self.transactions = Counter(
            "odradek_stream_transactions", "Transactions ended", ["kind", "outcome"], registry=r
        )
        self.commits = Counter("odradek_stream_commits", "Offset commits", ["outcome"], registry=r)
        self.rewinds = Counter("odradek_stream_rewinds", "Rewinds to the committed positions", registry=r)
        self.rebalances = Counter(
            "odradek_stream_rebalances", "Partition assignments and revocations", ["kind"], registry=r
        )
        self.commit_latency = Histogram(
            "odradek_stream_commit_latency_seconds",
            "Time to commit positions (and the transaction)",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_latency = Histogram(
            "odradek_stream_batch_processing_seconds",
            "Time to process one polled batch",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.lag = Gauge(
            "odradek_stream_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on ``host:port`` (0 picks a port); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return server.server_address[1]

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
