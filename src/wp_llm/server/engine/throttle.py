"""Per-endpoint send budgets inside one worker: a concurrency window and a token bucket.

The window follows AIMD, as TCP congestion control does. It grows by about one slot
per window of successful attempts. It halves when the endpoint signals overload (429,
502, 503, 504 or a timeout), but at most once per round of requests, because only an
attempt that started after the last decrease can shrink it again. A `Retry-After` on
such an answer pauses the whole endpoint, not only the one delivery.

Times here are `time.monotonic()` seconds, passed in by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

CONGESTION_STATUSES = frozenset({429, 502, 503, 504})
MIN_WINDOW = 1.0
WINDOW_DECREASE_FACTOR = 0.5
# Size of the token bucket, in seconds of the endpoint's rate; it is at least one token.
BURST_SECONDS = 1.0
# An endpoint with nothing in flight and its full budget is forgotten after this long.
IDLE_SECONDS = 60.0
# A shrunken window is stale once its endpoint has had no traffic for this long.
STALE_WINDOW_SECONDS = 600.0
# Deliveries a worker keeps claimed for a healthy endpoint, in windows: one in flight,
# the rest waiting to start as slots free up, so a claim is not needed for every slot.
PREFETCH_WINDOWS = 4


def is_congestion(status_code: int | None, timed_out: bool) -> bool:
    """Check whether an attempt's outcome means the endpoint is overloaded."""
    return timed_out or status_code in CONGESTION_STATUSES


def pause_seconds(status_code: int | None, retry_after: float | None, cap: float) -> float | None:
    """Return the capped pause an overloaded endpoint asked for, or None when it asked for none."""
    if retry_after is None or status_code not in CONGESTION_STATUSES:
        return None
    return min(retry_after, cap)


@dataclass
class EndpointThrottle:
    """The send budget of one endpoint: AIMD concurrency window, token bucket and pause."""

    max_concurrency: int
    rate_limit: float | None
    window: float
    tokens: float
    refilled_at: float
    last_used: float
    in_flight: int = 0
    decreased_at: float = -math.inf
    paused_until: float = -math.inf
    # Whether the latest attempt failed; a failing endpoint gets nothing claimed ahead.
    failing: bool = False

    @classmethod
    def new(cls, max_concurrency: int, rate_limit: float | None, now: float) -> EndpointThrottle:
        throttle = cls(max_concurrency, rate_limit, float(max_concurrency), 0.0, now, now)
        throttle.tokens = throttle.bucket_size
        return throttle

    @property
    def bucket_size(self) -> float:
        if self.rate_limit is None:
            return math.inf
        return max(1.0, self.rate_limit * BURST_SECONDS)

    def configure(self, max_concurrency: int, rate_limit: float | None) -> None:
        """Apply settings changed through the API, shrinking the window and bucket to fit."""
        if max_concurrency != self.max_concurrency:
            self.window = min(self.window, float(max_concurrency))
            self.max_concurrency = max_concurrency
        if rate_limit != self.rate_limit:
            self.rate_limit = rate_limit
            self.tokens = min(self.tokens, self.bucket_size)

    def _refill(self, now: float) -> None:
        if self.rate_limit is not None:
            earned = (now - self.refilled_at) * self.rate_limit
            self.tokens = min(self.bucket_size, self.tokens + earned)
        self.refilled_at = now

    def allowance(self, now: float) -> int:
        """Return how many more deliveries may start now."""
        if now < self.paused_until:
            return 0
        self._refill(now)
        room = int(self.window) - self.in_flight
        if self.rate_limit is not None:
            room = min(room, math.floor(self.tokens))
        return max(room, 0)

    def start(self, now: float) -> None:
        self._refill(now)
        self.in_flight += 1
        self.last_used = now
        if self.rate_limit is not None:
            self.tokens -= 1.0

    def finish(self, *, started_at: float, succeeded: bool, congested: bool, now: float) -> None:
        """Release a slot and adjust the window to the attempt's outcome."""
        self.in_flight = max(self.in_flight - 1, 0)
        self.last_used = now
        self.failing = not succeeded
        if congested and started_at >= self.decreased_at:
            self.window = max(MIN_WINDOW, self.window * WINDOW_DECREASE_FACTOR)
            self.decreased_at = now
        elif succeeded:
            self.window = min(float(self.max_concurrency), self.window + 1.0 / self.window)

    def claim_target(self, now: float) -> int:
        """Return how many deliveries to hold claimed for this endpoint, in flight included.

        A healthy endpoint gets `PREFETCH_WINDOWS` windows; a failing one only what may
        start now, so an opening circuit finds few deliveries already claimed.
        """
        if now < self.paused_until:
            return 0
        budget = int(self.window)
        if self.rate_limit is not None:
            budget = min(budget, max(1, math.ceil(self.rate_limit * BURST_SECONDS)))
        if self.failing:
            return self.in_flight + self.allowance(now)
        return budget * PREFETCH_WINDOWS

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def ready_at(self, now: float) -> float | None:
        """Return when a blocked endpoint may start again by time alone, or None.

        None also covers an endpoint that only waits for one of its own deliveries to finish.
        """
        if now < self.paused_until:
            return self.paused_until
        if self.rate_limit is not None and self.tokens < 1.0 and int(self.window) > self.in_flight:
            return now + (1.0 - self.tokens) / self.rate_limit
        return None

    def idle(self, now: float) -> bool:
        """Check whether forgetting this throttle would lose nothing that still matters."""
        if self.in_flight > 0 or now < self.paused_until:
            return False
        full = self.window >= self.max_concurrency
        return now - self.last_used >= (IDLE_SECONDS if full else STALE_WINDOW_SECONDS)


