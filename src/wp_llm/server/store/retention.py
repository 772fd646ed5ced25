"""Retention: delete expired events with their finished deliveries and attempts, in small batches.

An event expires when it is older than the retention age. It is deleted only once none
of its deliveries is pending, so a delivery that still waits for a retry, or for its
webhook to be re-enabled, keeps its event however old it is. Each batch is one short
transaction, so a purge never holds locks that the claim query or the API would wait on
for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from wp_llm.server import ids
from wp_llm.server.db.schema import attempts, deliveries, events, maintenance_runs

logger = logging.getLogger(__name__)

RETENTION_JOB = "retention"
PURGE_BATCH_EVENTS = 500
# One run deletes at most this many batches and leaves a larger backlog to the next runs,
# so a worker that is asked to stop is not held up.
PURGE_MAX_BATCHES = 400
# Deleted delivery ids are passed as bound parameters; this stays far below the limits
# of SQLite (32,766) and of the PostgreSQL protocol (65,535).
ATTEMPT_DELETE_CHUNK = 1000


@dataclass(frozen=True)
class PurgeResult:
    """How many rows one purge deleted, and whether it reached the retention cutoff."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    complete: bool = True


def expiry_bound(cutoff_ms: int) -> str:
    """Return the smallest event id created at `cutoff_ms`.

    Event ids are ULIDs, which start with their creation time in ms, so every event
    created before the cutoff has a smaller id, and the primary key finds them all.
    """
    return ids.first_id_at(ids.EVENT, cutoff_ms)


def claim_purge_run(engine: Engine, *, now_ms: int, interval_ms: int) -> bool:
    """Return True if this caller may purge now: no purge started in the last interval."""
    due = update(maintenance_runs).where(
        maintenance_runs.c.name == RETENTION_JOB,
        maintenance_runs.c.started_at <= now_ms - interval_ms,
    )
    known = select(maintenance_runs.c.name).where(maintenance_runs.c.name == RETENTION_JOB)
    first = insert(maintenance_runs).values(name=RETENTION_JOB, started_at=now_ms)
    try:
        with engine.begin() as connection:
            if connection.execute(due.values(started_at=now_ms)).rowcount:
                return True
            if connection.execute(known).first():
                return False
            connection.execute(first)
            return True
    except IntegrityError:
        # Another worker inserted the first row at the same moment; it runs this purge.
        return False


def purge_expired(
    engine: Engine,
    *,
    cutoff_ms: int,
    batch_size: int = PURGE_BATCH_EVENTS,
    max_batches: int = PURGE_MAX_BATCHES,
    should_stop: Callable[[], bool] = lambda: False,
) -> PurgeResult:
    """Delete events created before `cutoff_ms` whose deliveries are all finished."""
    bound = expiry_bound(cutoff_ms)
    after = ""
    totals = [0, 0, 0]
    for _ in range(max_batches):
        if should_stop():
            break
        with engine.begin() as connection:
            event_ids = _expired_event_ids(connection, after, bound, batch_size)
            if not event_ids:
                return PurgeResult(totals[0], totals[1], totals[2], complete=True)
            counts = _delete_batch(connection, event_ids)
        totals = [total + count for total, count in zip(totals, counts, strict=True)]
        after = event_ids[-1]
    return PurgeResult(totals[0], totals[1], totals[2], complete=False)


def _expired_event_ids(connection: Connection, after: str, bound: str, limit: int) -> list[str]:
    query = (
        select(events.c.id)
        .where(events.c.id > after, events.c.id < bound)
        .order_by(events.c.id)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def _delete_batch(connection: Connection, event_ids: Sequence[str]) -> tuple[int, int, int]:
    # Deliveries first, and their attempts by the ids that DELETE returned: a delivery
    # that a worker finishes meanwhile is then either kept with its attempts or removed
    # with them, never split from them.
    finished = list(
        connection.execute(
            delete(deliveries)
            .where(deliveries.c.event_id.in_(event_ids), deliveries.c.status != "pending")
            .returning(deliveries.c.id)
        ).scalars()
    )
    attempt_count = 0
    for start in range(0, len(finished), ATTEMPT_DELETE_CHUNK):
        chunk = finished[start : start + ATTEMPT_DELETE_CHUNK]
        removed = connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(chunk)))
        attempt_count += removed.rowcount

    # An event keeps its row while any delivery of it remains, that is, one still pending.
    still_referenced = exists().where(deliveries.c.event_id == events.c.id)
    event_count = connection.execute(
        delete(events).where(events.c.id.in_(event_ids), ~still_referenced)
    ).rowcount
    return event_count, len(finished), attempt_count


def purge_if_due(
    engine: Engine,
    *,
    retention_seconds: float,
    interval_seconds: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> PurgeResult | None:
    """Purge expired events unless another worker started a purge within the interval."""
    now = ids.now_ms()
    if not claim_purge_run(engine, now_ms=now, interval_ms=int(interval_seconds * 1000)):
        return None
    started = time.monotonic()
    cutoff = now - int(retention_seconds * 1000)
    result = purge_expired(engine, cutoff_ms=cutoff, should_stop=should_stop)
    if result.events or result.deliveries:
        logger.info(
            "purged expired events",
            extra={
                "events": result.events,
                "deliveries": result.deliveries,
                "attempts": result.attempts,
                "complete": result.complete,
                "duration_s": round(time.monotonic() - started, 3),
            },
        )
    return result
