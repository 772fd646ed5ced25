"""The token-bucket policy of request rate limits, with no I/O.

A bucket holds up to `burst` tokens and gains `rate` tokens per second. Each request
takes one token, and a request that finds less than one token is rejected. The policy
takes the bucket's state and the time, and returns a grant with the new state. The
caller stores that state, in process memory or in a database row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Retry-After is whole seconds, and 0 would invite clients to retry at once.
MIN_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class RateLimit:
    """The size of one API key's bucket: `rate` requests per second, `burst` at once."""

    rate: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0


@dataclass(frozen=True)
class BucketState:
    """Tokens left in a bucket at `updated`, in Unix seconds."""

    tokens: float
    updated: float


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request, with the values of its rate-limit headers."""

    allowed: bool
    limit: int
    remaining: int
    # When the bucket is full again, in Unix seconds.
    reset_at: int
    # Seconds until a rejected request may succeed; 0 for allowed requests.
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        """Return the X-RateLimit-* headers, and Retry-After for a rejected request."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass(frozen=True)
class Grant:
    """Tokens granted from a bucket, the bucket's new state and the decision it implies."""

    granted: int
    state: BucketState
    decision: RateDecision


class TokenBucket:
    """Decides how many tokens a request gets; stateless, so one instance serves all keys."""

    def take(
        self,
        state: BucketState | None,
        limit: RateLimit,
        now: float,
        requested: int = 1,
        *,
        returned: int = 0,
    ) -> Grant:
        """Take up to `requested` whole tokens after putting back `returned` unused ones.

        A missing state is a full bucket. The limit must not be unlimited.
        """
        tokens = min(float(limit.burst), self.refill(state, limit, now) + returned)
        granted = min(requested, math.floor(tokens))
        left = tokens - granted
        updated = now if state is None else max(now, state.updated)

        decision = RateDecision(
            allowed=granted > 0,
            limit=limit.burst,
            remaining=math.floor(left),
            reset_at=math.ceil(now + (limit.burst - left) / limit.rate),
            retry_after=0 if granted else self.retry_after(tokens, limit),
        )
        return Grant(granted=granted, state=BucketState(left, updated), decision=decision)

    def refill(self, state: BucketState | None, limit: RateLimit, now: float) -> float:
        """Return the tokens in the bucket at `now`, never more than `burst`."""
        if state is None:
            return float(limit.burst)

        # A clock that moved backwards adds nothing, and the bucket keeps its tokens.
        elapsed = max(0.0, now - state.updated)
        return min(float(limit.burst), state.tokens + elapsed * limit.rate)

    def next_token_at(self, state: BucketState, limit: RateLimit) -> float:
        """Return when the bucket has one whole token again, in Unix seconds."""
        return state.updated + max(0.0, 1 - state.tokens) / limit.rate

    def retry_after(self, tokens: float, limit: RateLimit) -> int:
        """Return the whole seconds until the bucket has one token again."""
        return max(MIN_RETRY_AFTER_SECONDS, math.ceil((1 - tokens) / limit.rate))


def one_second_burst(rate: float) -> int:
    """Return a burst of one second of requests at `rate`, at least 1."""
    return max(1, math.ceil(rate))


def resolve_limit(
    rate: float | None, burst: int | None, default_rate: float, default_burst: int | None
) -> RateLimit:
    """Combine overrides with the defaults; an overridden rate without a burst gets one second."""
    if rate is None:
        rate, burst = default_rate, burst or default_burst
    return RateLimit(rate=rate, burst=burst or one_second_burst(rate))
