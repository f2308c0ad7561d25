"""The per-source token bucket: exact, with the time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab93zmq.core.limits import RateLimiter, Verdict


def test_a_burst_passes_then_the_source_is_cut_off():
    limiter = RateLimiter(rate=10, burst=5)
    assert [limiter.allow("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.refused_total == 2


def test_tokens_come_back_at_the_rate():
    limiter = RateLimiter(rate=10, burst=5)
    for _ in range(5):
        assert limiter.allow("a", 0.0)
    assert not limiter.allow("a", 0.05)  # half a token
    assert limiter.allow("a", 0.1)  # one token
    assert not limiter.allow("a", 0.1)
    # Never more than the burst, however long it waited.
    assert [limiter.allow("a", 100.0) for _ in range(6)] == [True] * 5 + [False]


def test_sources_are_limited_apart():
    limiter = RateLimiter(rate=1, burst=2)
    assert [limiter.allow(("127.0.0.1", 1000), 0.0) for _ in range(3)] == [True, True, False]
    # Another port on the same host (another node on loopback) has its own bucket.
    assert limiter.allow(("127.0.0.1", 1001), 0.0)


def test_the_verdict_marks_where_a_cut_off_starts_and_ends():
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.check("a", 0.0) == Verdict(True, 0)
    assert limiter.check("a", 0.0) == Verdict(False, 1)  # the cut-off starts: log it
    assert limiter.check("a", 0.5) == Verdict(False, 2)
    assert limiter.check("a", 0.5) == Verdict(False, 3)
    assert limiter.check("a", 1.0) == Verdict(True, 3)  # it ends, after 3 refused
    assert limiter.check("a", 2.0) == Verdict(True, 0)


def test_a_steady_flood_is_one_cut_off_period():
    """Let through one event per token that comes back, but report the start only once."""
    limiter = RateLimiter(rate=10, burst=3)
    verdicts = [limiter.check("a", i * 0.01) for i in range(100)]  # 100 a second for 1 s
    starts = [v for v in verdicts if not v.allowed and v.streak == 1]
    assert len(starts) == 1
    allowed = sum(v.allowed for v in verdicts)
    assert 3 + 9 <= allowed <= 3 + 10  # the burst, then the rate over 0.99 s
    # Quiet for burst / rate seconds: full again, the period ends and says how long it was.
    assert limiter.check("a", 0.99 + 0.3) == Verdict(True, 100 - allowed)


def test_a_clock_stepping_back_mints_no_tokens():
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.allow("a", 10.0)
    assert not limiter.allow("a", 5.0)
    assert not limiter.allow("a", 10.5)  # still half a token short since 10.0
    assert limiter.allow("a", 11.0)


def test_idle_sources_are_forgotten():
    limiter = RateLimiter(rate=10, burst=5)  # full again 0.5 s after the last event
    limiter.allow("old", 0.0)
    limiter.allow("new", 0.4)
    assert limiter.forget_idle(0.6) == 1
    assert "old" not in limiter and "new" in limiter
    assert limiter.forget_idle(0.6) == 0


def test_memory_is_capped_and_the_least_recently_seen_goes_first():
    limiter = RateLimiter(rate=1, burst=1, max_sources=3)
    for source in "abc":
        assert limiter.allow(source, 0.0)
    limiter.check("a", 0.0)  # a is now the most recently seen
    assert limiter.allow("d", 0.0)  # a newcomer is never refused for lack of room
    assert limiter.tracked == 3
    assert "b" not in limiter and {"a", "c", "d"} <= {s for s in "abcd" if s in limiter}


def test_a_newcomer_finds_room_by_forgetting_idle_ones_first():
    limiter = RateLimiter(rate=1, burst=1, max_sources=2)
    limiter.allow("a", 0.0)
    limiter.allow("b", 0.9)
    limiter.allow("c", 1.0)  # a is idle (full again): it goes, b stays
    assert "a" not in limiter and "b" in limiter and "c" in limiter


@pytest.mark.parametrize(
    "rate, burst, max_sources", [(0, 1, 1), (-1, 1, 1), (1, 0.5, 1), (1, 1, 0), (1, 1, 1.5)]
)
def test_bad_settings_are_refused(rate, burst, max_sources):
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, max_sources)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.floats(0, 0.5, allow_nan=False)),
        max_size=200,
    ),
    st.integers(1, 8),
)
def test_each_source_gets_at_most_burst_plus_rate_times_elapsed(events, max_sources):
    """Per source: at most burst + rate * (its last event - its first) allowed - exact
    while no source is evicted; and memory never exceeds max_sources."""
    rate, burst = 4.0, 3.0
    limiter = RateLimiter(rate, burst, max_sources=max_sources)
    now = 0.0
    allowed: dict[str, int] = {}
    first: dict[str, float] = {}
    for source, step in events:
        now += step
        first.setdefault(source, now)
        allowed[source] = allowed.get(source, 0) + limiter.allow(source, now)
        assert limiter.tracked <= max_sources
        if max_sources >= 6:  # room for all six: nobody is ever evicted
            assert allowed[source] <= burst + rate * (now - first[source]) + 1e-9


def test_a_source_at_exactly_the_rate_is_never_refused():
    limiter = RateLimiter(rate=4.0, burst=1.0)
    assert all(limiter.allow("honest", t / 4.0) for t in range(1000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 0.3, allow_nan=False), min_size=1, max_size=300))
def test_one_source_gets_at_most_burst_plus_rate_times_elapsed(steps):
    rate, burst = 5.0, 4.0
    limiter = RateLimiter(rate, burst)
    now = 0.0
    allowed = 0
    for step in steps:
        now += step
        allowed += limiter.allow("a", now)
    assert allowed <= burst + rate * now + 1e-9
    assert allowed >= min(len(steps), int(burst))  # the first burst always passes


def test_a_limiter_with_no_sources_yet_is_still_true():
    assert RateLimiter(rate=1, burst=1)
