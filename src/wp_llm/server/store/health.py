"""Endpoint health in the database: circuit breaker state, pauses, and disabling.

`CircuitBreaker` decides and this module stores, so all workers that share the
database read and write one state per webhook. A webhook that the breaker gives up on, or
whose endpoint answers 410 Gone, is disabled, and a `webhook.disabled` event goes
to the account's other enabled webhooks that subscribe to it, in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from wp_llm.server.db.schema import deliveries, webhooks
from wp_llm.server.engine.breaker import AttemptOutcome, CircuitBreaker, EndpointHealth
from wp_llm.server.engine.netguard import redact_url
from wp_llm.server.engine.notify import announce_deliveries
from wp_llm.server.store.events import insert_event
from wp_llm.server.store.webhooks import disable_webhook

logger = logging.getLogger(__name__)

GONE_STATUS = 410
GONE_REASON = "The endpoint answered 410 Gone."
DISABLED_EVENT_TYPE = "webhook.disabled"
MAX_REASON_ERROR_CHARACTERS = 200

_HEALTH_COLUMNS = (
    webhooks.c.id,
    webhooks.c.account_id,
    webhooks.c.url,
    webhooks.c.enabled,
    webhooks.c.consecutive_failures,
    webhooks.c.failing_since,
    webhooks.c.circuit_state,
    webhooks.c.circuit_retry_at,
    webhooks.c.paused_until,
)


# Not frozen, because one is made per attempt: see ClaimedDelivery in store/deliveries.py.
@dataclass(slots=True)
class EndpointOutcome:
    """One finished attempt as endpoint health uses it, with times in Unix milliseconds."""

    webhook_id: str
    succeeded: bool
    attempted_at: int
    probe: bool = False
    status_code: int | None = None
    error: str | None = None
    # The endpoint asked, with Retry-After, to receive nothing before this time.
    paused_until: int | None = None


@dataclass(frozen=True)
class HealthChange:
    """The change in one webhook's health; `disabled_reason` is set if this change disabled it."""

    webhook_id: str
    before: EndpointHealth
    after: EndpointHealth
    disabled_reason: str | None = None
    notice_event_id: str | None = None


def _health(row: Mapping[str, Any]) -> EndpointHealth:
    return EndpointHealth(
        consecutive_failures=row["consecutive_failures"],
        failing_since=row["failing_since"],
        circuit_state=row["circuit_state"],
        circuit_retry_at=row["circuit_retry_at"],
    )


def _read(connection: Connection, webhook_ids: Sequence[str], *, lock: bool) -> dict[str, Any]:
    query = select(*_HEALTH_COLUMNS).where(webhooks.c.id.in_(sorted(webhook_ids)))
    if lock:
        # Locked in id order, so two health updates of the same webhooks cannot deadlock.
        # FOR NO KEY UPDATE on PostgreSQL: it does not block publishes, which read the
        # webhooks FOR KEY SHARE, where FOR UPDATE deadlocked with them.
        query = query.order_by(webhooks.c.id).with_for_update(key_share=True)
    return {row["id"]: row for row in connection.execute(query).mappings()}


