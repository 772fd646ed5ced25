"""The effect of one attempt on its delivery: the next state, and the log line."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from wp_llm.server import ids
from wp_llm.server.engine.metrics import DeliveryOutcome
from wp_llm.server.engine.retry import RetryPolicy
from wp_llm.server.engine.sender import SendResult
from wp_llm.server.store.deliveries import AttemptRecord, ClaimedDelivery, DeliveryStatus
from wp_llm.server.store.health import GONE_STATUS
from wp_llm.server.store.webhooks import Endpoint

logger = logging.getLogger(__name__)

# Stored in place of an attempt's error text when the database rejected the attempt.
DETAILS_NOT_STORED = "the error text of this attempt could not be stored"


class RetryPolicies:
    """The operator's retry policy, and one per custom schedule that endpoints ask for."""

    def __init__(self, default: RetryPolicy) -> None:
        self._default = default
        self._custom: dict[tuple[float, ...], RetryPolicy] = {}

    def for_endpoint(self, endpoint: Endpoint) -> RetryPolicy:
        schedule = endpoint.retry_schedule
        if schedule is None:
            return self._default
        policy = self._custom.get(schedule)
        if policy is None:
            policy = RetryPolicy(schedule, self._default.jitter, self._default.retry_after_cap)
            self._custom[schedule] = policy
        return policy


def storable(text: str | None) -> str | None:
    """Return text that every database can store: PostgreSQL rejects NUL in text columns.

    One NUL in an endpoint's response made the whole batch of attempts fail to record, so
    the worker stopped claiming until it restarted.
    """
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


def without_details(record: AttemptRecord) -> AttemptRecord:
    """Return the record without the texts that endpoints and networks supply.

    A database that rejects an attempt most likely rejects one of those: the error text
    or the response body. The status, timing and next state of the delivery stay.
    """
    return dataclasses.replace(
        record,
        error=None if record.error is None else DETAILS_NOT_STORED,
        response_body=None,
        # Set when the endpoint sent a body, since none of it is stored.
        response_truncated=bool(record.response_body),
    )


def attempt_record(
    delivery: ClaimedDelivery, result: SendResult, policy: RetryPolicy, attempted_at: int
) -> AttemptRecord:
    """Decide the delivery's next state after an attempt, as the record that stores it."""
    next_status: DeliveryStatus = "succeeded"
    next_attempt_at: int | None = None
    spends_attempt = True
    if not result.succeeded:
        delay = policy.next_delay(delivery.attempt_count + 1, result.retry_after)
        if result.status_code == GONE_STATUS or (delay is None and not delivery.probe):
            next_status = "failed"
        elif delivery.probe:
            # The delivery keeps waiting behind the open circuit, its attempts unspent.
            next_status = "pending"
            next_attempt_at = ids.now_ms()
            spends_attempt = False
        else:
            next_status = "pending"
            next_attempt_at = ids.now_ms() + int((delay or 0.0) * 1000)
    return AttemptRecord(
        delivery_id=delivery.id,
        webhook_id=delivery.webhook_id,
        account_id=delivery.account_id,
        attempted_at=attempted_at,
        latency_ms=result.latency_ms,
        status_code=result.status_code,
        error=storable(result.error),
        response_body=storable(result.response_body),
        response_truncated=result.response_truncated,
        succeeded=result.succeeded,
        next_status=next_status,
        next_attempt_at=next_attempt_at,
        spends_attempt=spends_attempt,
    )


def delivery_outcome(record: AttemptRecord) -> DeliveryOutcome:
    if record.succeeded:
        return "succeeded"
    if record.next_status == "failed":
        return "failed"
    return "retry_scheduled" if record.spends_attempt else "waiting"


def log_outcome(
    delivery: ClaimedDelivery, result: SendResult, record: AttemptRecord, outcome: DeliveryOutcome
) -> None:
    """Log one attempt with its ids, at a level that follows the outcome (error only when final)."""
    if outcome == "succeeded" and not logger.isEnabledFor(logging.DEBUG):
        return
    fields: dict[str, Any] = {
        "delivery_id": delivery.id,
        "event_id": delivery.event_id,
        "webhook_id": delivery.webhook_id,
        "attempt": delivery.attempt_count + 1,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
    }
    if outcome == "succeeded":
        logger.debug("delivery succeeded", extra=fields)
        return
    fields["error"] = result.error
    if outcome == "failed":
        logger.error("delivery failed; no attempts left", extra=fields)
    elif outcome == "waiting":
        logger.info("circuit probe failed; deliveries keep waiting", extra=fields)
    else:
        fields["retry_in_s"] = round(((record.next_attempt_at or 0) - ids.now_ms()) / 1000, 3)
        logger.info("delivery attempt failed; will retry", extra=fields)