@dataclass
class Throttles:
    """The throttles of every endpoint this worker sends to recently.

    No endpoint may hold more than `max_share` of the worker's slots, whatever its own
    limit, so one endpoint that hangs before any failure is known still leaves room.
    """

    default_concurrency: int
    max_share: int
    endpoints: dict[str, EndpointThrottle] = field(default_factory=dict)

    @property
    def default_quota(self) -> int:
        """Deliveries that an endpoint without a throttle in this worker may start at once."""
        return min(self.default_concurrency, self.max_share)

    def configure(
        self, webhook_id: str, max_concurrency: int | None, rate_limit: float | None, now: float
    ) -> EndpointThrottle:
        """Return the endpoint's throttle, created or updated with its current settings."""
        concurrency = min(max_concurrency or self.default_concurrency, self.max_share)
        throttle = self.endpoints.get(webhook_id)
        if throttle is None:
            throttle = EndpointThrottle.new(concurrency, rate_limit, now)
            self.endpoints[webhook_id] = throttle
        else:
            throttle.configure(concurrency, rate_limit)
        return throttle

    @property
    def default_claim_quota(self) -> int:
        """Deliveries to claim for an endpoint without a throttle in this worker."""
        return self.default_quota * PREFETCH_WINDOWS

    def claim_quotas(self, now: float, waiting: Mapping[str, int]) -> dict[str, int]:
        """Return how many more deliveries to claim for each tracked endpoint.

        `waiting` counts the deliveries each endpoint has claimed and not yet started.
        Idle throttles are dropped first.
        """
        for webhook_id in [w for w, t in self.endpoints.items() if t.idle(now)]:
            del self.endpoints[webhook_id]
        return {
            webhook_id: t.claim_target(now) - t.in_flight - waiting.get(webhook_id, 0)
            for webhook_id, t in self.endpoints.items()
        }

    def next_ready(self, now: float) -> float | None:
        """Return the soonest time a paused or rate-limited endpoint may start again."""
        times = [t.ready_at(now) for t in self.endpoints.values()]
        pending = [when for when in times if when is not None]
        return min(pending, default=None)
