"""Usage state: account limits, shared rate-limit buckets, notice windows, event counts.

The policies in `wp_llm.server.usage` decide; the functions here store what they
decided, each in one transaction so that concurrent API processes agree.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row, namedtuple_row
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from wp_llm.catalog import matches
from wp_llm.server import ids
from wp_llm.server.db.pipeline import (
    CommitOutcomeUnknown,
    PipelinedTransaction,
    pipelined_transaction,
    postgresql_text,
)
from wp_llm.server.db.schema import (
    account_limits,
    accounts,
    api_keys,
    rate_limit_buckets,
    rate_limit_notices,
    usage_periods,
    webhooks,
)
from wp_llm.server.errors import QuotaExceeded
from wp_llm.server.store import commit_check
from wp_llm.server.store import events as event_store
from wp_llm.server.store.deliveries import ClaimedDelivery, HandOff
from wp_llm.server.store.events import PublishedEvent
from wp_llm.server.usage import notices
from wp_llm.server.usage.quota import Period, QuotaPolicy, month_period
from wp_llm.server.usage.ratelimit import BucketState, Grant

logger = logging.getLogger(__name__)

BucketDecider = Callable[[BucketState | None], Grant]


def _to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def _insert(connection: Connection, table: Table) -> Any:
    """Return an INSERT of this connection's dialect, which supports ON CONFLICT."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- Account limits -------------------------------------------------------------------


@dataclass(frozen=True)
class AccountLimits:
    """An account's overrides of the operator's defaults; None keeps the default."""

    rate_limit: float | None = None
    rate_limit_burst: int | None = None
    event_quota: int | None = None


_ACCOUNT_LIMITS = select(
    account_limits.c.rate_limit, account_limits.c.rate_limit_burst, account_limits.c.event_quota
).where(account_limits.c.account_id == bindparam("account_id"))


def get_account_limits(connection: Connection, account_id: str) -> AccountLimits:
    row = connection.execute(_ACCOUNT_LIMITS, {"account_id": account_id}).first()
    if row is None:
        return AccountLimits()
    return AccountLimits(row.rate_limit, row.rate_limit_burst, row.event_quota)


def set_account_limits(engine: Engine, account_id: str, changes: dict[str, float | int]) -> None:
    """Store the overrides named in `changes`, and keep the account's other overrides."""
    values = {**changes, "updated": ids.now_ms()}
    with engine.begin() as connection:
        statement = _insert(connection, account_limits).values(account_id=account_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[account_limits.c.account_id], set_=values
        )
        connection.execute(statement)


def clear_account_limits(engine: Engine, account_id: str) -> bool:
    """Drop every override of the account; return whether it had any."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(account_limits).where(account_limits.c.account_id == account_id)
        )
    return result.rowcount > 0


# --- Rate limits ----------------------------------------------------------------------


def take_tokens(engine: Engine, key_id: str, decide: BucketDecider) -> Grant:
    """Run `decide` on the key's shared bucket under a row lock, and store the new state.

    The lock serializes processes that take from the same bucket, so no token is spent
    twice; on SQLite the write transaction itself serializes them.
    """
    with engine.begin() as connection:
        _skip_commit_flush(connection)
        state = _lock_bucket(connection, key_id)
        if state is None:
            grant = decide(None)
            if _create_bucket(connection, key_id, grant.state):
                return grant
            # Another process created the bucket after our read; decide on its state.
            state = _lock_bucket(connection, key_id)

        grant = decide(state)
        connection.execute(
            update(rate_limit_buckets)
            .where(rate_limit_buckets.c.key_id == key_id)
            .values(tokens=grant.state.tokens, updated=_to_ms(grant.state.updated))
        )
        return grant


def _skip_commit_flush(connection: Connection) -> None:
    """Commit without waiting for the WAL flush, on PostgreSQL.

    A crash may then lose the last bucket updates, which only returns a few tokens,
    while the flush wait would be most of the cost of every request.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _lock_bucket(connection: Connection, key_id: str) -> BucketState | None:
    query = (
        select(rate_limit_buckets.c.tokens, rate_limit_buckets.c.updated)
        .where(rate_limit_buckets.c.key_id == key_id)
        .with_for_update()
    )
    row = connection.execute(query).first()
    return None if row is None else BucketState(tokens=row.tokens, updated=row.updated / 1000)


