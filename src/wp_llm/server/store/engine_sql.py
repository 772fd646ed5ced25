"""The delivery engine's claim and record statements, written for each database's driver.

These statements run for every delivery. Built with SQLAlchemy Core, they spent more
time in SQLAlchemy than in the database, which processed every parameter of every row
and every value of a long IN list. Here each statement is plain SQL in the driver's
own parameter style, run with `Connection.exec_driver_sql`. That skips the parameter
processing but keeps SQLAlchemy's error wrapping and its handling of lost connections.
A micro-benchmark with batches of 128 measured the client's CPU per delivery. On
SQLite a claim went from 30 to 24 us and a record from 38 to 24 us. On PostgreSQL a
claim went from 55 to 36 us and a record from 68 to 35 us.

PostgreSQL takes a whole batch as one array per column (`unnest`, `= ANY`). SQLite
takes one placeholder per value, and a batch in multi-row statements, so that a
batch is one call into SQLite instead of one per row.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wp_llm.server.store.deliveries import AttemptRecord

Statement = tuple[str, Any]

# SQLite allows 32,766 parameters in one statement, so a batch of attempts is written
# in chunks of this many rows, at 11 parameters each.
# NOTE: sqlite3 keeps prepared statements per connection by their text, and each chunk
# size is a new text, so most chunks are prepared anew (about 2.5 us per row of 128).
SQLITE_ROWS_PER_STATEMENT = 500


def _attempt_row(record: AttemptRecord) -> tuple[Any, ...]:
    return (
        record.attempt_id,
        record.delivery_id,
        record.webhook_id,
        record.account_id,
        record.attempted_at,
        "succeeded" if record.succeeded else "failed",
        record.status_code,
        record.latency_ms,
        record.error,
        record.response_body,
        record.response_truncated,
    )


def _delivery_row(record: AttemptRecord) -> tuple[Any, ...]:
    return (
        record.delivery_id,
        record.next_status,
        1 if record.spends_attempt else 0,
        record.next_attempt_at,
        record.status_code,
        record.error,
        record.attempted_at,
    )


ATTEMPT_COLUMNS = (
    "id, delivery_id, webhook_id, account_id, attempted_at, outcome, status_code, "
    "latency_ms, error, response_body, response_truncated"
)
ATTEMPT_COLUMN_COUNT = ATTEMPT_COLUMNS.count(",") + 1

# A delivery moves on from its attempt only while this worker holds its lease. Deleting
# the webhook cancels it while the attempt is in flight: the attempt still counts, and
# the delivery ends succeeded if the endpoint accepted it, or stays cancelled if not,
# since nothing retries it. `b` is the batch: (id, status, spent, next_at, code, error,
# at) per delivery.
_RECORD_SET = """
    status = CASE WHEN d.status = 'cancelled' AND b.status <> 'succeeded' THEN 'cancelled'
                  ELSE b.status END,
    attempt_count = d.attempt_count + b.spent,
    next_attempt_at = CASE WHEN d.status = 'cancelled' THEN NULL ELSE b.next_at END,
    lease_until = NULL,
    lease_owner = NULL,
    last_status_code = b.code,
    last_error = b.error,
    last_attempt_at = b.at,
    updated = b.at
"""
_RECORD_WHERE = """
    d.id = b.id
    AND ((d.lease_owner = {owner} AND d.status = 'pending')
         OR (d.lease_owner IS NULL AND d.status = 'cancelled'))
"""

# Due deliveries of enabled webhooks that no live worker leases, oldest due first.
# Webhooks whose circuit is open or that asked for a pause wait.
_CANDIDATES = """
    SELECT d.id, d.webhook_id, w.max_concurrency{extra_columns}
    FROM deliveries AS d JOIN webhooks AS w ON w.id = d.webhook_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= {now}
      AND (d.lease_until IS NULL OR d.lease_until < {now})
      AND w.enabled AND w.circuit_state = 'closed'
      AND (w.paused_until IS NULL OR w.paused_until <= {now})
      {exclusion}
    ORDER BY d.next_attempt_at
    LIMIT {limit}
