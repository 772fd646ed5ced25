"""Prometheus metrics of the delivery engine, served by the API at `/metrics`.

Counters and the latency histogram are updated by the worker of this process.
Database totals (pending deliveries, open circuits, disabled webhooks) are sampled
every `metrics_interval` seconds by `sample_database`, because counting pending
rows on every scrape costs a table scan on a large queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from wp_llm.server.engine.sender import SendResult
from wp_llm.server.store.health import count_health

logger = logging.getLogger(__name__)

# The delivery's state after an attempt: delivered, due again later, failed for good,
# or still waiting behind an open circuit after a failed probe.
DeliveryOutcome = Literal["succeeded", "retry_scheduled", "failed", "waiting"]

# In seconds, from a fast local receiver up to the largest endpoint timeout.
ATTEMPT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

DELIVERY_OUTCOMES = Counter(
    "wp_llm_delivery_outcomes",
    "Delivery attempts by what they left the delivery as.",
    ["outcome"],
)
ATTEMPT_RESULTS = Counter(
    "wp_llm_delivery_attempts",
    "Delivery attempts by result: success, or the kind of failure.",
    ["result"],
)
ATTEMPT_SECONDS = Histogram(
    "wp_llm_delivery_attempt_duration_seconds",
    "Time from sending a delivery request to its outcome, in seconds.",
    buckets=ATTEMPT_SECONDS_BUCKETS,
)
IN_FLIGHT = Gauge("wp_llm_deliveries_in_flight", "Deliveries this process is sending now.")
HANDED_OFF = Counter(
    "wp_llm_deliveries_handed_off",
    "Deliveries that this process's worker took as they were published, without a claim.",
)
CLAIMS = Counter(
    "wp_llm_claims",
    "Claim queries of this process's worker, by whether they found deliveries: found or empty.",
    ["result"],
)
for _result in ("found", "empty"):
    CLAIMS.labels(_result)
CIRCUIT_TRANSITIONS = Counter(
    "wp_llm_circuit_transitions",
    "Endpoint circuits that this process opened or closed.",
    ["state"],
)
WEBHOOKS_DISABLED = Counter(
    "wp_llm_webhooks_disabled_by_engine",
    "Webhooks this process disabled, by reason.",
    ["reason"],
)
PENDING_DELIVERIES = Gauge(
    "wp_llm_deliveries_pending", "Pending deliveries in the database, sampled."
)
OPEN_CIRCUITS = Gauge(
    "wp_llm_webhooks_circuit_open", "Enabled webhooks whose circuit is open, sampled."
)
DISABLED_WEBHOOKS = Gauge("wp_llm_webhooks_disabled", "Disabled webhooks, sampled.")


@functools.cache
def _attempt_counters(kind: str, outcome: DeliveryOutcome) -> tuple[Counter, Counter]:
    # Looking up a labelled child takes a lock and two dict lookups. Once per attempt,
    # that cost more than the increment itself.
    return ATTEMPT_RESULTS.labels(result=kind), DELIVERY_OUTCOMES.labels(outcome=outcome)


def observe_attempt(result: SendResult, outcome: DeliveryOutcome) -> None:
    kind = "success" if result.succeeded else result.failure or "http_error"
    attempts, outcomes = _attempt_counters(kind, outcome)
    attempts.inc()
    outcomes.inc()
    ATTEMPT_SECONDS.observe(result.latency_ms / 1000)


async def sample_database(engine: Engine, interval: float) -> None:
    """Refresh the sampled gauges every `interval` seconds until cancelled."""
    while True:
        try:
            counts = await asyncio.to_thread(count_health, engine)
        except DBAPIError as error:
            logger.warning("metrics sample failed; will retry", extra={"error": str(error)[:200]})
        except Exception:
            logger.exception("metrics sample failed unexpectedly; will retry")
        else:
            PENDING_DELIVERIES.set(counts.pending_deliveries)
            OPEN_CIRCUITS.set(counts.open_circuits)
            DISABLED_WEBHOOKS.set(counts.disabled_webhooks)
        await asyncio.sleep(interval)
