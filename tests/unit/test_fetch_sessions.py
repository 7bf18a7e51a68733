"""The fetch session cache (KIP-227) without sockets: a fake clock, a seeded random generator."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.fetch_sessions import (
    EVICTION_MIN_MS,
    FETCH_SESSION_ID_NOT_FOUND,
    INT32_MAX,
    INVALID_FETCH_SESSION_EPOCH,
    FetchSessionCache,
    FullFetch,
    IncrementalFetch,
    Outcome,
    PartitionRequest,
    SessionError,
    Sessionless,
    next_epoch,
)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def cache(slots: int = 1000, shards: int = 8, clock: Clock | None = None) -> FetchSessionCache:
    return FetchSessionCache(slots, clock or Clock(), shards=shards, rng=random.Random(7))


def req(offset: int = 0) -> PartitionRequest:
    return PartitionRequest(fetch_offset=offset, partition_max_bytes=1 << 20)


def parts(n: int, topic: str = "t", offset: int = 0) -> list:
    return [((topic, i), req(offset)) for i in range(n)]


def outcomes(context, hw: int = 10, records: dict | None = None, errors: dict | None = None) -> list[Outcome]:
    records = records or {}
    errors = errors or {}
    return [
        Outcome(
            key,
            errors.get(key, 0),
            -1 if key in errors else hw,
            -1 if key in errors else 0,
            records.get(key, 0),
        )
        for key, _ in context.partitions
    ]


def open_session(c: FetchSessionCache, n: int = 3, hw: int = 10) -> tuple[int, int]:
    """A full fetch of ``n`` partitions: the new session's id and the epoch it expects next."""
    ctx = c.new_context(0, 0, parts(n), [])
    assert isinstance(ctx, FullFetch)
    reply = ctx.reply(outcomes(ctx, hw))
    assert reply.session_id != 0 and reply.error_code == 0
    assert reply.keep == tuple(range(n))  # a full fetch answers every partition
    return reply.session_id, 1


def test_full_fetch_with_epoch_0_creates_a_session_whose_first_epoch_is_1() -> None:
    c = cache()
    sid, epoch = open_session(c)
    session = c.get(sid)
    assert session is not None and session.epoch == epoch == 1
    assert list(session.partitions) == [("t", 0), ("t", 1), ("t", 2)]
    assert len(c) == 1 and c.total_partitions == 3


def test_incremental_fetch_reads_every_session_partition_and_answers_only_news() -> None:
    c = cache()
    sid, epoch = open_session(c, 3, hw=10)
    ctx = c.new_context(sid, epoch, [], [])
    assert isinstance(ctx, IncrementalFetch)
    assert [k for k, _ in ctx.partitions] == [("t", 0), ("t", 1), ("t", 2)]
    assert ctx.reply(outcomes(ctx, hw=10)).keep == ()  # nothing changed: no partitions
    ctx = c.new_context(sid, epoch + 1, [], [])
    got = outcomes(ctx, hw=10)
    got[1] = got[1]._replace(high_watermark=11, records_bytes=70)  # new data on partition 1 only
    reply = ctx.reply(got)
    assert reply.session_id == sid and reply.error_code == 0 and reply.keep == (1,)


@pytest.mark.parametrize(
    "change",
    [
        {"high_watermark": 12},  # moved high watermark without readable records (read_committed)
        {"log_start_offset": 5},  # moved log start offset (retention, DeleteRecords)
        {"records_bytes": 1},  # records, the high watermark unchanged
        {"error_code": 1, "high_watermark": -1, "log_start_offset": -1},  # an error
    ],
)
def test_what_makes_a_partition_part_of_an_incremental_response(change: dict) -> None:
    c = cache()
    sid, epoch = open_session(c, 2, hw=10)
    ctx = c.new_context(sid, epoch, [], [])
    got = outcomes(ctx, hw=10)
    got[0] = got[0]._replace(**change)
    assert ctx.reply(got).keep == (0,)


