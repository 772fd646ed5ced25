"""Steps the scale-out tests share: webhooks, concurrent publishing, reading the database."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from wp_llm import catalog
from wp_llm.server.db.engine import create_db_engine
from wp_llm.server.db.schema import attempts, deliveries

EVENT_TYPE = "system.maintenance"
PUBLISH_THREADS = 4
# Retries of one publish while the database restarts: 503 responses and refused connections.
PUBLISH_RETRY_SECONDS = 60.0


def create_webhooks(clients: Sequence[httpx.Client], url: str, count: int) -> list[str]:
    """Register `count` webhooks for every event type, spread over the given API processes."""
    created = []
    for index, client in zip(range(count), itertools.cycle(clients), strict=False):
        response = client.post(
            "/v1/webhooks", json={"url": url, "events": ["*"], "description": f"load {index}"}
        )
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    return created


def publish_one(client: httpx.Client, *, retry_unavailable: bool = False) -> str | None:
    """Publish one event and return its id; with `retry_unavailable`, ride out a database outage.

    Returns None when the outcome is unknown: the connection dropped after the request
    was sent, so the event may or may not have been stored.
    """
    body = {"type": EVENT_TYPE, "data": catalog.EVENT_TYPES[EVENT_TYPE].example}
    deadline = time.monotonic() + PUBLISH_RETRY_SECONDS
    while True:
        try:
            response = client.post("/v1/events", json=body)
        except httpx.TransportError:
            if not retry_unavailable:
                raise
            return None
        if response.status_code == 201:
            return str(response.json()["id"])
        assert retry_unavailable and response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"the API answered 503 for {PUBLISH_RETRY_SECONDS:g}s"
        time.sleep(0.2)


def publish_events(
    clients: Sequence[httpx.Client], count: int, *, retry_unavailable: bool = False
) -> list[str]:
    """Publish `count` events through all the given API processes at once; return accepted ids."""
    targets = list(itertools.islice(itertools.cycle(clients), count))
    with ThreadPoolExecutor(PUBLISH_THREADS) as pool:
        results = list(
            pool.map(
                lambda client: publish_one(client, retry_unavailable=retry_unavailable), targets
            )
        )
    return [event_id for event_id in results if event_id is not None]


def stored_deliveries(database_url: str) -> dict[str, str]:
    """Map every delivery id in the database to its status."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(select(deliveries.c.id, deliveries.c.status)).all())
    finally:
        engine.dispose()


def deliveries_of_events(database_url: str, event_ids: Sequence[str]) -> set[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(deliveries.c.id).where(deliveries.c.event_id.in_(list(event_ids)))
            return set(connection.execute(query).scalars())
    finally:
        engine.dispose()


def leased_by(database_url: str, pid: int) -> set[str]:
    """Ids of the deliveries leased to the worker process `pid`."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(deliveries.c.id).where(deliveries.c.lease_owner.like(f"%:{pid}:%"))
            return set(connection.execute(query).scalars())
    finally:
        engine.dispose()


def failed_attempts(database_url: str, delivery_ids: Sequence[str]) -> dict[str, list[str]]:
    """Map each of the given deliveries that has a failed attempt to those attempts' errors."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(attempts.c.delivery_id, attempts.c.error).where(
                attempts.c.delivery_id.in_(list(delivery_ids)), attempts.c.outcome == "failed"
            )
            failed: dict[str, list[str]] = {}
            for delivery_id, error in connection.execute(query).all():
                failed.setdefault(delivery_id, []).append(error or "")
            return failed
    finally:
        engine.dispose()


def count_by_status(database_url: str) -> dict[str, int]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            return {status: int(count) for status, count in connection.execute(query).all()}
    finally:
        engine.dispose()
