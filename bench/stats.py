"""Percentiles, medians and rates over the sink's receipts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from bench.sink import Receipt

MILLISECONDS_PER_SECOND = 1000.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the value below which `fraction` of the values fall, interpolating linearly."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    if weight == 0 or math.isinf(ordered[upper]):
        # Interpolating toward infinity (a lost event) would give NaN; the honest answer is inf.
        return ordered[lower] if weight == 0 else math.inf
    return ordered[lower] + (ordered[upper] - ordered[lower]) * weight


def median(values: Iterable[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else math.nan


def successful(receipts: Iterable[Receipt]) -> list[Receipt]:
    return [receipt for receipt in receipts if 200 <= receipt.status < 300]


def delivery_rate(receipts: Sequence[Receipt]) -> float:
    """Distinct deliveries per second between the first and the last receipt."""
    answered = successful(receipts)
    if len(answered) < 2:
        return math.nan
    times = [receipt.at for receipt in answered]
    span = max(times) - min(times)
    distinct = len({receipt.delivery_id for receipt in answered})
    return distinct / span if span > 0 else math.nan


def latency_summary(latencies_seconds: Sequence[float]) -> dict[str, float]:
    """Return p50, p90, p99 and the maximum, in milliseconds."""
    in_ms = [value * MILLISECONDS_PER_SECOND for value in latencies_seconds]
    return {
        "p50_ms": percentile(in_ms, 0.50),
        "p90_ms": percentile(in_ms, 0.90),
        "p99_ms": percentile(in_ms, 0.99),
        "max_ms": max(in_ms) if in_ms else math.nan,
        "count": len(in_ms),
    }