"""
# In the order of `_CLAIMED_COLUMNS` in deliveries.py, which `_load_claimed` reads.
_LEASED_COLUMNS = "id, account_id, event_id, event_type, webhook_id, attempt_count"


class SQLiteStatements:
    """Statements with `?` placeholders, one per value."""

    @staticmethod
    def _placeholders(count: int) -> str:
        return ",".join("?" * count)

    def candidates(self, now: int, exclude_webhooks: Sequence[str], limit: int) -> Statement:
        exclusion = ""
        if exclude_webhooks:
            exclusion = f"AND d.webhook_id NOT IN ({self._placeholders(len(exclude_webhooks))})"
        sql = _CANDIDATES.format(extra_columns="", now="?", exclusion=exclusion, limit="?")
        return sql, (now, now, now, *exclude_webhooks, limit)

    def lease(self, delivery_ids: Sequence[str], lease_until: int, owner: str) -> Statement:
        sql = (
            f"UPDATE deliveries SET lease_until = ?, lease_owner = ? "
            f"WHERE id IN ({self._placeholders(len(delivery_ids))}) RETURNING {_LEASED_COLUMNS}"
        )
        return sql, (lease_until, owner, *delivery_ids)

    def bodies(self, event_ids: Sequence[str]) -> Statement:
        sql = f"SELECT id, body FROM events WHERE id IN ({self._placeholders(len(event_ids))})"
        return sql, tuple(event_ids)

    def record(self, records: Sequence[AttemptRecord], owner: str) -> list[Statement]:
        statements: list[Statement] = []
        for start in range(0, len(records), SQLITE_ROWS_PER_STATEMENT):
            chunk = records[start : start + SQLITE_ROWS_PER_STATEMENT]
            insert_sql, update_sql = _sqlite_record_sql(len(chunk))
            attempt_values = [value for record in chunk for value in _attempt_row(record)]
            delivery_values = [value for record in chunk for value in _delivery_row(record)]
            statements.append((insert_sql, tuple(attempt_values)))
            statements.append((update_sql, (*delivery_values, owner)))
        return statements


@functools.lru_cache(maxsize=64)
def _sqlite_record_sql(rows: int) -> tuple[str, str]:
    """Return the INSERT of `rows` attempts and the UPDATE of their deliveries."""
    attempt = "(" + ",".join("?" * ATTEMPT_COLUMN_COUNT) + ")"
    insert_sql = f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES " + ",".join([attempt] * rows)
    batch = ",".join(["(?,?,?,?,?,?,?)"] * rows)
    update_sql = (
        f"WITH b(id, status, spent, next_at, code, error, at) AS (VALUES {batch}) "
        f"UPDATE deliveries AS d SET {_RECORD_SET} FROM b "
        f"WHERE {_RECORD_WHERE.format(owner='?')}"
    )
    return insert_sql, update_sql


class PostgreSQLStatements:
    """Statements in psycopg's placeholder style, where a batch travels as one array per column.

    The claim and the record are one statement each, so they run without a transaction
    around them: one round trip instead of six for a claim and four for a record.
    Between those round trips the server sat idle, waiting for the worker's database
    thread to get the interpreter lock back from the event loop, which sends. Arrays
    go in binary (`%b`), which psycopg encodes in about half the time of their text
    form.
    """

    def claim(
        self,
        *,
        now: int,
        exclude_webhooks: Sequence[str],
        scan_limit: int,
        limit: int,
        lease_until: int,
        owner: str,
        quotas: Mapping[str, int],
        default_quota: int,
        concurrency_factor: int,
    ) -> Statement:
        """Build the statement that leases due rows, each webhook up to its quota.

        Its rows come oldest due first and hold `_LEASED_COLUMNS`, the due time, the event
        body (on the event's first row only, else NULL) and `CLAIM_TARGET_COLUMNS`. The
        quotas are those of `_within_quotas` in deliveries.py, applied in SQL.
        """
        exclusion = "AND NOT (d.webhook_id = ANY(%(excluded)b))" if exclude_webhooks else ""
        candidates = _CANDIDATES.format(
            extra_columns=", d.next_attempt_at",
            now="%(now)s",
            exclusion=exclusion,
            limit="%(scan_limit)s",
        )
        sql = _POSTGRESQL_CLAIM.format(candidates=candidates)
        return sql, {
            "now": now,
            "excluded": list(exclude_webhooks),
            "scan_limit": scan_limit,
            "limit": limit,
            "lease_until": lease_until,
            "owner": owner,
            "quota_webhooks": list(quotas),
            "quota_counts": list(quotas.values()),
            "default_quota": default_quota,
            "factor": concurrency_factor,
        }

    def bodies(self, event_ids: Sequence[str]) -> Statement:
        return "SELECT id, body FROM events WHERE id = ANY(%b)", (list(event_ids),)

    def record(self, records: Sequence[AttemptRecord], owner: str) -> Statement:
        attempt_columns = [list(column) for column in zip(*map(_attempt_row, records), strict=True)]
        delivery_columns = [
            list(column) for column in zip(*map(_delivery_row, records), strict=True)
        ]
        return _POSTGRESQL_RECORD, (*attempt_columns, *delivery_columns, owner)


# The webhook columns a claimed row carries, in this order, after the due time and body.
CLAIM_TARGET_COLUMNS = (
    "url",
    "secrets",
    "rate_limit",
    "max_concurrency",
    "timeout",
    "retry_schedule",
    "consecutive_failures",
    "circuit_state",
)

# SKIP LOCKED: concurrent workers claim disjoint batches instead of waiting. A webhook's
# quota is the one asked for, else its max_concurrency times the factor, else the default.
# The UPDATE takes the chosen ids as an array, which it looks up by primary key: joined
# with `chosen` instead, it read the whole table (2 of the claim's 10 ms at 20,000 rows).
# An event's body comes with its first row only, so a fan-out sends it once.
_POSTGRESQL_CLAIM = f"""
    WITH scanned AS ({{candidates}} FOR UPDATE OF d SKIP LOCKED),
    ranked AS (
        SELECT s.id, s.next_attempt_at,
               row_number() OVER (
                   PARTITION BY s.webhook_id ORDER BY s.next_attempt_at, s.id
               ) AS position,
               COALESCE(q.quota, s.max_concurrency * %(factor)s, %(default_quota)s) AS quota
        FROM scanned AS s
        LEFT JOIN unnest(%(quota_webhooks)b::text[], %(quota_counts)b::int[])
            AS q(webhook_id, quota) ON q.webhook_id = s.webhook_id
    ),
    chosen AS (
        SELECT id FROM ranked WHERE position <= quota
        ORDER BY next_attempt_at, id
        LIMIT %(limit)s
    ),
    leased AS (
        UPDATE deliveries AS d SET lease_until = %(lease_until)s, lease_owner = %(owner)s
        WHERE d.id = ANY(ARRAY(SELECT id FROM chosen))
        RETURNING {_LEASED_COLUMNS}, next_attempt_at
    )
    SELECT {", ".join("l." + column for column in _LEASED_COLUMNS.split(", "))},
        l.next_attempt_at,
        CASE WHEN row_number() OVER (PARTITION BY l.event_id ORDER BY l.id) = 1
             THEN e.body END,
        {", ".join("w." + column for column in CLAIM_TARGET_COLUMNS)}
    FROM leased AS l
    JOIN events AS e ON e.id = l.event_id
    JOIN webhooks AS w ON w.id = l.webhook_id
    ORDER BY l.next_attempt_at, l.id
"""
# One UPDATE for the batch: 256 single-row UPDATEs took longer than the INSERT of their
# 256 attempts. The INSERT runs as part of the same statement. Outside a transaction, a
# connection lost during the statement leaves unknown whether it committed, and the
# worker writes the batch again: attempts already stored are skipped, and so are
# their deliveries.
_POSTGRESQL_RECORD = f"""
    WITH inserted AS (
        INSERT INTO attempts ({ATTEMPT_COLUMNS})
        SELECT * FROM unnest(
            %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],
            %b::int[], %b::int[], %b::text[], %b::text[], %b::boolean[]
        )
        ON CONFLICT (id) DO NOTHING
        RETURNING delivery_id
    )
    UPDATE deliveries AS d SET {_RECORD_SET}
    FROM unnest(
        %b::text[], %b::text[], %b::int[], %b::bigint[], %b::int[], %b::text[], %b::bigint[]
    ) AS b(id, status, spent, next_at, code, error, at)
    WHERE {_RECORD_WHERE.format(owner="%b")}
      AND b.id IN (SELECT delivery_id FROM inserted)
"""

Statements = SQLiteStatements | PostgreSQLStatements
_BY_DIALECT: dict[str, Statements] = {
    "sqlite": SQLiteStatements(),
    "postgresql": PostgreSQLStatements(),
}


def statements_for(dialect: str) -> Statements:
    """Return the engine's statements for a SQLAlchemy dialect name."""
    try:
        return _BY_DIALECT[dialect]
    except KeyError:
        raise ValueError(
            f"unsupported database {dialect!r}: WP_LLM_DATABASE_URL must point at SQLite "
            "or PostgreSQL"
        ) from None