def _create_bucket(connection: Connection, key_id: str, state: BucketState) -> bool:
    statement = (
        _insert(connection, rate_limit_buckets)
        .values(key_id=key_id, tokens=state.tokens, updated=_to_ms(state.updated))
        .on_conflict_do_nothing(index_elements=[rate_limit_buckets.c.key_id])
        .returning(rate_limit_buckets.c.key_id)
    )
    return connection.execute(statement).first() is not None


@dataclass(frozen=True)
class NoticeClaim:
    """The outcome of a request to open a notice window."""

    # The notice this request published, or None when a window was already open.
    published: PublishedEvent | None
    # The end of the window in force, in Unix seconds.
    window_ends: float


def publish_limit_notice(
    engine: Engine,
    account_id: str,
    key_id: str,
    data: dict[str, Any],
    *,
    now: float,
    window_ends: float,
) -> NoticeClaim:
    """Publish `usage.limit_exceeded` unless the key's notice window is still open.

    Opening the window and storing the notice share one transaction, so any number of
    concurrent requests in any number of processes publish one notice per window.
    """
    with engine.begin() as connection:
        statement = _insert(connection, rate_limit_notices).values(
            key_id=key_id, window_ends=_to_ms(window_ends)
        )
        statement = statement.on_conflict_do_update(
            index_elements=[rate_limit_notices.c.key_id],
            set_={"window_ends": _to_ms(window_ends)},
            where=rate_limit_notices.c.window_ends <= _to_ms(now),
        ).returning(rate_limit_notices.c.window_ends)
        if connection.execute(statement).first() is None:
            return NoticeClaim(published=None, window_ends=_open_window_end(connection, key_id))

        published = event_store.insert_event(connection, account_id, notices.LIMIT_EXCEEDED, data)
        return NoticeClaim(published=published, window_ends=window_ends)


def _open_window_end(connection: Connection, key_id: str) -> float:
    query = select(rate_limit_notices.c.window_ends).where(rate_limit_notices.c.key_id == key_id)
    return float(connection.execute(query).scalar_one()) / 1000


# --- Event quotas ---------------------------------------------------------------------


@dataclass(frozen=True)
class MeteredPublish:
    """A published event and the usage notices its count made due."""

    event: PublishedEvent
    notices: list[PublishedEvent] = field(default_factory=list)

    @property
    def delivery_count(self) -> int:
        return sum(len(item.delivery_ids) for item in [self.event, *self.notices])


@dataclass(frozen=True)
class MeteredBatch:
    """Events published together and the usage notices their count made due."""

    events: list[PublishedEvent]
    notices: list[PublishedEvent] = field(default_factory=list)

    @property
    def delivery_count(self) -> int:
        return sum(len(item.delivery_ids) for item in [*self.events, *self.notices])

    @property
    def leased(self) -> list[ClaimedDelivery]:
        """Return the deliveries stored leased to the hand-off's worker."""
        return [delivery for item in [*self.events, *self.notices] for delivery in item.leased]


class _QuotaFull(Exception):
    """The count refused one more event; raised inside the transaction to roll it back."""

    def __init__(self, policy: QuotaPolicy) -> None:
        super().__init__(policy.quota)
        self.policy = policy


def publish_metered(
    engine: Engine,
    account_id: str,
    event_type: str,
    data: Any,
    *,
    default_quota: int,
    thresholds: tuple[int, ...],
    now: float,
) -> MeteredPublish:
    """Count the event against the account's quota and publish it, in one transaction.

    The count takes a row lock on the account's counter that lasts until commit, so
    concurrent publishers never push the count past the quota. The warnings and the
    `usage.quota_exceeded` notice that the new count makes due are published in the
    same transaction, uncounted. Raise QuotaExceeded when the quota is used up.
    """
    batch = publish_metered_batch(
        engine,
        account_id,
        [(event_type, data)],
        default_quota=default_quota,
        thresholds=thresholds,
        now=now,
    )
    return MeteredPublish(event=batch.events[0], notices=batch.notices)