def test_an_error_is_answered_every_time_and_the_recovered_partition_once_more() -> None:
    c = cache()
    sid, epoch = open_session(c, 2, hw=10)
    for _ in range(2):
        ctx = c.new_context(sid, epoch, [], [])
        epoch += 1
        assert ctx.reply(outcomes(ctx, errors={("t", 0): 1})).keep == (0,)
    ctx = c.new_context(sid, epoch, [], [])
    epoch += 1
    assert ctx.reply(outcomes(ctx, hw=10)).keep == (0,)  # the error is gone: sent again (hw reset to -1)
    ctx = c.new_context(sid, epoch, [], [])
    assert ctx.reply(outcomes(ctx, hw=10)).keep == ()


def test_incremental_request_updates_adds_and_forgets_partitions() -> None:
    c = cache()
    sid, epoch = open_session(c, 3)
    ctx = c.new_context(sid, epoch, [(("t", 1), req(42)), (("u", 0), req(7))], [("t", 2), ("nope", 9)])
    assert isinstance(ctx, IncrementalFetch)
    assert [(k, r.fetch_offset) for k, r in ctx.partitions] == [(("t", 0), 0), (("t", 1), 42), (("u", 0), 7)]
    got = outcomes(ctx, hw=10)
    assert ctx.reply(got).keep == (2,)  # the added partition has never been answered
    assert c.total_partitions == 3


def test_a_partition_both_fetched_and_forgotten_is_forgotten() -> None:
    c = cache()
    sid, epoch = open_session(c, 2)
    ctx = c.new_context(sid, epoch, [(("t", 1), req(5))], [("t", 1)])
    assert [k for k, _ in ctx.partitions] == [("t", 0)]


def test_partitions_with_records_move_to_the_back_of_the_session_order() -> None:
    c = cache()
    sid, epoch = open_session(c, 3)
    ctx = c.new_context(sid, epoch, [], [])
    ctx.reply(outcomes(ctx, hw=10, records={("t", 0): 100}))
    ctx = c.new_context(sid, epoch + 1, [], [])
    assert [k for k, _ in ctx.partitions] == [("t", 1), ("t", 2), ("t", 0)]


def test_forgetting_every_partition_closes_the_session() -> None:
    c = cache()
    sid, epoch = open_session(c, 2)
    ctx = c.new_context(sid, epoch, [], [("t", 0), ("t", 1)])
    assert isinstance(ctx, Sessionless) and ctx.partitions == []
    assert ctx.reply([]).session_id == 0
    assert c.get(sid) is None and len(c) == 0 and c.total_partitions == 0


def test_unknown_session_id_is_70_and_wrong_epoch_is_71_and_neither_changes_the_session() -> None:
    c = cache()
    sid, epoch = open_session(c)
    for session_id, e, code in [
        (sid + 1, 1, FETCH_SESSION_ID_NOT_FOUND),
        (0, 1, FETCH_SESSION_ID_NOT_FOUND),  # session id 0 with an incremental epoch
        (-5, 1, FETCH_SESSION_ID_NOT_FOUND),
        (INT32_MAX, 1, FETCH_SESSION_ID_NOT_FOUND),  # outside every shard's range
        (sid, 2, INVALID_FETCH_SESSION_EPOCH),
        (sid, 0x7FFF, INVALID_FETCH_SESSION_EPOCH),
        (sid, -2, INVALID_FETCH_SESSION_EPOCH),
    ]:
        ctx = c.new_context(session_id, e, parts(1, "x"), [("t", 0)])
        assert isinstance(ctx, SessionError) and ctx.partitions == []
        reply = ctx.reply([])
        assert (reply.error_code, reply.session_id, reply.keep) == (code, 0, ())
    session = c.get(sid)
    assert session is not None and session.epoch == epoch and len(session.partitions) == 3
    assert isinstance(c.new_context(sid, epoch, [], []), IncrementalFetch)


def test_epoch_minus_1_closes_the_session_and_fetches_without_one() -> None:
    c = cache()
    sid, _ = open_session(c)
    ctx = c.new_context(sid, -1, parts(2), [])
    assert isinstance(ctx, Sessionless)
    assert ctx.reply(outcomes(ctx)).keep == (0, 1)
    assert ctx.reply(outcomes(ctx)).session_id == 0
    assert c.get(sid) is None
    assert isinstance(c.new_context(sid, 1, [], []), SessionError)


