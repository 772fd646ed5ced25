"""Tables of the service, written once for SQLite and PostgreSQL.

Times are integer Unix milliseconds, except `created` columns exposed by the API,
which are integer Unix seconds as the event envelope requires.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
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
    Index("ix_webhooks_account", "account_id", "id"),
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
    Index("ix_deliveries_event", "event_id"),
    Index("ix_deliveries_account", "account_id", "id"),
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
