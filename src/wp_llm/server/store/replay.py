"""Replay: make a webhook's past deliveries that match a filter due again.

A replayed delivery keeps its id and its attempt count, as a manual retry does, so a
delivery that had used up its schedule gets one more attempt. Pending deliveries that
a worker holds under a live lease are in flight and are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, false, func, or_, select, update

from wp_llm.server import ids
from wp_llm.server.db.schema import deliveries, webhooks
from wp_llm.server.engine.notify import announce_deliveries
from wp_llm.server.errors import InvalidRequest, ResourceNotFound

# One replay writes at most this many rows in one transaction, so that no replay holds
# the database lock for long. A larger replay is rejected, and the caller splits it by time.
MAX_REPLAY_DELIVERIES = 10_000


@dataclass(frozen=True)
class ReplayFilter:
    """The deliveries of one webhook to replay, with `since` and `until` in Unix seconds."""

    since: int
    until: int
    statuses: Sequence[str]
    # Exact types, `prefix.*` wildcards or `*`, or None for every type.
    event_types: Sequence[str] | None = None


def _type_condition(patterns: Sequence[str]) -> Any:
    conditions = []
    for pattern in patterns:
        if pattern == "*":
            return None
        if pattern.endswith(".*"):
            conditions.append(deliveries.c.event_type.startswith(pattern[:-1], autoescape=True))
        else:
            conditions.append(deliveries.c.event_type == pattern)
    return or_(*conditions) if conditions else false()


def _conditions(webhook_id: str, account_id: str, chosen: ReplayFilter, now: int) -> list[Any]:
    conditions = [
        deliveries.c.webhook_id == webhook_id,
        deliveries.c.account_id == account_id,
        deliveries.c.created >= chosen.since,
        deliveries.c.created < chosen.until,
        deliveries.c.status.in_(list(chosen.statuses)),
        # In flight: pending under a lease that has not run out.
        or_(
            deliveries.c.status != "pending",
            deliveries.c.lease_until.is_(None),
            deliveries.c.lease_until < now,
        ),
    ]
    if chosen.event_types is not None:
        by_type = _type_condition(chosen.event_types)
        if by_type is not None:
            conditions.append(by_type)
    return conditions


def replay_deliveries(
    engine: Engine, account_id: str, webhook_id: str, chosen: ReplayFilter, *, dry_run: bool
) -> int:
    """Make the matching deliveries due now and return their number; a dry run only counts."""
    now = ids.now_ms()
    where = and_(*_conditions(webhook_id, account_id, chosen, now))
    with engine.begin() as connection:
        # Read FOR KEY SHARE, so a concurrent delete waits and then cancels the replay.
        owner = (
            select(webhooks.c.id)
            .where(webhooks.c.id == webhook_id, webhooks.c.account_id == account_id)
            .with_for_update(read=True, key_share=True)
        )
        if connection.execute(owner).first() is None:
            raise ResourceNotFound(
                f"No webhook with id {webhook_id!r} in this account.",
                code="webhook_not_found",
                details={"field": "id", "value": webhook_id},
            )
        count = int(connection.execute(select(func.count()).where(where)).scalar_one())
        if dry_run or count == 0:
            return count
        if count > MAX_REPLAY_DELIVERIES:
            raise InvalidRequest(
                f"{count} deliveries match, and one replay requeues at most "
                f"{MAX_REPLAY_DELIVERIES}; narrow since and until, and replay in parts.",
                code="replay_too_large",
                details={"field": "until", "count": count, "maximum": MAX_REPLAY_DELIVERIES},
            )
        connection.execute(
            update(deliveries)
            .where(where)
            .values(status="pending", next_attempt_at=now, updated=now)
        )
        announce_deliveries(connection)
    return count