def record_outcomes(
    engine: Engine, outcomes: Sequence[EndpointOutcome], breaker: CircuitBreaker, now: int
) -> list[HealthChange]:
    """Apply a batch of outcomes to their webhooks' health and return what changed."""
    grouped: dict[str, list[EndpointOutcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.webhook_id, []).append(outcome)

    with engine.begin() as connection:
        current = _read(connection, list(grouped), lock=False)
        touched = [
            webhook_id
            for webhook_id, row in current.items()
            if _needs_write(breaker, row, grouped[webhook_id], now)
        ]
        if not touched:
            return []
        # Read again under a row lock: another worker may have written in between.
        locked = _read(connection, touched, lock=True)
        return [
            _apply(connection, breaker, row, grouped[webhook_id], now)
            for webhook_id, row in locked.items()
        ]


def _breaker_inputs(outcomes: Sequence[EndpointOutcome]) -> list[AttemptOutcome]:
    return [AttemptOutcome(o.succeeded, o.attempted_at, o.probe) for o in outcomes]


def _needs_write(
    breaker: CircuitBreaker, row: Mapping[str, Any], outcomes: Sequence[EndpointOutcome], now: int
) -> bool:
    before = _health(row)
    after = breaker.after(before, _breaker_inputs(outcomes), now)
    paused = any(o.paused_until is not None for o in outcomes)
    return after != before or paused or _disable_reason(breaker, after, outcomes, now) is not None


def _apply(
    connection: Connection,
    breaker: CircuitBreaker,
    row: Mapping[str, Any],
    outcomes: Sequence[EndpointOutcome],
    now: int,
) -> HealthChange:
    before = _health(row)
    after = breaker.after(before, _breaker_inputs(outcomes), now)
    values: dict[str, Any] = {
        "consecutive_failures": after.consecutive_failures,
        "failing_since": after.failing_since,
        "circuit_state": after.circuit_state,
        "circuit_retry_at": after.circuit_retry_at,
    }
    pauses = [o.paused_until for o in outcomes if o.paused_until is not None]
    if pauses:
        values["paused_until"] = max([*pauses, row["paused_until"] or 0])
    connection.execute(update(webhooks).where(webhooks.c.id == row["id"]).values(**values))
    if before.circuit_state == "open" and after.circuit_state == "closed":
        # The waiting deliveries are due again: wake the workers of other processes.
        announce_deliveries(connection)

    reason = _disable_reason(breaker, after, outcomes, now)
    if reason is None or not row["enabled"]:
        return HealthChange(row["id"], before, after)
    notice_id = _disable(connection, row, after, reason, now)
    return HealthChange(row["id"], before, after, reason, notice_id)


def _disable_reason(
    breaker: CircuitBreaker, after: EndpointHealth, outcomes: Sequence[EndpointOutcome], now: int
) -> str | None:
    last = outcomes[-1]
    if last.status_code == GONE_STATUS:
        return GONE_REASON
    if not breaker.should_disable(after, now):
        return None
    got = f"HTTP {last.status_code}" if last.status_code else (last.error or "no answer")
    return (
        f"Deliveries failed continuously for {_duration_text(breaker.disable_after_ms)}; "
        f"the last attempt got {got[:MAX_REASON_ERROR_CHARACTERS]}."
    )


_DURATION_UNITS = (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000))


def _duration_text(ms: int) -> str:
    unit, size = next(((u, s) for u, s in _DURATION_UNITS if ms >= s), ("second", 1000))
    amount = ms / size
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")


def _disable(
    connection: Connection, row: Mapping[str, Any], after: EndpointHealth, reason: str, now: int
) -> str | None:
    """Disable the webhook, tell the account, and return the notice's event id."""
    if not disable_webhook(connection, row["id"], reason, now):
        return None
    failing_since = after.failing_since if after.failing_since is not None else now
    data = {
        "webhook_id": row["id"],
        "url": redact_url(row["url"]),
        "reason": reason,
        "disabled_at": now // 1000,
        "failing_since": failing_since // 1000,
    }
    # The webhook is disabled by now, so the notice never goes to the failing endpoint.
    return insert_event(connection, row["account_id"], DISABLED_EVENT_TYPE, data).id


@dataclass(frozen=True)
class HealthCounts:
    """Totals over all accounts, sampled for metrics."""

    pending_deliveries: int
    open_circuits: int
    disabled_webhooks: int


def count_health(engine: Engine) -> HealthCounts:
    pending = select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
    open_circuits = (
        select(func.count())
        .select_from(webhooks)
        .where(webhooks.c.circuit_state == "open", webhooks.c.enabled.is_(True))
    )
    disabled = select(func.count()).select_from(webhooks).where(webhooks.c.enabled.is_(False))
    with engine.connect() as connection:
        return HealthCounts(
            pending_deliveries=int(connection.execute(pending).scalar_one()),
            open_circuits=int(connection.execute(open_circuits).scalar_one()),
            disabled_webhooks=int(connection.execute(disabled).scalar_one()),
        )
