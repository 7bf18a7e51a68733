"""The hand-written Produce and Fetch encoders write exactly what kio's generic encoder writes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol import codec, fast
from odradek.protocol.apis import SUPPORTED, ApiKey

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._-0123456789", min_size=1, max_size=20)
i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
errors = st.sampled_from([0, 1, 3, 10, 45, 47, 87])

produce_partition = st.fixed_dictionaries(
    {
        "index": i32,
        "error_code": errors,
        "base_offset": i64,
        "log_append_time": st.sampled_from([-1, 1_700_000_000_123]),
        "log_start_offset": i64,
        "record_errors": st.just([]),
        "error_message": st.none() | st.text(max_size=30),
    }
)
produce_topics = st.lists(
    st.fixed_dictionaries({"name": names, "partition_responses": st.lists(produce_partition, max_size=4)}),
    max_size=4,
)

aborted = st.lists(st.fixed_dictionaries({"producer_id": i64, "first_offset": i64}), max_size=3)
records = (
    st.none() | st.binary(max_size=200) | st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=3)
)
fetch_partition = st.fixed_dictionaries(
    {
        "partition_index": i32,
        "error_code": errors,
        "high_watermark": i64,
        "last_stable_offset": i64,
        "log_start_offset": i64,
        "aborted_transactions": st.none() | aborted,
        "preferred_read_replica": st.just(-1),
        "records": records,
    }
)
fetch_response = st.fixed_dictionaries(
    {
        "throttle_time": st.just(0),
        "error_code": st.just(0),
        "session_id": st.just(0),
        "responses": st.lists(
            st.fixed_dictionaries({"topic": names, "partitions": st.lists(fetch_partition, max_size=4)}),
            max_size=3,
        ),
    }
)


def _kio(api_key: int, version: int, corr: int, data: dict) -> bytes:  # type: ignore[type-arg]
    return codec.encode_response(api_key, version, corr, data, fast_path=False)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(3, SUPPORTED[ApiKey.PRODUCE].max_version + 1)), i32, produce_topics)
def test_produce_response_matches_kio(version: int, corr: int, topics: list) -> None:  # type: ignore[type-arg]
    expected = _kio(0, version, corr, {"responses": topics, "throttle_time": 0})
    assert fast.produce_response(version, corr, topics) == expected


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(range(SUPPORTED[ApiKey.FETCH].min_version, SUPPORTED[ApiKey.FETCH].max_version + 1)),
    i32,
    fetch_response,
)
def test_fetch_response_matches_kio(version: int, corr: int, response: dict) -> None:  # type: ignore[type-arg]
    joined = {
        **response,
        "responses": [
            {
                **t,
                "partitions": [
                    {
                        **p,
                        "records": b"".join(p["records"]) if isinstance(p["records"], list) else p["records"],
                    }
                    for p in t["partitions"]
                ],
            }
            for t in response["responses"]
        ],
    }
    expected = _kio(1, version, corr, joined)
    assert b"".join(fast.fetch_response(version, corr, response)) == expected
