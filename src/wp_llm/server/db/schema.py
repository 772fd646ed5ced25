"""Tables of the service, written once for SQLite and PostgreSQL.

Times are integer Unix milliseconds, except `created` columns exposed by the API,
which are integer Unix seconds as the event envelope requires.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=True),
    Column("kind", String(16), nullable=False, server_default="account"),
    Column("name", String(200), nullable=True),
    Column("hint", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("events", Text, nullable=False),
    # JSON list of {"secret": <encrypted>, "expires_at": ms | null}, newest first.
    Column("secrets", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_at", BigInteger, nullable=True),
    Column("failing_since", BigInteger, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    # Per-endpoint delivery settings; NULL means the operator's default.
    Column("rate_limit", Float, nullable=True),
    Column("max_concurrency", Integer, nullable=True),
    Column("timeout", Float, nullable=True),
    Column("retry_schedule", Text, nullable=True),
    # Endpoint health, kept by the engine: the circuit breaker and a Retry-After pause.
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("circuit_state", String(16), nullable=False, server_default="closed"),
    Column("circuit_retry_at", BigInteger, nullable=True),
    Column("paused_until", BigInteger, nullable=True),
    Index("ix_webhooks_account", "account_id", "id"),
    Index(
        "ix_webhooks_circuit_open",
        "circuit_retry_at",
        sqlite_where=text("circuit_state = 'open'"),
        postgresql_where=text("circuit_state = 'open'"),
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("type", String(100), nullable=False),
    Column("created", BigInteger, nullable=False),
    # The serialized envelope: the exact bytes every attempt sends.
    Column("body", LargeBinary, nullable=False),
    Index("ix_events_account", "account_id", "id"),
    # The event list filtered by type; a type an account never published would scan all.
    Index("ix_events_account_type", "account_id", "type", "id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), nullable=False),
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False),
    Column("webhook_id", String(40), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    # The claim query scans only pending rows, oldest due first.
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_webhook", "webhook_id", "id"),
    # Circuit probes and replays look up one webhook's pending rows.
    Index(
        "ix_deliveries_webhook_due",
        "webhook_id",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_event", "event_id"),
    Index("ix_deliveries_account", "account_id", "id"),
    # Delivery log filters by a rare status, such as failed: without these a filter that
    # matches nothing scans every row of the account or webhook. Succeeded rows, nearly
    # all of them, stay out, so the indexes are small and a success adds no entry.
    Index(
        "ix_deliveries_webhook_unfinished",
        "webhook_id",
        "status",
        "id",
        sqlite_where=text("status <> 'succeeded'"),
        postgresql_where=text("status <> 'succeeded'"),
    ),
    Index(
        "ix_deliveries_account_unfinished",
        "account_id",
        "status",
        "id",
        sqlite_where=text("status <> 'succeeded'"),
        postgresql_where=text("status <> 'succeeded'"),
    ),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("delivery_id", String(40), nullable=False),
    Column("webhook_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("response_truncated", Boolean, nullable=False, server_default=text("false")),
    Index("ix_attempts_delivery", "delivery_id", "id"),
)

account_limits = Table(
    "account_limits",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    # NULL means the operator's default; a rate of 0 or a quota of 0 means unlimited.
    Column("rate_limit", Float, nullable=True),
    Column("rate_limit_burst", Integer, nullable=True),
    Column("event_quota", BigInteger, nullable=True),
    Column("updated", BigInteger, nullable=False),
)

# Token buckets of API keys, used when several API processes share one rate limit.
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

rate_limit_notices = Table(
    "rate_limit_notices",
    metadata,
    Column("key_id", String(40), primary_key=True),
    # The key's next usage.limit_exceeded notice waits until this time.
    Column("window_ends", BigInteger, nullable=False),
)

usage_periods = Table(
    "usage_periods",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    # The first second of the calendar month in UTC, in Unix seconds.
    Column("period_start", BigInteger, primary_key=True),
    Column("event_count", BigInteger, nullable=False),
    # The highest warning threshold, in percent, already announced in this period.
    Column("warned_percent", Integer, nullable=False, server_default="0"),
    Column("quota_notified", Boolean, nullable=False, server_default=text("false")),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # The API key's account, or the service key's own id.
    Column("scope", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("created", BigInteger, nullable=False),
)

maintenance_runs = Table(
    "maintenance_runs",
    metadata,
    # The periodic job, such as "retention"; one row each, shared by every worker.
    Column("name", String(40), primary_key=True),
    # When a worker last started the job, in Unix ms; the next start waits an interval.
    Column("started_at", BigInteger, nullable=False),
)
