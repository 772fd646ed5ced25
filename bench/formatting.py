"""Numbers as the Markdown report prints them."""

from __future__ import annotations

import math
from typing import Any

# Values at or above this print as whole numbers with thousands separators.
WHOLE_NUMBER_FROM = 100


def is_finite_number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: Any, digits: int = 3) -> str:
    """Format `1234.5` as `1,234`, `12.345` as `12.3`, and anything not finite as `n/a`."""
    if not is_finite_number(value):
        return "n/a"
    if abs(value) >= WHOLE_NUMBER_FROM:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_ratio(ours: Any, other: Any) -> str:
    """Format ours divided by other as `2.50x`, or `-` when either is missing or not positive."""
    valid = all(is_finite_number(v) and v > 0 for v in (ours, other))
    return f"{ours / other:.2f}x" if valid else "-"