def test_full_fetch_naming_a_session_replaces_it() -> None:
    c = cache()
    sid, _ = open_session(c)
    ctx = c.new_context(sid, 0, parts(1), [])
    assert c.get(sid) is None
    new = ctx.reply(outcomes(ctx)).session_id
    assert new not in (0, sid) and len(c) == 1


def test_a_duplicate_request_that_overtook_a_waiting_one_makes_the_waiting_one_71() -> None:
    c = cache()
    sid, epoch = open_session(c)
    waiting = c.new_context(sid, epoch, [], [])
    later = c.new_context(sid, epoch + 1, [], [])
    assert later.reply(outcomes(later)).error_code == 0
    reply = waiting.reply(outcomes(waiting))
    assert (reply.error_code, reply.session_id, reply.keep) == (INVALID_FETCH_SESSION_EPOCH, sid, ())


def test_epochs_wrap_from_int32_max_to_1() -> None:
    assert next_epoch(1) == 2
    assert next_epoch(INT32_MAX) == 1
    assert next_epoch(-1) == -1
    c = cache()
    sid, _ = open_session(c)
    c.get(sid).epoch = INT32_MAX
    c.new_context(sid, INT32_MAX, [], [])
    assert c.get(sid).epoch == 1


def test_session_ids_are_positive_and_name_their_shard() -> None:
    c = cache(slots=80, shards=8)
    ids = [open_session(c, 1)[0] for _ in range(16)]
    assert len(set(ids)) == 16 and all(i > 0 for i in ids)
    for i in ids:
        assert c.shard_of(i).get(i) is not None
    assert [len(s) for s in c.shards] == [2] * 8  # new sessions go to the shards in turn


def test_no_sessions_with_0_slots_or_fewer_slots_than_shards() -> None:
    for slots in (0, 7):
        c = cache(slots=slots)
        for _ in range(20):
            ctx = c.new_context(0, 0, parts(500), [])
            assert ctx.reply(outcomes(ctx)).session_id == 0
        assert len(c) == 0


def test_a_full_shard_evicts_the_least_recently_used_session_idle_over_the_minimum() -> None:
    clock = Clock()
    c = cache(slots=2, shards=1, clock=clock)
    a, _ = open_session(c, 5)
    clock.ms += 1
    b, b_epoch = open_session(c, 5)
    clock.ms += EVICTION_MIN_MS  # a idle 120 001 ms, b 120 000 ms: only a is stale
    c.new_context(b, b_epoch, [], []).reply([])
    clock.ms += 1
    ctx = c.new_context(0, 0, parts(1), [])
    new = ctx.reply(outcomes(ctx)).session_id
    assert new != 0 and c.get(a) is None and c.get(b) is not None and c.evictions == 1


def test_idle_exactly_the_minimum_is_not_stale() -> None:
    clock = Clock()
    c = cache(slots=1, shards=1, clock=clock)
    a, _ = open_session(c, 5)
    clock.ms += EVICTION_MIN_MS
    ctx = c.new_context(0, 0, parts(1), [])
    assert ctx.reply(outcomes(ctx)).session_id == 0 and c.get(a) is not None


def test_a_larger_session_evicts_the_smallest_one_old_enough_but_not_a_young_one() -> None:
    clock = Clock()
    c = cache(slots=3, shards=1, clock=clock)
    small, se = open_session(c, 2)
    mid, me = open_session(c, 4)
    clock.ms += 10
    young, _ = open_session(c, 1)
    clock.ms += EVICTION_MIN_MS  # small and mid are old; all were used within the last 120 s
    for sid, e in ((small, se), (mid, me)):
        c.new_context(sid, e, [], []).reply([])  # a touch when old makes them evictable
    # Not larger than the smallest evictable one (2 partitions): nothing is evicted.
    for n in (1, 2):
        ctx = c.new_context(0, 0, parts(n), [])
        assert ctx.reply(outcomes(ctx)).session_id == 0
    assert len(c) == 3
    ctx = c.new_context(0, 0, parts(3), [])
    new = ctx.reply(outcomes(ctx)).session_id
    assert new != 0 and c.get(small) is None and c.get(young) is not None and c.get(mid) is not None
    assert c.evictions == 1 and len(c) == 3


