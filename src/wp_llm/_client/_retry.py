"""When to retry a request and how long to wait: pure decisions, no I/O."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
# A longer Retry-After is not waited out: the error reaches the caller, with `retry_after` set.
MAX_RETRY_AFTER_SECONDS = 60.0

NOT_IMPLEMENTED = 501
TOO_MANY_REQUESTS = 429
CONFLICT = 409
IN_PROGRESS_CODE = "idempotency_request_in_progress"
# The service lost its database connection while committing, and could not check whether
# the request's writes were stored. A retry could store them twice.
OUTCOME_UNKNOWN_CODE = "commit_outcome_unknown"

# Failures where the request may not have reached the service, or the response was lost.
# The other transport errors (an unsupported scheme, a bad proxy) repeat on every try.
RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def is_retryable_status(status_code: int, error_code: str | None) -> bool:
    """Tell whether an error status may go away on its own."""
    if status_code == TOO_MANY_REQUESTS:
        return True
    if error_code == OUTCOME_UNKNOWN_CODE:
        return False
    if status_code >= 500:
        return status_code != NOT_IMPLEMENTED
    # The first request with the same idempotency key still runs, and a later try gets its response.
    return status_code == CONFLICT and error_code == IN_PROGRESS_CODE


def is_retryable_error(error: httpx.RequestError) -> bool:
    return isinstance(error, RETRYABLE_TRANSPORT_ERRORS)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse `Retry-After` as delay seconds or an HTTP date; None when absent or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp() - now


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, at most `max_retries` times; Retry-After wins."""

    max_retries: int
    initial_backoff: float = INITIAL_BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def delay(self, retries_done: int, retry_after: float | None = None) -> float | None:
        """Return the seconds to wait before the next try, or None to give up."""
        if retries_done >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.initial_backoff * 2**retries_done)
        return self.uniform(0.0, ceiling)
