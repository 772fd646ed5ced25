"""Webhook endpoints: URL, subscriptions, signing secrets, delivery settings and state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from wp_llm.server import ids
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.schema import deliveries, webhooks
from wp_llm.server.engine.notify import announce_deliveries
from wp_llm.server.errors import ResourceNotFound
from wp_llm.server.store.pagination import Page, fetch_page

Row = Mapping[Any, Any]


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


# Settings an integrator may set per endpoint; NULL in the row means the operator's default.
DELIVERY_SETTINGS = ("rate_limit", "max_concurrency", "timeout", "retry_schedule")

# Secrets kept per webhook, the current one included; older ones in their grace period
# beyond this are dropped at the next rotation.
MAX_STORED_SECRETS = 5

# Endpoint health as a freshly created or re-enabled webhook has it.
HEALTHY_VALUES: Mapping[Any, Any] = {
    "consecutive_failures": 0,
    "failing_since": None,
    "circuit_state": "closed",
    "circuit_retry_at": None,
    "paused_until": None,
}


@dataclass(frozen=True)
class Endpoint:
    """A webhook's delivery settings, and whether it was healthy when read."""

    rate_limit: float | None = None
    max_concurrency: int | None = None
    timeout: float | None = None
    retry_schedule: tuple[float, ...] | None = None
    healthy: bool = True


def endpoint_of(row: Row) -> Endpoint:
    schedule = row["retry_schedule"]
    return Endpoint(
        rate_limit=row["rate_limit"],
        max_concurrency=row["max_concurrency"],
        timeout=row["timeout"],
        retry_schedule=None if schedule is None else tuple(json.loads(schedule)),
        healthy=row["consecutive_failures"] == 0 and row["circuit_state"] == "closed",
    )


def _settings_values(changes: Mapping[Any, Any]) -> dict[str, Any]:
    values = {name: changes[name] for name in DELIVERY_SETTINGS if name in changes}
    if values.get("retry_schedule") is not None:
        values["retry_schedule"] = json.dumps(list(values["retry_schedule"]))
    return values


def create_webhook(
    engine: Engine,
    box: SecretBox,
    *,
    account_id: str,
    url: str,
    events: Sequence[str],
    description: str | None,
    secret: str,
    delivery_settings: Mapping[Any, Any] | None = None,
) -> Row:
    now = ids.now_ms()
    values: dict[str, Any] = {
        "id": ids.new_id(ids.WEBHOOK),
        "account_id": account_id,
        "url": url,
        "description": description,
        "events": json.dumps(list(events)),
        "secrets": encode_secrets(box, [(secret, None)]),
        "enabled": True,
        "created": now // 1000,
        "updated": now // 1000,
        **_settings_values(delivery_settings or {}),
    }
    with engine.begin() as connection:
        connection.execute(insert(webhooks).values(**values))
        return _get(connection, account_id, values["id"])


def _get(connection: Connection, account_id: str, webhook_id: str, *, lock: bool = False) -> Row:
    query = select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.account_id == account_id)
    if lock:
        # FOR NO KEY UPDATE on PostgreSQL, which publishes' FOR KEY SHARE does not wait for.
        query = query.with_for_update(key_share=True)
    row = connection.execute(query).mappings().first()
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
            account_id=account_id,
            object_name="webhook",
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )


def update_webhook(
    engine: Engine, account_id: str, webhook_id: str, changes: Mapping[Any, Any]
) -> Row:
    """Apply changes to the webhook's fields and delivery settings.

    Re-enabling resumes waiting deliveries. Re-enabling or a new URL also resets the
    endpoint's health, because past failures no longer apply.
    """
    now = ids.now_ms()
    values: dict[str, Any] = {"updated": now // 1000, **_settings_values(changes)}
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
            values.update(disabled_reason=None, disabled_at=None)
        if reenabled or values.get("url", current["url"]) != current["url"]:
            values.update(HEALTHY_VALUES)
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
    announce_deliveries(connection)


def delete_webhook(engine: Engine, account_id: str, webhook_id: str) -> None:
    """Delete the webhook and cancel its pending deliveries; the delivery log stays."""
    now = ids.now_ms()
    with engine.begin() as connection:
        _get(connection, account_id, webhook_id)
        # The row goes first. On PostgreSQL, a publish in flight holds a lock on it that
        # the delete waits for, so the deliveries that publish stored are cancelled below.
        connection.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
        connection.execute(
            update(deliveries)
            .where(deliveries.c.webhook_id == webhook_id, deliveries.c.status == "pending")
            .values(
                status="cancelled",
                next_attempt_at=None,
                lease_until=None,
                lease_owner=None,
                updated=now,
            )
        )


def disable_webhook(connection: Connection, webhook_id: str, reason: str, now: int) -> bool:
    """Disable a webhook from the engine; return False if it was already disabled or gone."""
    result = connection.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook_id, webhooks.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated=now // 1000)
    )
    return result.rowcount > 0


def rotate_secret(
    engine: Engine,
    box: SecretBox,
    *,
    account_id: str,
    webhook_id: str,
    secret: str,
    grace_ms: int,
) -> Row:
    """Make `secret` the signing secret; older active secrets keep signing for `grace_ms`.

    A grace period of 0 retires the older secrets at once.
    """
    now = ids.now_ms()
    with engine.begin() as connection:
        current = _get(connection, account_id, webhook_id, lock=True)
        older = _retire(json.loads(current["secrets"]), until=now + grace_ms, now=now)
        entries = [{"secret": box.encrypt(secret), "expires_at": None}, *older]
        connection.execute(
            update(webhooks)
            .where(webhooks.c.id == webhook_id)
            .values(secrets=json.dumps(entries[:MAX_STORED_SECRETS]), updated=now // 1000)
        )
        return _get(connection, account_id, webhook_id)


def _retire(entries: list[dict[str, Any]], *, until: int, now: int) -> list[dict[str, Any]]:
    """Give every still active secret an expiry no later than `until`; drop expired ones."""
    retired = []
    for entry in entries:
        expires_at = entry["expires_at"]
        expires_at = until if expires_at is None else min(expires_at, until)
        if expires_at > now:
            retired.append({**entry, "expires_at": expires_at})
    return retired