def test_a_session_old_but_not_touched_since_it_aged_is_not_evictable_by_size() -> None:
    clock = Clock()
    c = cache(slots=1, shards=1, clock=clock)
    a, _ = open_session(c, 1)
    clock.ms += EVICTION_MIN_MS // 2
    c.new_context(a, 1, [], [])  # used while young
    clock.ms += EVICTION_MIN_MS // 2 + 10  # old now, idle 60 s: neither stale nor evictable yet
    ctx = c.new_context(0, 0, parts(100), [])
    assert ctx.reply(outcomes(ctx)).session_id == 0 and c.get(a) is not None


def test_a_privileged_session_evicts_a_young_unprivileged_one() -> None:
    clock = Clock()
    c = cache(slots=1, shards=1, clock=clock)
    a, _ = open_session(c, 50)
    ctx = c.new_context(0, 0, parts(1), [], privileged=True)
    new = ctx.reply(outcomes(ctx)).session_id
    assert new != 0 and c.get(a) is None and c.get(new).privileged
    ctx = c.new_context(0, 0, parts(100), [])  # an unprivileged one cannot evict it
    assert ctx.reply(outcomes(ctx)).session_id == 0


def test_eviction_looks_within_one_shard() -> None:
    clock = Clock()
    c = cache(slots=2, shards=2, clock=clock)
    a, _ = open_session(c, 1)  # shard 0
    open_session(c, 1)  # shard 1
    clock.ms += EVICTION_MIN_MS + 1
    ctx = c.new_context(0, 0, parts(1), [])  # to shard 0: a is stale there
    assert ctx.reply(outcomes(ctx)).session_id != 0 and c.get(a) is None and len(c) == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["full", "incr", "final", "tick"]), st.integers(0, 30), st.integers(1, 40)),
        max_size=120,
    )
)
def test_the_cache_stays_bounded_and_its_counts_consistent(steps: list) -> None:
    clock = Clock()
    c = FetchSessionCache(6, clock, shards=2, eviction_ms=50, rng=random.Random(1))
    known: list[int] = []
    for op, pick, n in steps:
        if op == "tick":
            clock.ms += n * 3
        elif op == "full":
            ctx = c.new_context(0, 0, parts(n), [])
            sid = ctx.reply(outcomes(ctx)).session_id
            if sid:
                known.append(sid)
        elif known:
            sid = known[pick % len(known)]
            session = c.get(sid)
            if op == "final":
                c.new_context(sid, -1, [], [])
            elif session is not None:
                ctx = c.new_context(sid, session.epoch, parts(pick % 3, "x"), [("t", pick)])
                ctx.reply(outcomes(ctx))
        assert all(len(s) <= 3 for s in c.shards)
        assert c.total_partitions == sum(len(s.partitions) for sh in c.shards for s in sh.sessions.values())
        assert len(c) == sum(1 for sid in set(known) if c.get(sid) is not None)


def test_unchanged_tells_which_caught_up_partitions_an_answer_would_leave_out() -> None:
    c = cache()
    sid, epoch = open_session(c, 2, hw=10)
    ctx = c.new_context(sid, epoch, [(("t", 5), req())], [])
    assert ctx.unchanged(("t", 0), 10, 0)
    assert not ctx.unchanged(("t", 0), 11, 0)  # a moved high watermark is news
    assert not ctx.unchanged(("t", 0), 10, 3)  # so is a moved log start offset
    assert not ctx.unchanged(("t", 5), 10, 0)  # a partition just added was never answered
    assert not ctx.unchanged(("x", 0), 10, 0)  # not in the session
    for key, hw, lso in ((("t", 0), 10, 0), (("t", 0), 11, 0), (("t", 5), 10, 0)):
        # The same verdict as the answer gives a partition read at its end with these offsets.
        probe = c.new_context(sid, c.get(sid).epoch, [], [])
        expected = probe.unchanged(key, hw, lso)
        got = [
            o._replace(high_watermark=hw, log_start_offset=lso) if o.key == key else o
            for o in outcomes(probe)
        ]
        index = [o.key for o in got].index(key)
        assert (index not in probe.reply(got).keep) == expected
