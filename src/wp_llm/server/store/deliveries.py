"""Deliveries and their attempts: the delivery log, and the engine's claim and record queries.

A delivery is `pending` until it succeeds, fails for good, or its webhook is deleted
(`cancelled`). Workers claim due pending rows under a lease (`lease_until`,
`lease_owner`): a lease that expires, because its worker died, makes the row claimable
again, so every accepted event is delivered at least once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    exists,
    func,
    or_,
    select,
    update,
)

from wp_llm.server import ids
from wp_llm.server.db.schema import attempts, deliveries, events, webhooks
from wp_llm.server.engine.notify import announce_deliveries
from wp_llm.server.errors import ResourceConflict, ResourceNotFound
from wp_llm.server.store.engine_sql import (
    CLAIM_TARGET_COLUMNS,
    PostgreSQLStatements,
    statements_for,
)
from wp_llm.server.store.pagination import IdFilter, Page, fetch_page
from wp_llm.server.store.webhooks import Endpoint, endpoint_of

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "succeeded", "failed", "cancelled")


# Not frozen, like AttemptRecord, because both are made once per delivery: a frozen
# dataclass sets each field through object.__setattr__, which made creating one about
# three times slower. Treat them as values all the same.
@dataclass(slots=True)
class ClaimedDelivery:
    """A due delivery leased to one worker, with what it needs to send it."""

    id: str
    account_id: str
    event_id: str
    event_type: str
    webhook_id: str
    attempt_count: int
    url: str
    secrets_json: str
    body: bytes
    endpoint: Endpoint = Endpoint()
    # A circuit breaker probe: sent while the webhook's circuit is open.
    probe: bool = False


@dataclass
class HandOff:
    """Room that a worker in the publishing process offers for new deliveries.

    A publish that has a hand-off stores some of its deliveries already leased to that
    worker, and the worker starts them once the publish commits, with no claim query
    between. Each webhook gets at most its quota, counted as a claim counts it, and
    the hand-off at most `room` deliveries in all.
    """

    owner: str
    lease_ms: int
    room: int
    quotas: Mapping[str, int]
    default_quota: int
    concurrency_factor: int
    # Deliveries leased so far, per webhook.
    leased_per_webhook: dict[str, int] = field(default_factory=dict)
    # Deliveries the hand-off was offered, whether it turned any down for want of room,
    # and the webhooks it turned some down for, their quota being full.
    considered: int = 0
    short_of_room: bool = False
    over_quota: set[str] = field(default_factory=set)

    def take(self, webhook_id: str, max_concurrency: int | None) -> bool:
        """Count one delivery to the webhook, or return False when the room or its quota is full."""
        if self.room <= 0:
            self.short_of_room = True
            return False
        quota = claim_quota_of(
            webhook_id, max_concurrency, self.quotas, self.default_quota, self.concurrency_factor
        )
        count = self.leased_per_webhook.get(webhook_id, 0)
        if count >= quota:
            self.over_quota.add(webhook_id)
            return False
        self.leased_per_webhook[webhook_id] = count + 1
        self.room -= 1
        return True

    def withdraw(self) -> None:
        """Lease nothing more, and have the deliveries left over claimed."""
        self.room = 0
        self.short_of_room = True

    def leaves_claimable(self, delivery_count: int) -> bool:
        """Return whether a claim could take some of `delivery_count` deliveries now.

        Deliveries the hand-off turned down for their webhook's quota, open circuit or
        pause, a claim would skip as well. Only those it had no room for, or never saw,
        are worth waking the worker for.
        """
        return self.short_of_room or delivery_count > self.considered


# Not frozen: see ClaimedDelivery.
@dataclass(slots=True)
class AttemptRecord:
    """The outcome of one attempt and the delivery state that follows from it."""

    delivery_id: str
    webhook_id: str
    account_id: str
    attempted_at: int
    latency_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None
    response_truncated: bool
    succeeded: bool
    # The delivery's next state: pending with a due time, or a final status.
    next_status: DeliveryStatus
    next_attempt_at: int | None
    # False for a failed circuit breaker probe, which leaves the attempt count as it was.
    spends_attempt: bool = True
    # Fixed when the attempt ends, so writing a batch again cannot log an attempt twice.
    attempt_id: str = field(default_factory=lambda: ids.new_id(ids.ATTEMPT))


# Rows a claim looks at, as a multiple of its batch size. Rows beyond a webhook's quota
# are skipped, so the extra rows let one claim reach a little past a webhook's backlog.
CLAIM_SCAN_FACTOR = 2

_CLAIMED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.account_id,
    deliveries.c.event_id,
    deliveries.c.event_type,
    deliveries.c.webhook_id,
    deliveries.c.attempt_count,
)


def _claimable(now: int) -> tuple[Any, ...]:
    """Conditions of a delivery that is due and leased by no live worker."""
    return (
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= now,
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
    )


def claim_due(
    engine: Engine,
    *,
    owner: str,
    limit: int,
    lease_ms: int,
    now: int,
    exclude_webhooks: Collection[str] = (),
    quotas: Mapping[str, int] | None = None,
    default_quota: int = 1,
    concurrency_factor: int = 1,
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries of enabled webhooks, oldest due first.

    Webhooks whose circuit is open or that asked for a pause are skipped. Each webhook
    gets at most its quota of rows: `quotas[webhook_id]` when given, else its
    `max_concurrency` times `concurrency_factor`, else `default_quota`, so one
    webhook's backlog cannot fill a batch.

    On PostgreSQL the candidate rows are locked with SKIP LOCKED, so concurrent
    workers claim disjoint batches instead of waiting on each other. On SQLite the
    single writer lock gives the same guarantee.
    """
    statements = statements_for(engine.dialect.name)
    if isinstance(statements, PostgreSQLStatements):
        return _claim_due_postgresql(
            engine,
            statements,
            owner=owner,
            limit=limit,
            lease_ms=lease_ms,
            now=now,
            exclude_webhooks=exclude_webhooks,
            quotas=quotas or {},
            default_quota=default_quota,
            concurrency_factor=concurrency_factor,
        )
    with engine.begin() as connection:
        # Quotas are applied here rather than in SQL: on SQLite, ranking the rows with a
        # window function made a claim of 256 rows take 7.6 ms instead of about 2 ms.
        scanned = connection.exec_driver_sql(
            *statements.candidates(now, list(exclude_webhooks), limit * CLAIM_SCAN_FACTOR)
        ).all()
        chosen = _within_quotas(scanned, limit, quotas or {}, default_quota, concurrency_factor)
        if not chosen:
            return []
        # Oldest due first, as chosen: RETURNING gives no order.
        position = {delivery_id: index for index, delivery_id in enumerate(chosen)}
        leased = sorted(
            connection.exec_driver_sql(*statements.lease(chosen, now + lease_ms, owner)),
            key=lambda row: position[row[0]],
        )
        return _load_claimed(connection, leased, probe=False)


