"""The monthly event quota of an account, as a pure policy over counts and periods.

A period is a calendar month in UTC. The policy decides whether one more event fits, and
which notices a new count makes due: a `usage.warning` for each warning threshold
crossed for the first time in the period, and one `usage.quota_exceeded` when the
count reaches the quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Period:
    """A quota period: from `start` up to but not including `end`, in Unix seconds."""

    start: int
    end: int

    @property
    def label(self) -> str:
        """Return the month as `YYYY-MM`."""
        return datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m")

    @property
    def end_text(self) -> str:
        """Return the end as ISO 8601 in UTC, such as `2024-03-01T00:00:00Z`."""
        return datetime.fromtimestamp(self.end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def seconds_left(self, now: float) -> int:
        """Return the whole seconds until the period ends, at least 1."""
        return max(1, math.ceil(self.end - now))


def month_period(now: float) -> Period:
    """Return the calendar month in UTC that contains `now` (Unix seconds)."""
    moment = datetime.fromtimestamp(now, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    if moment.month == 12:
        end = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    else:
        end = datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    return Period(start=int(start.timestamp()), end=int(end.timestamp()))


@dataclass(frozen=True)
class QuotaNotices:
    """The notices that one counted event makes due."""

    warnings: tuple[int, ...] = ()
    exceeded: bool = False

    def __bool__(self) -> bool:
        return bool(self.warnings) or self.exceeded


@dataclass(frozen=True)
class QuotaPolicy:
    """An account's quota of published events per period; 0 means unlimited."""

    quota: int
    # Warning thresholds in percent of the quota, ascending.
    thresholds: tuple[int, ...] = field(default=(80, 90))

    @property
    def unlimited(self) -> bool:
        return self.quota <= 0

    def allows(self, count: int) -> bool:
        """Return whether one more event fits after `count` events in the period."""
        return self.unlimited or count < self.quota

    def notices_due(self, count: int, warned_percent: int, quota_notified: bool) -> QuotaNotices:
        """Return the notices due at `count`, given those already sent this period."""
        if self.unlimited:
            return QuotaNotices()

        # Integer arithmetic: 80% of a quota of 7 is crossed at 6 events, not at 5.6.
        crossed = tuple(
            threshold
            for threshold in self.thresholds
            if threshold > warned_percent and count * 100 >= threshold * self.quota
        )
        return QuotaNotices(warnings=crossed, exceeded=count >= self.quota and not quota_notified)
