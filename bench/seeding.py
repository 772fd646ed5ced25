"""Direct writes to the service's database: accounts, webhooks and large backlogs.

Webhooks and API keys go through the service's own store functions. Backlogs are
bulk INSERTs into the service's `events`, `deliveries` and `attempts` tables through
SQLAlchemy Core, with envelopes built by the same function the API uses. Publishing
50,000 events one request at a time would take longer than the scenario itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert

from bench.payload import ENDPOINT_SECRET, EVENT_TYPE
from wp_llm.server import ids
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.schema import attempts, deliveries, events
from wp_llm.server.store import accounts
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.events import build_envelope

INSERT_CHUNK_ROWS = 2_000
# The state a delivery is in after its endpoint failed once and its retry came due.
OUTAGE_STATUS_CODE = 503
OUTAGE_ERROR = "endpoint answered 503"
OUTAGE_AGE_MS = 60_000


@dataclass(frozen=True)
class Tenant:
    """The bench's account and its API key."""

    account_id: str
    api_key: str


def create_tenant(engine: Engine, name: str) -> Tenant:
    account_id = accounts.ensure_account(engine, name)
    return Tenant(account_id, accounts.create_key(engine, account_id=account_id, name=name).token)


def register_webhooks(
    engine: Engine, box: SecretBox, account_id: str, urls: Sequence[str]
) -> list[str]:
    """Create one webhook per URL, subscribed to the bench's event type; return their ids."""
    return [
        str(
            webhook_store.create_webhook(
                engine,
                box,
                account_id=account_id,
                url=url,
                events=[EVENT_TYPE],
                description=None,
                secret=ENDPOINT_SECRET,
            )["id"]
        )
        for url in urls
    ]


def seed_backlog(
    engine: Engine,
    account_id: str,
    webhook_ids: Sequence[str],
    event_count: int,
    data: dict[str, Any],
    *,
    after_outage: bool = False,
) -> int:
    """Insert `event_count` events, each with one due delivery per webhook; return the deliveries.

    With `after_outage`, every delivery has one failed attempt on record and is due for
    its retry now, as after an endpoint outage that has just ended.
    """
    inserted = 0
    for start in range(0, event_count, INSERT_CHUNK_ROWS):
        size = min(INSERT_CHUNK_ROWS, event_count - start)
        inserted += _insert_chunk(engine, account_id, webhook_ids, size, data, after_outage)
    # Autovacuum analyzes a backlog that builds up in production as it grows. A backlog
    # inserted all at once has no statistics, so the planner would treat it as empty.
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    return inserted


def _insert_chunk(
    engine: Engine,
    account_id: str,
    webhook_ids: Sequence[str],
    size: int,
    data: dict[str, Any],
    after_outage: bool,
) -> int:
    now = ids.now_ms()
    event_rows = [_event_row(account_id, now, data) for _ in range(size)]
    delivery_rows = [
        _delivery_row(account_id, event["id"], webhook_id, now, after_outage)
        for event in event_rows
        for webhook_id in webhook_ids
    ]

    with engine.begin() as connection:
        connection.execute(insert(events), event_rows)
        connection.execute(insert(deliveries), delivery_rows)
        if after_outage:
            connection.execute(
                insert(attempts), [_failed_attempt_row(row) for row in delivery_rows]
            )
    return len(delivery_rows)


def _event_row(account_id: str, now: int, data: dict[str, Any]) -> dict[str, Any]:
    event_id = ids.new_id(ids.EVENT)
    return {
        "id": event_id,
        "account_id": account_id,
        "type": EVENT_TYPE,
        "created": now // 1000,
        "body": build_envelope(event_id, now // 1000, EVENT_TYPE, data),
    }


def _delivery_row(
    account_id: str, event_id: str, webhook_id: str, now: int, after_outage: bool
) -> dict[str, Any]:
    attempted_at = now - OUTAGE_AGE_MS if after_outage else None
    return {
        "id": ids.new_id(ids.DELIVERY),
        "account_id": account_id,
        "event_id": event_id,
        "webhook_id": webhook_id,
        "event_type": EVENT_TYPE,
        "status": "pending",
        "attempt_count": 1 if after_outage else 0,
        "next_attempt_at": now,
        "last_status_code": OUTAGE_STATUS_CODE if after_outage else None,
        "last_error": OUTAGE_ERROR if after_outage else None,
        "last_attempt_at": attempted_at,
        "created": now // 1000,
        "updated": now,
    }


def _failed_attempt_row(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ids.new_id(ids.ATTEMPT),
        "delivery_id": delivery["id"],
        "webhook_id": delivery["webhook_id"],
        "account_id": delivery["account_id"],
        "attempted_at": delivery["last_attempt_at"],
        "outcome": "failed",
        "status_code": OUTAGE_STATUS_CODE,
        "latency_ms": 1,
        "error": OUTAGE_ERROR,
        "response_body": "",
        "response_truncated": False,
    }