def _claim_due_postgresql(
    engine: Engine,
    statements: PostgreSQLStatements,
    *,
    owner: str,
    limit: int,
    lease_ms: int,
    now: int,
    exclude_webhooks: Collection[str],
    quotas: Mapping[str, int],
    default_quota: int,
    concurrency_factor: int,
) -> list[ClaimedDelivery]:
    """Claim due deliveries on PostgreSQL: one statement scans, applies quotas and leases."""
    claim = statements.claim(
        now=now,
        exclude_webhooks=list(exclude_webhooks),
        scan_limit=limit * CLAIM_SCAN_FACTOR,
        limit=limit,
        lease_until=now + lease_ms,
        owner=owner,
        quotas=quotas,
        default_quota=default_quota,
        concurrency_factor=concurrency_factor,
    )
    with _each_statement_commits(engine) as connection:
        rows = connection.exec_driver_sql(*claim).all()
    # Each row: `_CLAIMED_COLUMNS`, the due time, the body or NULL, `CLAIM_TARGET_COLUMNS`.
    bodies: dict[str, bytes] = {}
    targets: dict[str, tuple[str, str, Endpoint]] = {}
    for row in rows:
        event_id, webhook_id, body = row[2], row[4], row[7]
        if body is not None:
            bodies[event_id] = body
        if webhook_id not in targets:
            target = dict(zip(CLAIM_TARGET_COLUMNS, row[8:], strict=True))
            targets[webhook_id] = (target["url"], target["secrets"], endpoint_of(target))
    return [_claimed(row[:6], bodies[row[2]], targets, probe=False) for row in rows]


@contextmanager
def _each_statement_commits(engine: Engine) -> Iterator[Connection]:
    """Yield a connection on which each statement commits by itself, with no transaction."""
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def _targets(
    connection: Connection, webhook_ids: Collection[str]
) -> dict[str, tuple[str, str, Endpoint]]:
    """Return each webhook's URL, sealed secrets and delivery settings."""
    return {
        row["id"]: (row["url"], row["secrets"], endpoint_of(row))
        for row in connection.execute(
            select(webhooks).where(webhooks.c.id.in_(list(webhook_ids)))
        ).mappings()
    }


