"""Delivery statistics for the dashboard: attempts per hour, success rate and latency."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from wp_llm.server import ids
from wp_llm.server.db.schema import attempts, deliveries

HOUR_MS = 3_600_000
MAX_WINDOW_HOURS = 168
# The statistics read at most this many attempts, newest first, to bound the query's cost.
MAX_ATTEMPTS_READ = 200_000


@dataclass
class Bucket:
    """Attempts that started within one hour."""

    start: int
    succeeded: int = 0
    failed: int = 0
    latencies: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start // 1000,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "p50_ms": _percentile(self.latencies, 50),
            "p95_ms": _percentile(self.latencies, 95),
        }


def _percentile(values: list[int], percent: int) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[percent - 1])


def delivery_stats(engine: Engine, account_id: str, hours: int) -> dict[str, object]:
    """Summarize the account's attempts of the last `hours` hours in hourly buckets."""
    now = ids.now_ms()
    first_hour = (now // HOUR_MS - hours + 1) * HOUR_MS
    buckets = {first_hour + i * HOUR_MS: Bucket(first_hour + i * HOUR_MS) for i in range(hours)}
    query = (
        select(attempts.c.attempted_at, attempts.c.outcome, attempts.c.latency_ms)
        .where(attempts.c.account_id == account_id, attempts.c.attempted_at >= first_hour)
        .order_by(attempts.c.attempted_at.desc())
        .limit(MAX_ATTEMPTS_READ)
    )
    pending_query = select(func.count()).where(
        deliveries.c.account_id == account_id, deliveries.c.status == "pending"
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        pending = int(connection.execute(pending_query).scalar_one())

    everything = Bucket(first_hour)
    for attempted_at, outcome, latency in rows:
        for bucket in (buckets[attempted_at // HOUR_MS * HOUR_MS], everything):
            if outcome == "succeeded":
                bucket.succeeded += 1
            else:
                bucket.failed += 1
            bucket.latencies.append(latency)

    total = everything.succeeded + everything.failed
    return {
        "object": "delivery_stats",
        "window_hours": hours,
        "pending": pending,
        "attempts": total,
        "success_rate": everything.succeeded / total if total else None,
        "p50_ms": _percentile(everything.latencies, 50),
        "p95_ms": _percentile(everything.latencies, 95),
        "truncated": len(rows) == MAX_ATTEMPTS_READ,
        "buckets": [bucket.as_dict() for bucket in buckets.values()],
    }
