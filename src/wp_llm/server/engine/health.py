"""Endpoint health inside a worker: outcomes are batched, stored, logged and counted.

Outcomes are written just before the attempt records of the same batch, so a webhook
that a 410 Gone disables is disabled by the time its delivery shows as failed.
Successes of endpoints that were healthy when their delivery was claimed change
nothing, so they are not written, and a healthy fleet costs no extra queries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from wp_llm.server import ids
from wp_llm.server.engine import metrics
from wp_llm.server.engine.breaker import CircuitBreaker
from wp_llm.server.store.health import (
    GONE_REASON,
    EndpointOutcome,
    HealthChange,
    record_outcomes,
)

logger = logging.getLogger(__name__)

# While the database is down, outcomes beyond this many are dropped, oldest first.
# Health then lags by those attempts, and the next ones correct it.
MAX_PENDING_OUTCOMES = 10_000


class HealthTracker:
    """Queues endpoint outcomes and writes them with the attempt records that caused them.

    `add` runs on the event loop and `write` on a database thread. The queue between
    them is a deque, whose appends and pops are thread-safe.
    """

    def __init__(
        self,
        engine: Engine,
        breaker: CircuitBreaker,
        *,
        on_deliveries_due: Callable[[], None],
        worker: str = "",
    ) -> None:
        self._engine = engine
        self._breaker = breaker
        self._on_deliveries_due = on_deliveries_due
        self._worker = worker
        self._pending: deque[EndpointOutcome] = deque(maxlen=MAX_PENDING_OUTCOMES)

    def add(self, outcome: EndpointOutcome, *, healthy_before: bool) -> None:
        """Queue an outcome, unless it is a success that leaves a healthy endpoint as it was."""
        unchanged = outcome.succeeded and healthy_before and not outcome.probe
        if unchanged and outcome.paused_until is None:
            return
        self._pending.append(outcome)

    def write(self) -> None:
        """Write the queued outcomes, keeping them for the next write on a connection error.

        Any other error is logged and drops the batch, because endpoint health must never
        stop the attempt records that are written right after it.
        """
        batch: list[EndpointOutcome] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        try:
            changes = record_outcomes(self._engine, batch, self._breaker, ids.now_ms())
        except (OperationalError, InterfaceError) as error:
            self._pending.extendleft(reversed(batch))
            logger.warning(
                "recording endpoint health failed; will retry",
                extra={"worker": self._worker, "count": len(batch), "error": str(error)[:200]},
            )
            return
        except SQLAlchemyError:
            logger.exception(
                "recording endpoint health failed; outcomes dropped",
                extra={"worker": self._worker, "count": len(batch)},
            )
            return
        self._report(changes)

    def _report(self, changes: list[HealthChange]) -> None:
        due = False
        for change in changes:
            due |= self._report_circuit(change)
            if change.disabled_reason is not None:
                self._report_disabled(change)
                due |= change.notice_event_id is not None
        if due:
            self._on_deliveries_due()

    def _report_circuit(self, change: HealthChange) -> bool:
        before, after = change.before.circuit_state, change.after.circuit_state
        fields = {
            "webhook_id": change.webhook_id,
            "consecutive_failures": change.after.consecutive_failures,
            "worker": self._worker,
        }
        if before == "closed" and after == "open":
            metrics.CIRCUIT_TRANSITIONS.labels(state="open").inc()
            logger.warning("circuit opened; deliveries wait for a probe to succeed", extra=fields)
        elif before == "open" and after == "closed":
            metrics.CIRCUIT_TRANSITIONS.labels(state="closed").inc()
            logger.info("circuit closed; waiting deliveries resume", extra=fields)
            return True
        return False

    def _report_disabled(self, change: HealthChange) -> None:
        answered_gone = change.disabled_reason == GONE_REASON
        metrics.WEBHOOKS_DISABLED.labels(reason="gone" if answered_gone else "failing").inc()
        logger.warning(
            "webhook disabled",
            extra={
                "webhook_id": change.webhook_id,
                "reason": change.disabled_reason,
                "notice_event_id": change.notice_event_id,
                "worker": self._worker,
            },
        )
