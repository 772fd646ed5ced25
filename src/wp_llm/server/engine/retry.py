"""When to try a failed delivery again: a pure policy that returns a decision."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Growing delays with jitter; the endpoint's `Retry-After` can lengthen one, up to a cap."""

    schedule: tuple[float, ...]
    jitter: float = 0.2
    retry_after_cap: float = 6 * 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def next_delay(
        self, attempts_made: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds until the next attempt after `attempts_made` attempts, or None to give up."""
        if attempts_made >= self.max_attempts:
            return None
        base = self.schedule[max(attempts_made - 1, 0)]
        spread = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        delay = base * (1.0 + spread)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read `Retry-After` as delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