def publish_metered_batch(
    engine: Engine,
    account_id: str,
    items: Sequence[tuple[str, Any]],
    *,
    default_quota: int,
    thresholds: tuple[int, ...],
    now: float,
    hand_off: HandOff | None = None,
) -> MeteredBatch:
    """Count and publish several events in one transaction: all of them, or none.

    As `publish_metered`, but the quota must have room for every event of the batch.
    Raise CommitCheckFailed when the connection was lost during COMMIT and the check
    could not find out whether the batch was stored.
    """
    period = month_period(now)

    def store(connection: Connection) -> list[MeteredBatch]:
        return [
            _publish_counted(
                connection, account_id, items, default_quota, thresholds, period, hand_off
            )
        ]

    try:
        return _commit_checked(engine, period, store)[0]
    except _QuotaFull as full:
        _notify_quota_reached(engine, account_id, full.policy, period)
        raise _quota_exceeded(account_id, full.policy, period, now, len(items)) from None


@dataclass(frozen=True)
class GroupedPublish:
    """One request's events in a group: stored together with the group, or not at all."""

    account_id: str
    items: Sequence[tuple[str, Any]]


def publish_metered_group(
    engine: Engine,
    group: Sequence[GroupedPublish],
    *,
    default_quota: int,
    thresholds: tuple[int, ...],
    now: float,
    hand_off: HandOff | None = None,
) -> list[MeteredBatch | Exception]:
    """Count and publish the events of several requests in one transaction.

    Each request gets what `publish_metered_batch` would have returned or raised, in
    order. One commit for many requests is what lets a process store far more events
    per second than it can commit transactions. On PostgreSQL the transaction is
    pipelined (`_publish_pipelined`), for a group of one request too, unless a count
    refuses or makes a notice due. The grouped transaction fails when a request finds
    its quota used up, when its data cannot be stored or when the database refuses.
    Then each request runs again in a transaction of its own, so a full quota or bad
    data fails only the request it belongs to.

    A transaction whose connection was lost during COMMIT is run again only once a
    check finds that it did not commit (`_committed`). When the check fails, each request
    of the transaction gets CommitCheckFailed.
    """
    period = month_period(now)
    try:
        stored: list[MeteredBatch] | None = None
        if engine.dialect.name == "postgresql":
            stored = _publish_pipelined(engine, group, default_quota, thresholds, period, hand_off)
        if stored is None and len(group) > 1:
            grouped = functools.partial(
                _publish_grouped,
                group=group,
                default_quota=default_quota,
                thresholds=thresholds,
                period=period,
                hand_off=hand_off,
            )
            stored = _commit_checked(engine, period, grouped)
        if stored is not None:
            return list[MeteredBatch | Exception](stored)
    except commit_check.CommitCheckFailed as error:
        # The group may be stored, so storing it again could store it twice. Deliveries
        # it leased to this worker are claimed once their lease expires.
        return [error] * len(group)
    except Exception as error:  # noqa: BLE001 - each request reports its own error below
        # A full quota is routine; anything else, such as a deadlock, is worth a look.
        level = logging.DEBUG if isinstance(error, _QuotaFull) else logging.WARNING
        logger.log(
            level,
            "grouped publish rolled back; publishing its requests one by one",
            extra={"requests": len(group), "error": str(error)[:200]},
        )
        # The rolled-back transaction used up some of the room, so the worker claims these.
        if hand_off is not None:
            hand_off.withdraw()
        hand_off = None
    results: list[MeteredBatch | Exception] = []
    for request in group:
        try:
            results.append(
                publish_metered_batch(
                    engine,
                    request.account_id,
                    request.items,
                    default_quota=default_quota,
                    thresholds=thresholds,
                    now=now,
                    hand_off=hand_off,
                )
            )
        except Exception as error:  # noqa: BLE001 - raised again in the request it belongs to
            results.append(error)
    return results


