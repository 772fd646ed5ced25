"""The token-bucket policy and the in-memory limiter, driven by a manual clock."""

from __future__ import annotations

import pytest

from wp_llm.server.usage.clock import ManualClock
from wp_llm.server.usage.limiters import MemoryRateLimiter, lease_size
from wp_llm.server.usage.ratelimit import (
    BucketState,
    RateDecision,
    RateLimit,
    TokenBucket,
    resolve_limit,
)

START = 1_700_000_000.0
LIMIT = RateLimit(rate=2.0, burst=4)


def drain(bucket: TokenBucket, limit: RateLimit, now: float) -> BucketState:
    state = None
    for _ in range(limit.burst):
        state = bucket.take(state, limit, now).state
    assert state is not None
    return state


def test_token_bucket_starts_full() -> None:
    grant = TokenBucket().take(None, LIMIT, START)

    assert grant.decision.allowed
    assert grant.decision.remaining == LIMIT.burst - 1
    assert grant.decision.limit == LIMIT.burst


def test_token_bucket_rejects_when_empty() -> None:
    bucket = TokenBucket()
    state = drain(bucket, LIMIT, START)

    grant = bucket.take(state, LIMIT, START)

    assert grant.granted == 0
    assert not grant.decision.allowed
    assert grant.decision.remaining == 0
    # One token at 2 per second takes 0.5 s, and Retry-After rounds up to whole seconds.
    assert grant.decision.retry_after == 1


def test_token_bucket_reset_is_when_full_again() -> None:
    state = drain(TokenBucket(), LIMIT, START)

    grant = TokenBucket().take(state, LIMIT, START)

    assert grant.decision.reset_at == int(START) + 2


def test_token_bucket_refills_at_rate() -> None:
    bucket = TokenBucket()
    state = drain(bucket, LIMIT, START)

    grant = bucket.take(state, LIMIT, START + 0.5)

    assert grant.decision.allowed
    assert grant.decision.remaining == 0


def test_token_bucket_never_holds_more_than_burst() -> None:
    bucket = TokenBucket()
    state = bucket.take(None, LIMIT, START).state

    grant = bucket.take(state, LIMIT, START + 3600)

    assert grant.decision.remaining == LIMIT.burst - 1


def test_token_bucket_ignores_clock_moving_backwards() -> None:
    bucket = TokenBucket()
    state = drain(bucket, LIMIT, START)

    earlier = bucket.take(state, LIMIT, START - 60)
    back_at_start = bucket.take(earlier.state, LIMIT, START)

    assert not earlier.decision.allowed
    assert not back_at_start.decision.allowed


def test_token_bucket_grants_at_most_requested() -> None:
    grant = TokenBucket().take(None, LIMIT, START, requested=10)

    assert grant.granted == LIMIT.burst
    assert grant.state.tokens == 0


def test_token_bucket_takes_back_returned_tokens() -> None:
    bucket = TokenBucket()
    state = drain(bucket, LIMIT, START)

    grant = bucket.take(state, LIMIT, START, returned=2)

    assert grant.granted == 1
    assert grant.state.tokens == 1


def test_token_bucket_caps_returned_tokens_at_burst() -> None:
    grant = TokenBucket().take(None, LIMIT, START, returned=100)

    assert grant.state.tokens == LIMIT.burst - 1


def test_token_bucket_shrinks_to_lowered_burst() -> None:
    bucket = TokenBucket()
    state = bucket.take(None, RateLimit(rate=2.0, burst=100), START).state

    grant = bucket.take(state, LIMIT, START)

    assert grant.decision.remaining == LIMIT.burst - 1


def test_rate_decision_headers_of_allowed_request() -> None:
    headers = RateDecision(allowed=True, limit=10, remaining=9, reset_at=1700000001).headers()

    assert headers == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "9",
        "X-RateLimit-Reset": "1700000001",
    }


def test_rate_decision_headers_of_rejected_request() -> None:
    decision = RateDecision(
        allowed=False, limit=10, remaining=0, reset_at=1700000005, retry_after=3
    )

    assert decision.headers()["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("rate", "burst", "default_rate", "default_burst", "expected"),
    [
        (None, None, 100.0, None, RateLimit(100.0, 100)),
        (None, None, 100.0, 250, RateLimit(100.0, 250)),
        # An account that overrides only the burst keeps the default rate.
        (None, 5, 100.0, 250, RateLimit(100.0, 5)),
        # An overridden rate brings its own one-second burst, not the default burst.
        (10.0, None, 100.0, 250, RateLimit(10.0, 10)),
        (0.5, None, 100.0, None, RateLimit(0.5, 1)),
        (0.0, None, 100.0, None, RateLimit(0.0, 1)),
    ],
)
def test_resolve_limit_combines_overrides_with_defaults(
    rate: float | None,
    burst: int | None,
    default_rate: float,
    default_burst: int | None,
    expected: RateLimit,
) -> None:
    assert resolve_limit(rate, burst, default_rate, default_burst) == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (RateLimit(rate=100.0, burst=100), 5),
        # A small burst caps the lease, so one process cannot hold most of it.
        (RateLimit(rate=1000.0, burst=20), 5),
        # Slow keys get exact, one-token reservations.
        (RateLimit(rate=10.0, burst=100), 1),
    ],
)
def test_lease_size_follows_rate_and_burst(limit: RateLimit, expected: int) -> None:
    assert lease_size(limit) == expected


def test_memory_limiter_keeps_a_bucket_per_key() -> None:
    limiter = MemoryRateLimiter()
    clock = ManualClock(START)
    for _ in range(LIMIT.burst):
        limiter.acquire("key_a", LIMIT, clock.now())

    first_key = limiter.acquire("key_a", LIMIT, clock.now())
    second_key = limiter.acquire("key_b", LIMIT, clock.now())

    assert not first_key.allowed
    assert second_key.allowed


def test_memory_limiter_admits_rate_over_time() -> None:
    limiter = MemoryRateLimiter()
    clock = ManualClock(START)
    admitted = 0
    # Ten seconds in steps of 10 ms, ten requests per step.
    for step in range(1001):
        clock.set(START + step / 100)
        admitted += sum(limiter.acquire("key", LIMIT, clock.now()).allowed for _ in range(10))

    exact = LIMIT.burst + LIMIT.rate * 10
    assert admitted <= exact
    # Floating-point refill may leave the last token a hair short of whole.
    assert admitted >= exact - 1