def _within_quotas(
    scanned: Sequence[Any],
    limit: int,
    quotas: Mapping[str, int],
    default_quota: int,
    concurrency_factor: int,
) -> list[str]:
    """Pick up to `limit` scanned rows, oldest first, at most each webhook's quota of them."""
    per_webhook: dict[str, int] = {}
    chosen: list[str] = []
    for delivery_id, webhook_id, max_concurrency in scanned:
        quota = claim_quota_of(
            webhook_id, max_concurrency, quotas, default_quota, concurrency_factor
        )
        count = per_webhook.get(webhook_id, 0)
        if count >= quota:
            continue
        per_webhook[webhook_id] = count + 1
        chosen.append(delivery_id)
        if len(chosen) >= limit:
            break
    return chosen


def claim_quota_of(
    webhook_id: str,
    max_concurrency: int | None,
    quotas: Mapping[str, int],
    default_quota: int,
    concurrency_factor: int,
) -> int:
    """Return how many deliveries of the webhook one claim may take."""
    quota = quotas.get(webhook_id)
    if quota is not None:
        return quota
    return default_quota if max_concurrency is None else max_concurrency * concurrency_factor


def claim_probes(
    engine: Engine, *, owner: str, lease_ms: int, now: int, hold_ms: int
) -> list[ClaimedDelivery]:
    """Lease one due delivery of each webhook whose open circuit is due for a probe.

    The webhook's next probe time moves `hold_ms` ahead in the same transaction, so
    one probe at a time goes out, whichever worker sends it; recording its outcome
    sets the time again.
    """
    due_probe = (
        update(webhooks)
        .where(
            webhooks.c.circuit_state == "open",
            webhooks.c.circuit_retry_at <= now,
            webhooks.c.enabled.is_(True),
            or_(webhooks.c.paused_until.is_(None), webhooks.c.paused_until <= now),
            exists().where(deliveries.c.webhook_id == webhooks.c.id, *_claimable(now)),
        )
        .values(circuit_retry_at=now + hold_ms)
        .returning(webhooks.c.id)
    )
    with engine.begin() as connection:
        claimed: list[Sequence[Any]] = []
        for webhook_id in connection.execute(due_probe).scalars().all():
            oldest = (
                select(deliveries.c.id)
                .where(deliveries.c.webhook_id == webhook_id, *_claimable(now))
                .order_by(deliveries.c.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            claim = (
                update(deliveries)
                .where(deliveries.c.id.in_(oldest.scalar_subquery()))
                .values(lease_until=now + lease_ms, lease_owner=owner)
                .returning(*_CLAIMED_COLUMNS)
            )
            claimed.extend(connection.execute(claim).all())
        return _load_claimed(connection, claimed, probe=True)


def _load_claimed(
    connection: Connection, claimed: Sequence[Sequence[Any]], *, probe: bool
) -> list[ClaimedDelivery]:
    """Build deliveries from claimed rows in `_CLAIMED_COLUMNS` order, with bodies and webhooks."""
    if not claimed:
        return []
    statements = statements_for(connection.dialect.name)
    event_ids = list({row[2] for row in claimed})
    bodies: dict[str, bytes] = dict(connection.exec_driver_sql(*statements.bodies(event_ids)).all())
    targets = _targets(connection, {row[4] for row in claimed})
    return [_claimed(row, bodies[row[2]], targets, probe=probe) for row in claimed]


def _claimed(
    row: Sequence[Any],
    body: bytes,
    targets: Mapping[str, tuple[str, str, Endpoint]],
    *,
    probe: bool,
) -> ClaimedDelivery:
    """Build one delivery from a claimed row in `_CLAIMED_COLUMNS` order."""
    delivery_id, account_id, event_id, event_type, webhook_id, attempt_count = row
    url, secrets_json, endpoint = targets[webhook_id]
    return ClaimedDelivery(
        id=delivery_id,
        account_id=account_id,
        event_id=event_id,
        event_type=event_type,
        webhook_id=webhook_id,
        attempt_count=attempt_count,
        url=url,
        secrets_json=secrets_json,
        body=bytes(body),
        endpoint=endpoint,
        probe=probe,
    )


def extend_leases(
    engine: Engine, *, owner: str, delivery_ids: Sequence[str], until: int
) -> set[str]:
    """Keep a worker's deliveries leased while slow endpoints respond.

    Returns the ids still leased to `owner`. A missing id's lease ran out and was
    claimed by another worker, or its delivery was recorded or cancelled.
    """
    if not delivery_ids:
        return set()
    with engine.begin() as connection:
        extended = connection.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.lease_owner == owner)
            .values(lease_until=until)
            .returning(deliveries.c.id)
        )
        return set(extended.scalars())


