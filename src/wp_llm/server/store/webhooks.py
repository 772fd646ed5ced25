"""Webhook endpoints: their URL, subscriptions, signing secrets and enabled state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from wp_llm.server import ids
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.schema import deliveries, webhooks
from wp_llm.server.errors import ResourceNotFound
from wp_llm.server.store.pagination import Page, fetch_page

Row = Mapping[str, Any]


def encode_secrets(box: SecretBox, entries: Sequence[tuple[str, int | None]]) -> str:
    """Store secrets encrypted, newest first, each with its expiry in ms (None: no expiry)."""
    return json.dumps([{"secret": box.encrypt(s), "expires_at": exp} for s, exp in entries])


def active_secrets(box: SecretBox, row: Row, now_ms: int) -> list[str]:
    """Decrypt the secrets that sign deliveries now: the current one and any in its grace period."""
    entries = json.loads(row["secrets"])
    return [
        box.decrypt(entry["secret"])
        for entry in entries
        if entry["expires_at"] is None or entry["expires_at"] > now_ms
    ]


def subscribed_types(row: Row) -> list[str]:
    return list(json.loads(row["events"]))


def create_webhook(
    engine: Engine,
    box: SecretBox,
    *,
    account_id: str,
    url: str,
    events: Sequence[str],
    description: str | None,
    secret: str,
) -> Row:
    now = ids.now_ms()
    values = {
        "id": ids.new_id(ids.WEBHOOK),
        "account_id": account_id,
        "url": url,
        "description": description,
        "events": json.dumps(list(events)),
        "secrets": encode_secrets(box, [(secret, None)]),
        "enabled": True,
        "created": now // 1000,
        "updated": now // 1000,
    }
    with engine.begin() as connection:
        connection.execute(insert(webhooks).values(**values))
        return _get(connection, account_id, values["id"])


def _get(connection: Connection, account_id: str, webhook_id: str) -> Row:
    row = (
        connection.execute(
            select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.account_id == account_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ResourceNotFound(
            f"No webhook with id {webhook_id!r} in this account.",
            code="webhook_not_found",
            details={"field": "id", "value": webhook_id},
        )
    return row


def get_webhook(engine: Engine, account_id: str, webhook_id: str) -> Row:
    with engine.connect() as connection:
        return _get(connection, account_id, webhook_id)


def list_webhooks(
    engine: Engine,
    account_id: str,
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> Page:
    query = select(webhooks).where(webhooks.c.account_id == account_id)
    with engine.connect() as connection:
        return fetch_page(
            connection,
            webhooks,
            query,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )


def update_webhook(
    engine: Engine, account_id: str, webhook_id: str, changes: Mapping[str, Any]
) -> Row:
    """Apply changes to url, events, description or enabled; re-enabling resumes waiting deliveries."""
    now = ids.now_ms()
    values: dict[str, Any] = {"updated": now // 1000}
    for name in ("url", "description", "enabled"):
        if name in changes:
            values[name] = changes[name]
    if "events" in changes:
        values["events"] = json.dumps(list(changes["events"]))

    with engine.begin() as connection:
        current = _get(connection, account_id, webhook_id)
        reenabled = values.get("enabled") is True and not current["enabled"]
        if values.get("enabled") is False and current["enabled"]:
            values.update(disabled_reason="disabled through the API", disabled_at=now)
        if reenabled:
            values.update(disabled_reason=None, disabled_at=None, failing_since=None)
        connection.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))
        if reenabled:
            _resume_deliveries(connection, webhook_id, now)
        return _get(connection, account_id, webhook_id)


def _resume_deliveries(connection: Connection, webhook_id: str, now: int) -> None:
    connection.execute(
        update(deliveries)
        .where(deliveries.c.webhook_id == webhook_id, deliveries.c.status == "pending")
        .values(next_attempt_at=now, updated=now)
    )


def delete_webhook(engine: Engine, account_id: str, webhook_id: str) -> None:
    """Delete the webhook and cancel its pending deliveries; the delivery log stays."""
    now = ids.now_ms()
    with engine.begin() as connection:
        _get(connection, account_id, webhook_id)
        connection.execute(
            update(deliveries)
            .where(deliveries.c.webhook_id == webhook_id, deliveries.c.status == "pending")
            .values(status="cancelled", next_attempt_at=None, lease_until=None, updated=now)
        )
        connection.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


def disable_webhook(connection: Connection, webhook_id: str, reason: str, now: int) -> bool:
    """Disable a webhook from the engine; return False if it was already disabled or gone."""
    result = connection.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook_id, webhooks.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated=now // 1000)
    )
    return result.rowcount > 0