def _publish_grouped(
    connection: Connection,
    group: Sequence[GroupedPublish],
    default_quota: int,
    thresholds: tuple[int, ...],
    period: Period,
    hand_off: HandOff | None,
) -> list[MeteredBatch]:
    """Store a group's events, each account's requests as one batch. Raise when one fails.

    Accounts are counted in sorted order, so the groups of two processes lock the same
    accounts' counters in the same order and do not deadlock on them.
    """
    by_account = _requests_by_account(group)
    batches = {
        account_id: _publish_counted(
            connection, account_id, items, default_quota, thresholds, period, hand_off
        )
        for account_id, items in _items_by_account(group, by_account).items()
    }
    return _batches_of_requests(group, by_account, batches)


def _publish_pipelined(
    engine: Engine,
    group: Sequence[GroupedPublish],
    default_quota: int,
    thresholds: tuple[int, ...],
    period: Period,
    hand_off: HandOff | None,
) -> list[MeteredBatch] | None:
    """Store a group's events on PostgreSQL in a transaction of two round trips.

    The first round trip sends BEGIN, each account's count and the read of its webhooks.
    The second sends the insert of every account's events and deliveries, and COMMIT.
    The common path makes five. A count that finds an account's quota used up, or that
    makes a usage notice due, rolls the transaction back before anything is leased, and
    None is returned. The group then takes the common path, which handles both.
    """
    by_account = _requests_by_account(group)
    items_of = _items_by_account(group, by_account)
    planned: dict[str, event_store.EventRows] | None = None
    try:
        with engine.connect() as connection, pipelined_transaction(connection) as transaction:
            planned = _queue_pipelined(
                transaction, items_of, default_quota, thresholds, period, hand_off
            )
    except CommitOutcomeUnknown:
        # Raised only once COMMIT is queued, and `planned` is set before that.
        if planned is None or not _committed(engine, _account_batches(planned).values(), period):
            raise
    if planned is None:
        return None
    return _batches_of_requests(group, by_account, _account_batches(planned))


def _queue_pipelined(
    transaction: PipelinedTransaction,
    items_of: dict[str, list[tuple[str, Any]]],
    default_quota: int,
    thresholds: tuple[int, ...],
    period: Period,
    hand_off: HandOff | None,
) -> dict[str, event_store.EventRows] | None:
    """Run the counts, then queue the insert of each account's rows. Return those rows.

    Return None after a rollback, when a count needs the common path.
    """
    count_query, count_values = postgresql_text(_count_statement("postgresql"))
    with_rows = hand_off is not None
    webhooks_query, _ = postgresql_text(event_store.subscriptions_query(with_rows=with_rows))
    queued = []
    for account_id, items in items_of.items():
        parameters = {
            **count_values,
            "account_id": account_id,
            "period_start": period.start,
            "default_quota": default_quota,
            "count": len(items),
        }
        counter = transaction.execute(count_query, parameters, namedtuple_row)
        found = transaction.execute(webhooks_query, {"account_id": account_id}, dict_row)
        queued.append((account_id, counter, found))
    results = [
        (account_id, counter.fetchone(), found.fetchall()) for account_id, counter, found in queued
    ]
    if any(_needs_own_transaction(counter, thresholds) for _, counter, _ in results):
        transaction.rollback()
        return None
    planned = {
        account_id: event_store.EventRows.build(
            event_store.Subscriptions.of_rows(webhook_rows, with_rows=with_rows),
            account_id,
            items_of[account_id],
            hand_off,
        )
        for account_id, _, webhook_rows in results
    }
    transaction.execute(
        event_store.POSTGRESQL_INSERT,
        event_store.postgresql_insert_parameters(list(planned.values())),
    )
    return planned


def _account_batches(planned: dict[str, event_store.EventRows]) -> dict[str, MeteredBatch]:
    return {account_id: MeteredBatch(rows.published()) for account_id, rows in planned.items()}