def release_leases(engine: Engine, *, owner: str, delivery_ids: Sequence[str]) -> None:
    """Hand unfinished deliveries back at once, so another worker need not wait for the lease."""
    if not delivery_ids:
        return
    with engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.lease_owner == owner)
            .values(lease_until=None, lease_owner=None)
        )


def record_attempts(engine: Engine, *, owner: str, records: Sequence[AttemptRecord]) -> None:
    """Store a batch of attempts and move each delivery on, in one transaction.

    A delivery whose lease this worker lost (it expired and another worker took the
    row) keeps the other worker's state; the attempt is still logged.
    """
    if not records:
        return
    statements = statements_for(engine.dialect.name)
    if isinstance(statements, PostgreSQLStatements):
        with _each_statement_commits(engine) as connection:
            connection.exec_driver_sql(*statements.record(records, owner))
        return
    with engine.begin() as connection:
        for statement in statements.record(records, owner):
            connection.exec_driver_sql(*statement)


def _not_found(delivery_id: str) -> ResourceNotFound:
    return ResourceNotFound(
        f"No delivery with id {delivery_id!r} in this account.",
        code="delivery_not_found",
        details={"field": "id", "value": delivery_id},
    )


def get_delivery(engine: Engine, account_id: str, delivery_id: str) -> dict[str, Any]:
    """Return the delivery with all its attempts, oldest first."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(deliveries).where(
                    deliveries.c.id == delivery_id, deliveries.c.account_id == account_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise _not_found(delivery_id)
        attempt_rows = connection.execute(
            select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id)
        ).mappings()
        return {**row, "attempts": [dict(a) for a in attempt_rows]}


def list_deliveries(
    engine: Engine,
    account_id: str,
    *,
    limit: int,
    webhook_id: str | None = None,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> Page:
    """List deliveries newest first; an id filter that names nothing raises InvalidRequest."""
    query = select(deliveries).where(deliveries.c.account_id == account_id)
    id_filters = []
    if webhook_id is not None:
        query = query.where(deliveries.c.webhook_id == webhook_id)
        id_filters.append(_webhook_filter(account_id, webhook_id))
    if event_id is not None:
        query = query.where(deliveries.c.event_id == event_id)
        id_filters.append(_event_filter(account_id, event_id))
    if status is not None:
        query = query.where(deliveries.c.status == status)
    with engine.connect() as connection:
        return fetch_page(
            connection,
            deliveries,
            query,
            account_id=account_id,
            object_name="delivery",
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            id_filters=id_filters,
        )


def _webhook_filter(account_id: str, webhook_id: str) -> IdFilter:
    """Match a webhook of the account, or a deleted one whose deliveries are still logged."""
    webhook_exists = exists().where(
        webhooks.c.id == webhook_id, webhooks.c.account_id == account_id
    )
    logged = exists().where(
        deliveries.c.webhook_id == webhook_id, deliveries.c.account_id == account_id
    )
    return IdFilter(
        field="webhook_id",
        value=webhook_id,
        object_name="webhook",
        found=or_(webhook_exists, logged),
        unfiltered="list the deliveries of every webhook",
    )


def _event_filter(account_id: str, event_id: str) -> IdFilter:
    return IdFilter(
        field="event_id",
        value=event_id,
        object_name="event",
        found=exists().where(events.c.id == event_id, events.c.account_id == account_id),
        unfiltered="list the deliveries of every event",
    )


def retry_delivery(engine: Engine, account_id: str, delivery_id: str) -> dict[str, Any]:
    """Make a delivery due now; a finished one gets one more attempt."""
    now = ids.now_ms()
    with engine.begin() as connection:
        row = (
            connection.execute(
                select(deliveries.c.status, deliveries.c.webhook_id).where(
                    deliveries.c.id == delivery_id, deliveries.c.account_id == account_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise _not_found(delivery_id)
        if row["status"] == "cancelled":
            raise ResourceConflict(
                f"Delivery {delivery_id!r} was cancelled because its webhook was deleted; "
                "it cannot be sent again.",
                code="delivery_cancelled",
                details={"field": "id", "value": delivery_id},
            )
        # Read FOR KEY SHARE, so a concurrent delete waits and then cancels this retry.
        webhook = select(webhooks.c.id).where(webhooks.c.id == row["webhook_id"])
        if connection.execute(webhook.with_for_update(read=True, key_share=True)).first() is None:
            raise ResourceConflict(
                f"Delivery {delivery_id!r} belongs to a webhook that was deleted; "
                "it cannot be sent again.",
                code="webhook_deleted",
                details={"field": "id", "value": delivery_id},
            )
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(status="pending", next_attempt_at=now, updated=now)
        )
        announce_deliveries(connection)
    return get_delivery(engine, account_id, delivery_id)


def count_pending(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
            ).scalar_one()
        )
