"""The token bucket, driven by an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from chatd.core.ratelimit import Buckets, Budget, TokenBucket, take


def test_full_burst_is_allowed_at_once_then_refused() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0, now=100.0)
    assert [bucket.allow(100.0) for _ in range(5)] == [True] * 5
    assert bucket.allow(100.0) is False


def test_refusal_takes_no_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=0.0)
    assert bucket.allow(0.0)
    for _ in range(10):
        assert not bucket.allow(0.0)
    assert bucket.allow(1.0)  # one second later exactly one token came back


def test_tokens_refill_at_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=4.0, now=0.0)
    for _ in range(4):
        assert bucket.allow(0.0)
    assert not bucket.allow(0.0)
    # 0.5 s at 4/s is 2 tokens
    assert bucket.allow(0.5)
    assert bucket.allow(0.5)
    assert not bucket.allow(0.5)


def test_partial_refill_is_not_enough_for_a_whole_event() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=0.0)
    assert bucket.allow(0.0)
    assert not bucket.allow(0.9)
    assert bucket.allow(1.0)


def test_sustained_rate_is_allowed_indefinitely() -> None:
    # quarter seconds are exact in binary floating point, so each step refills exactly one token
    bucket = TokenBucket(rate=4.0, burst=1.0, now=0.0)
    for i in range(1, 1001):
        assert bucket.allow(i * 0.25), f"event {i} at the sustained rate was refused"


def test_idle_time_refills_only_up_to_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=3.0, now=0.0)
    for _ in range(3):
        assert bucket.allow(0.0)
    # an hour idle would be 360000 tokens uncapped
    allowed = sum(bucket.allow(3600.0) for _ in range(10))
    assert allowed == 3


def test_a_fresh_bucket_starts_full_but_not_above_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    assert sum(bucket.allow(1000.0) for _ in range(5)) == 2


def test_cost_takes_several_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=10.0, now=0.0)
    assert bucket.allow(0.0, cost=7.0)
    assert not bucket.allow(0.0, cost=4.0)
    assert bucket.allow(0.0, cost=3.0)
    assert not bucket.allow(0.0)


def test_a_clock_going_backwards_grants_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)
    assert not bucket.allow(10.5)
    assert bucket.allow(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.5, 1.0), (50.0, 100.0), (2.0, 2.0)])
def test_allowed_events_over_a_window_never_exceed_burst_plus_rate_times_window(
    rate: float, burst: float
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    window = 10.0
    steps = 1000
    allowed = 0
    for i in range(steps + 1):
        t = window * i / steps
        while bucket.allow(t):
            allowed += 1
    assert allowed <= burst + rate * window + 1e-9
    assert allowed >= burst + rate * window - 1


# ---------------------------------------------------------------------- buckets by key (GCRA)


def test_take_grants_the_burst_then_the_rate() -> None:
    budget = Budget(rate=2.0, burst=4.0)
    granted, tat, retry = take(0.0, 100.0, budget, 10)
    assert (granted, retry) == (4, 0.5)  # a token is back 1/rate after the bucket ran dry
    assert take(tat, 100.0, budget, 1)[0] == 0
    assert take(tat, 100.5, budget, 2)[0] == 1


def test_take_refuses_without_moving_the_bucket() -> None:
    budget = Budget(rate=1.0, burst=1.0)
    _, tat, _ = take(0.0, 10.0, budget, 1)
    granted, again, retry = take(tat, 10.25, budget, 1)
    assert (granted, again, retry) == (0, tat, 0.75)


def test_buckets_are_kept_apart_by_key_and_full_ones_are_forgotten() -> None:
    buckets = Buckets(max_keys=2)
    budget = Budget(rate=1.0, burst=1.0)
    assert buckets.take("a", 0.0, budget) == (1, 0.0)
    assert buckets.take("a", 0.0, budget)[0] == 0
    assert buckets.take("b", 0.0, budget)[0] == 1  # another key, its own budget
    assert buckets.take("c", 5.0, budget)[0] == 1  # a and b are full again: dropped
    assert len(buckets) == 1