def _commit_checked(
    engine: Engine, period: Period, store: Callable[[Connection], list[MeteredBatch]]
) -> list[MeteredBatch]:
    """Run `store` in a transaction and commit it, as `engine.begin()` does.

    When the connection is lost during COMMIT, return what `store` returned if the
    transaction committed all the same, and raise the error if it did not.
    """
    stored: list[MeteredBatch] = []
    try:
        with engine.begin() as connection:
            stored = store(connection)
    except DBAPIError as error:
        # `stored` is set once every statement has run, so only COMMIT is left to fail.
        if not stored or not commit_check.lost_during_commit(error):
            raise
        if not _committed(engine, stored, period):
            raise
    return stored


def _committed(engine: Engine, batches: Iterable[MeteredBatch], period: Period) -> bool:
    """Return whether the transaction that was to store the batches committed.

    Call it only after the connection was lost during COMMIT. The check waits for the
    transaction to end, then looks for its first event (see `commit_check`).

    Reusing the event ids on the retry would also prevent a second copy: the events'
    primary key would reject whichever of the two transactions commits second. But each
    fallback path would have to take those ids instead of making its own, and tell that
    conflict apart from other errors so as to return the lost transaction's rows. The
    check needs only an id that the failed attempt still holds, runs only after such a
    failure, and leaves the common path as it was.
    """
    event = next((event for batch in batches for event in batch.events), None)
    if event is None:
        # No event, so nothing can be stored twice.
        return False
    return commit_check.committed(engine, event.account_id, period.start, event.id)


def _needs_own_transaction(counter: Any, thresholds: tuple[int, ...]) -> bool:
    """Return whether the count rejected the events or made a usage notice due."""
    counter = _with_room(counter)
    if counter is None:
        return True
    policy = QuotaPolicy(counter.quota, thresholds)
    return bool(
        policy.notices_due(counter.event_count, counter.warned_percent, counter.quota_notified)
    )


def _requests_by_account(group: Sequence[GroupedPublish]) -> dict[str, list[int]]:
    """Return the indexes of the group's requests by account, accounts in sorted order.

    Groups count accounts in that order, so the groups of two processes lock the same
    accounts' counters in the same order and do not deadlock on them.
    """
    by_account: dict[str, list[int]] = {}
    for index, request in enumerate(group):
        by_account.setdefault(request.account_id, []).append(index)
    return {account_id: by_account[account_id] for account_id in sorted(by_account)}


def _items_by_account(
    group: Sequence[GroupedPublish], by_account: dict[str, list[int]]
) -> dict[str, list[tuple[str, Any]]]:
    """Return each account's events, its requests' in the group's order."""
    return {
        account_id: [item for index in indexes for item in group[index].items]
        for account_id, indexes in by_account.items()
    }


def _batches_of_requests(
    group: Sequence[GroupedPublish],
    by_account: dict[str, list[int]],
    batches: dict[str, MeteredBatch],
) -> list[MeteredBatch]:
    """Split each account's batch into the parts of its requests, in the group's order."""
    results: dict[int, MeteredBatch] = {}
    for account_id, indexes in by_account.items():
        batch = batches[account_id]
        start = 0
        for position, index in enumerate(indexes):
            end = start + len(group[index].items)
            # The account's notices go with its first request, so they are counted once.
            notices = batch.notices if position == 0 else []
            results[index] = MeteredBatch(events=batch.events[start:end], notices=notices)
            start = end
    return [results[index] for index in range(len(group))]


def _publish_counted(
    connection: Connection,
    account_id: str,
    items: Sequence[tuple[str, Any]],
    default_quota: int,
    thresholds: tuple[int, ...],
    period: Period,
    hand_off: HandOff | None = None,
) -> MeteredBatch:
    """Count the events against the quota and store them. Raise _QuotaFull if it has no room."""
    counter = _count_events(connection, account_id, period, default_quota, len(items))
    if counter is None:
        quota = get_account_limits(connection, account_id).event_quota
        raise _QuotaFull(QuotaPolicy(default_quota if quota is None else quota, thresholds))
    policy = QuotaPolicy(counter.quota, thresholds)

    published = event_store.insert_events(connection, account_id, items, hand_off)
    due = _publish_quota_notices(connection, account_id, policy, counter, period)
    return MeteredBatch(events=published, notices=due)


