"""The `data` of the usage notices, in the fields their catalog schemas require."""

from __future__ import annotations

from typing import Any

from wp_llm.server.usage.quota import Period, QuotaPolicy
from wp_llm.server.usage.ratelimit import RateDecision

LIMIT_EXCEEDED = "usage.limit_exceeded"
QUOTA_EXCEEDED = "usage.quota_exceeded"
QUOTA_WARNING = "usage.warning"


def limit_exceeded_data(decision: RateDecision) -> dict[str, Any]:
    """Describe the first rejected request of a window: the bucket's requests plus this one."""
    return {
        "limit": decision.limit,
        "current_usage": decision.limit + 1,
        "reset_time": decision.reset_at,
        "retry_after": decision.retry_after,
    }


def quota_exceeded_data(policy: QuotaPolicy, count: int, period: Period) -> dict[str, Any]:
    return {
        "quota": policy.quota,
        "current_usage": count,
        "period_start": period.start,
        "period_end": period.end,
    }


def warning_data(policy: QuotaPolicy, count: int, threshold: int, period: Period) -> dict[str, Any]:
    return {
        "quota": policy.quota,
        "current_usage": count,
        "threshold": threshold,
        "period_start": period.start,
        "period_end": period.end,
    }
