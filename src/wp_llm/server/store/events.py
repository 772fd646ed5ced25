"""Publishing: an event and all its deliveries are stored in one transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from wp_llm import _jsjson
from wp_llm.catalog import matches
from wp_llm.server import ids
from wp_llm.server.db.schema import deliveries, events, webhooks
from wp_llm.server.engine.notify import announce_deliveries
from wp_llm.server.errors import ResourceNotFound
from wp_llm.server.store.pagination import Page, fetch_page


@dataclass(frozen=True)
class PublishedEvent:
    """A stored event: its envelope bytes and the deliveries it fanned out to."""

    id: str
    account_id: str
    type: str
    created: int
    body: bytes
    delivery_ids: list[str]


def build_envelope(event_id: str, created: int, event_type: str, data: Any) -> bytes:
    """Serialize the envelope once, in the contract's field order, as JavaScript would."""
    envelope = {
        "id": event_id,
        "object": "event",
        "created": created,
        "type": event_type,
        "data": data,
    }
    return _jsjson.dumps(envelope)


def subscribers(connection: Connection, account_id: str, event_type: str) -> list[str]:
    """Ids of the account's enabled webhooks whose patterns match the type."""
    rows = connection.execute(
        select(webhooks.c.id, webhooks.c.events).where(
            webhooks.c.account_id == account_id, webhooks.c.enabled.is_(True)
        )
    )
    return [
        row.id
        for row in rows
        if any(matches(pattern, event_type) for pattern in json.loads(row.events))
    ]


def publish(engine: Engine, account_id: str, event_type: str, data: Any) -> PublishedEvent:
    """Store the event and one pending delivery per subscribed webhook, atomically."""
    with engine.begin() as connection:
        return insert_event(connection, account_id, event_type, data)


def insert_event(
    connection: Connection, account_id: str, event_type: str, data: Any
) -> PublishedEvent:
    """Store the event and its deliveries in the caller's transaction."""
    now = ids.now_ms()
    event_id = ids.new_id(ids.EVENT)
    body = build_envelope(event_id, now // 1000, event_type, data)

    targets = subscribers(connection, account_id, event_type)
    connection.execute(
        insert(events).values(
            id=event_id, account_id=account_id, type=event_type, created=now // 1000, body=body
        )
    )
    delivery_rows = [
        {
            "id": ids.new_id(ids.DELIVERY),
            "account_id": account_id,
            "event_id": event_id,
            "webhook_id": webhook_id,
            "event_type": event_type,
            "status": "pending",
            "attempt_count": 0,
            "next_attempt_at": now,
            "created": now // 1000,
            "updated": now,
        }
        for webhook_id in targets
    ]
    if delivery_rows:
        connection.execute(insert(deliveries), delivery_rows)
        announce_deliveries(connection)

    return PublishedEvent(
        id=event_id,
        account_id=account_id,
        type=event_type,
        created=now // 1000,
        body=body,
        delivery_ids=[str(row["id"]) for row in delivery_rows],
    )


def event_object(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Return the API form of a stored event: its envelope, parsed from the bytes that were sent."""
    return dict(json.loads(row["body"]))


def get_event(engine: Engine, account_id: str, event_id: str) -> Mapping[Any, Any]:
    query = select(events).where(events.c.id == event_id, events.c.account_id == account_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        raise ResourceNotFound(
            f"No event with id {event_id!r} in this account.",
            code="event_not_found",
            details={"field": "id", "value": event_id},
        )
    return row


def list_events(
    engine: Engine,
    account_id: str,
    *,
    limit: int,
    event_type: str | None = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> Page:
    query = select(events).where(events.c.account_id == account_id)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    with engine.connect() as connection:
        return fetch_page(
            connection,
            events,
            query,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