def _quota_exceeded(
    account_id: str, policy: QuotaPolicy, period: Period, now: float, count: int
) -> QuotaExceeded:
    batch_note = "" if count == 1 else f" (a batch of {count} needs room for all of them)"
    return QuotaExceeded(
        f"Account {account_id} used its quota of {policy.quota} events for "
        f"{period.label}{batch_note}; publishing resumes when the period ends at "
        f"{period.end_text}.",
        details={
            "quota": policy.quota,
            "period_start": period.start,
            "period_end": period.end,
        },
        headers={"Retry-After": str(period.seconds_left(now))},
    )


def _count_events(
    connection: Connection, account_id: str, period: Period, default_quota: int, count: int
) -> Row[Any] | None:
    """Add `count` to the period's count if the quota has room for them; None when not.

    The row returned carries the quota in force, read in the same statement.
    """
    parameters = {
        "account_id": account_id,
        "period_start": period.start,
        "default_quota": default_quota,
        "count": count,
    }
    return _with_room(
        connection.execute(_count_statement(connection.dialect.name), parameters).first()
    )


def _with_room(counter: Any) -> Any:
    """Return the counting upsert's row, or None if the count went past the quota.

    No row comes back when the update's quota check refused. A period's first publish
    inserts its row without that check, so its count is compared here.
    """
    if counter is not None and counter.quota > 0 and counter.event_count > counter.quota:
        return None
    return counter


@functools.cache
def _count_statement(dialect_name: str) -> Any:
    """Build the counting upsert once per dialect, because every publish runs it.

    The account's quota comes from a subquery rather than a query of its own: on
    PostgreSQL that saves a round trip for each grouped publish. A quota of 0 is
    unlimited.
    """
    override = (
        select(account_limits.c.event_quota)
        .where(account_limits.c.account_id == bindparam("account_id"))
        .scalar_subquery()
    )
    quota = func.coalesce(override, bindparam("default_quota"))
    insert_of_dialect = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert_of_dialect(usage_periods).values(
        account_id=bindparam("account_id"),
        period_start=bindparam("period_start"),
        event_count=bindparam("count"),
    )
    has_room = or_(quota <= 0, usage_periods.c.event_count + bindparam("count") <= quota)
    return statement.on_conflict_do_update(
        index_elements=[usage_periods.c.account_id, usage_periods.c.period_start],
        set_={"event_count": usage_periods.c.event_count + bindparam("count")},
        where=has_room,
    ).returning(
        usage_periods.c.event_count,
        usage_periods.c.warned_percent,
        usage_periods.c.quota_notified,
        quota.label("quota"),
    )


def _publish_quota_notices(
    connection: Connection, account_id: str, policy: QuotaPolicy, counter: Row[Any], period: Period
) -> list[PublishedEvent]:
    count = counter.event_count
    due = policy.notices_due(count, counter.warned_percent, counter.quota_notified)
    if not due:
        return []

    connection.execute(
        update(usage_periods)
        .where(_period_row(account_id, period))
        .values(
            warned_percent=max(due.warnings, default=counter.warned_percent),
            quota_notified=counter.quota_notified or due.exceeded,
        )
    )
    published = [
        event_store.insert_event(
            connection,
            account_id,
            notices.QUOTA_WARNING,
            notices.warning_data(policy, count, threshold, period),
        )
        for threshold in due.warnings
    ]
    if due.exceeded:
        data = notices.quota_exceeded_data(policy, count, period)
        published.append(
            event_store.insert_event(connection, account_id, notices.QUOTA_EXCEEDED, data)
        )
    logger.info(
        "usage notices published",
        extra={
            "account_id": account_id,
            "events": [event.id for event in published],
            "count": count,
        },
    )
    return published


