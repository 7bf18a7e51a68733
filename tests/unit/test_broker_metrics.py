"""The broker metrics' pure parts: metrics.listen parsing, error and batch counting, rebalance counting,
and the metrics themselves fed by hand into their own registry (no sockets, no broker)."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from odradek.broker import metrics
from odradek.config import BrokerConfig, ConfigError
from odradek.protocol.apis import ApiKey
from odradek.protocol.records import build_control_batch

from .batches import make_batch


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("  ", None),
        (":9404", ("127.0.0.1", 9404)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:9404", ("0.0.0.0", 9404)),
        ("[::1]:9404", ("::1", 9404)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_metrics_listen_values(value: str, expected: tuple[str, int] | None) -> None:
    assert metrics.parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9404", "host", "host:", "host:port", ":65536", ":-1", "a b:1"])
def test_bad_metrics_listen_values_name_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match="metrics.listen: expected HOST:PORT"):
        metrics.parse_listen(value)


def test_metrics_are_off_by_default_and_need_no_prometheus_client() -> None:
    m = metrics.create(BrokerConfig.build())
    assert isinstance(m, metrics.NullMetrics) and not m.enabled
    m.request_done(ApiKey.PRODUCE, 9, 0.0, None, {"error_code": 3})  # every hook is a no-op
    m.produced("t", 10, 1)


def test_api_and_error_names_are_kafkas() -> None:
    assert metrics.api_name(ApiKey.PRODUCE) == "Produce"
    assert metrics.api_name(ApiKey.FIND_COORDINATOR) == "FindCoordinator"
    assert metrics.api_name(ApiKey.CONSUMER_GROUP_HEARTBEAT) == "ConsumerGroupHeartbeat"
    assert metrics.api_name(9999) == "9999"
    assert metrics.error_name(3) == "UNKNOWN_TOPIC_OR_PARTITION"
    assert metrics.error_name(48) == "INVALID_TXN_STATE"
    assert metrics.error_name(30000) == "30000"


def test_response_errors_finds_every_nonzero_code_at_every_level() -> None:
    response = {
        "throttle_time": 0,
        "error_code": 0,
        "responses": [
            {
                "name": "a",
                "partition_responses": [{"index": 0, "error_code": 3}, {"index": 1, "error_code": 0}],
            },
            {"name": "b", "partition_responses": [{"index": 0, "error_code": 87, "record_errors": []}]},
        ],
        "records": [memoryview(b"x" * 70)],  # stored batches are not walked
    }
    assert sorted(metrics.response_errors(response)) == [3, 87]
    assert metrics.response_errors({"error_code": 16}) == [16]
    assert metrics.response_errors({"error_code": 0, "topics": []}) == []


def test_batch_totals_count_records_from_headers_and_skip_control_batches() -> None:
    a = bytes(make_batch([b"v1", b"v2", b"v3"]))
    b = bytes(make_batch([b"x" * 100] * 7))
    marker = bytes(build_control_batch(1, 0, True, 0, 1_000))
    assert metrics.batch_totals([a + b]) == (len(a) + len(b), 10)
    assert metrics.batch_totals([memoryview(a), marker, b]) == (len(a) + len(marker) + len(b), 10)
    assert metrics.batch_totals([]) == (0, 0)


def test_rebalances_counted_as_kafka_counts_them() -> None:
    seen: dict[tuple[str, str], int] = {}
    # A classic group appears (Stable at generation 1), a KIP-848 group reaches epoch 3.
    assert metrics.count_rebalances(seen, {("classic", "g"): 1, ("consumer", "c"): 3}) == {
        "classic": 1,
        "consumer": 3,
    }
    # Nothing moved: nothing counted.
    assert metrics.count_rebalances(seen, {("classic", "g"): 1, ("consumer", "c"): 3}) == {}
    # The classic group reaches Stable at generation 4 (3 generations that never became Stable are not
    # completed rebalances); the consumer group's epoch moves on by two.
    assert metrics.count_rebalances(seen, {("classic", "g"): 4, ("consumer", "c"): 5}) == {
        "classic": 1,
        "consumer": 2,
    }
    # Deleted and created again: a lower epoch counts from zero.
    assert metrics.count_rebalances(seen, {("consumer", "c"): 1}) == {"consumer": 1}


def _scrape(m: metrics.BrokerMetrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_hooks_feed_the_registry() -> None:
    m = metrics.BrokerMetrics(("127.0.0.1", 0))
    produce_response = {
        "responses": [{"name": "t", "partition_responses": [{"index": 0, "error_code": 3}]}],
        "throttle_time": 0,
    }
    m.request_done(ApiKey.PRODUCE, 9, 0.0, None, produce_response)
    m.request_done(ApiKey.PRODUCE, 9, 0.0, None, None)  # acks=0: no response, still a request
    m.produced("t", 120, 4)
    m.produced("t", 80, 2)
    batch = bytes(make_batch([b"a", b"b"]))
    fetch_response = {
        "error_code": 0,
        "responses": [{"topic": "t", "partitions": [{"error_code": 0, "records": [batch, batch]}]}],
    }
    m.request_done(ApiKey.FETCH, 12, 0.0, None, fetch_response)
    m.transaction_ended(True)
    m.transaction_ended(False)
    m.transaction_timed_out()
    assert m.timed_fsync(lambda: 42, 3) == 42
    got = _scrape(m)
    assert got[("odradek_requests_total", frozenset({("api", "Produce"), ("version", "9")}))] == 2
    errors = ("odradek_request_errors_total", {("api", "Produce"), ("version", "9")})
    assert got[(errors[0], frozenset(errors[1] | {("error", "UNKNOWN_TOPIC_OR_PARTITION")}))] == 1
    assert got[("odradek_topic_bytes_in_total", frozenset({("topic", "t")}))] == 200
    assert got[("odradek_topic_records_in_total", frozenset({("topic", "t")}))] == 6
    assert got[("odradek_topic_bytes_out_total", frozenset({("topic", "t")}))] == 2 * len(batch)
    assert got[("odradek_topic_records_out_total", frozenset({("topic", "t")}))] == 4
    assert got[("odradek_request_duration_seconds_count", frozenset({("api", "Fetch")}))] == 1
    assert got[("odradek_transactions_committed_total", frozenset())] == 1
    assert got[("odradek_transactions_aborted_total", frozenset())] == 1
    assert got[("odradek_transactions_timed_out_total", frozenset())] == 1
    assert got[("odradek_fsync_duration_seconds_count", frozenset())] == 1
    assert got[("odradek_fsync_batch_requests_sum", frozenset())] == 3
    # Without a running broker the state families are simply absent.
    assert not any(name == "odradek_log_end_offset" for name, _ in got)


def test_a_response_shape_the_metrics_do_not_know_never_fails_the_request() -> None:
    m = metrics.BrokerMetrics(("127.0.0.1", 0))
    odd = {"error_code": 0, "responses": [{"topic_id": "x", "partitions": [{"records": [b"\0" * 70]}]}]}
    m.request_done(ApiKey.FETCH, 12, 0.0, None, odd)  # no "topic": logged once, not raised
    m.request_done(ApiKey.FETCH, 12, 0.0, None, odd)
    assert _scrape(m)[("odradek_requests_total", frozenset({("api", "Fetch"), ("version", "12")}))] == 2