def _notify_quota_reached(
    engine: Engine, account_id: str, policy: QuotaPolicy, period: Period
) -> None:
    """Publish `usage.quota_exceeded` if the period has none yet, as after a lowered quota."""
    with engine.begin() as connection:
        row = connection.execute(
            update(usage_periods)
            .where(_period_row(account_id, period), usage_periods.c.quota_notified.is_(False))
            .values(quota_notified=True)
            .returning(usage_periods.c.event_count)
        ).first()
        if row is not None:
            data = notices.quota_exceeded_data(policy, row.event_count, period)
            event = event_store.insert_event(connection, account_id, notices.QUOTA_EXCEEDED, data)
            logger.info(
                "usage notices published", extra={"account_id": account_id, "events": [event.id]}
            )


def _period_row(account_id: str, period: Period) -> Any:
    return and_(
        usage_periods.c.account_id == account_id, usage_periods.c.period_start == period.start
    )


# --- Operator views and announcements --------------------------------------------------


@dataclass(frozen=True)
class AccountUsage:
    """One account as the operator sees it: live keys, this period's count and overrides."""

    id: str
    name: str
    created: int
    live_keys: int
    events: int
    warned_percent: int
    quota_notified: bool
    limits: AccountLimits


def list_account_usage(
    engine: Engine, period: Period, account_id: str | None = None
) -> list[AccountUsage]:
    """Return every account (or the one with `account_id`) ordered by name."""
    live_keys = (
        select(api_keys.c.account_id, func.count().label("live_keys"))
        .where(api_keys.c.revoked_at.is_(None))
        .group_by(api_keys.c.account_id)
        .subquery()
    )
    query = (
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.created,
            func.coalesce(live_keys.c.live_keys, 0).label("live_keys"),
            func.coalesce(usage_periods.c.event_count, 0).label("events"),
            func.coalesce(usage_periods.c.warned_percent, 0).label("warned_percent"),
            func.coalesce(usage_periods.c.quota_notified, False).label("quota_notified"),
            account_limits.c.rate_limit,
            account_limits.c.rate_limit_burst,
            account_limits.c.event_quota,
        )
        .select_from(accounts)
        .outerjoin(live_keys, live_keys.c.account_id == accounts.c.id)
        .outerjoin(
            usage_periods,
            and_(
                usage_periods.c.account_id == accounts.c.id,
                usage_periods.c.period_start == period.start,
            ),
        )
        .outerjoin(account_limits, account_limits.c.account_id == accounts.c.id)
        .order_by(accounts.c.name)
    )
    if account_id is not None:
        query = query.where(accounts.c.id == account_id)
    with engine.connect() as connection:
        return [_account_usage(row) for row in connection.execute(query)]


def _account_usage(row: Any) -> AccountUsage:
    return AccountUsage(
        id=row.id,
        name=row.name,
        created=row.created,
        live_keys=row.live_keys,
        events=row.events,
        warned_percent=row.warned_percent,
        quota_notified=bool(row.quota_notified),
        limits=AccountLimits(row.rate_limit, row.rate_limit_burst, row.event_quota),
    )


def subscribed_accounts(connection: Connection, event_type: str) -> list[str]:
    """Ids of the accounts with at least one enabled webhook subscribed to the type."""
    rows = connection.execute(
        select(webhooks.c.account_id, webhooks.c.events).where(webhooks.c.enabled.is_(True))
    )
    return sorted(
        {
            row.account_id
            for row in rows
            if any(matches(pattern, event_type) for pattern in json.loads(row.events))
        }
    )


def publish_announcement(
    engine: Engine, event_type: str, data: dict[str, Any]
) -> list[PublishedEvent]:
    """Publish the event to every subscribed account in one transaction, uncounted.

    One transaction means a failed announcement reaches no account, so running it again
    does not announce twice.

    NOTE: a connection lost during COMMIT raises although the server may have committed.
    `commit_check` waits for the lock on an account's counter, which an announcement
    does not take, so the outcome is left to the operator.
    """
    with engine.begin() as connection:
        return [
            event_store.insert_event(connection, account_id, event_type, data)
            for account_id in subscribed_accounts(connection, event_type)
        ]
