"""Retention: expired events go with their finished deliveries and attempts; pending work stays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func, insert, select, update

from tests.scale.cluster import wait_until
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess
from wp_llm import catalog
from wp_llm.server import ids
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import attempts, deliveries, events
from wp_llm.server.store import accounts
from wp_llm.server.store import events as event_store
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.retention import claim_purge_run, purge_expired

EVENT_TYPE = "system.maintenance"


@dataclass
class Store:
    """A migrated database with one account and one webhook subscribed to every event."""

    engine: Engine
    account_id: str
    webhook_id: str

    def publish(self) -> tuple[str, str]:
        """Publish an event; return its id and the id of its one delivery."""
        published = event_store.publish(
            self.engine, self.account_id, EVENT_TYPE, catalog.EVENT_TYPES[EVENT_TYPE].example
        )
        return published.id, published.delivery_ids[0]

    def finish(self, delivery_id: str, status: str = "succeeded", attempt_count: int = 1) -> None:
        """Mark a delivery final and log its attempts, as a worker would."""
        now = ids.now_ms()
        rows = [
            {
                "id": ids.new_id(ids.ATTEMPT),
                "delivery_id": delivery_id,
                "webhook_id": self.webhook_id,
                "account_id": self.account_id,
                "attempted_at": now,
                "outcome": status,
                "status_code": 204,
                "latency_ms": 3,
            }
            for _ in range(attempt_count)
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(attempts), rows)
            connection.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status=status, attempt_count=attempt_count, next_attempt_at=None)
            )

    def count(self, table: object) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]

    def ids_of(self, column: object) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.execute(select(column)).scalars())  # type: ignore[call-overload]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = create_db_engine(database_url)
    migrate(engine)
    account_id = accounts.ensure_account(engine, "retention")
    box = SecretBox(Fernet.generate_key())
    webhook = webhook_store.create_webhook(
        engine,
        box,
        account_id=account_id,
        url="https://example.com/hook",
        events=["*"],
        description=None,
        secret="a-secret-of-enough-length",
    )
    yield Store(engine, account_id, str(webhook["id"]))
    engine.dispose()


def later_cutoff() -> int:
    """A cutoff just after now, so everything published so far counts as expired."""
    time.sleep(0.002)
    return ids.now_ms()


def test_purge_removes_expired_events_with_their_log(store: Store) -> None:
    published = [store.publish() for _ in range(3)]
    for _, delivery_id in published:
        store.finish(delivery_id, attempt_count=2)

    result = purge_expired(store.engine, cutoff_ms=later_cutoff())

    assert (result.events, result.deliveries, result.attempts) == (3, 3, 6)
    assert result.complete
    assert store.count(events) == 0
    assert store.count(deliveries) == 0
    assert store.count(attempts) == 0


def test_purge_keeps_events_with_pending_deliveries(store: Store) -> None:
    waiting_event, waiting_delivery = store.publish()
    done_event, done_delivery = store.publish()
    store.finish(done_delivery, status="failed")

    purge_expired(store.engine, cutoff_ms=later_cutoff())

    assert store.ids_of(events.c.id) == {waiting_event}
    assert store.ids_of(deliveries.c.id) == {waiting_delivery}


def test_purge_keeps_events_newer_than_cutoff(store: Store) -> None:
    _, old_delivery = store.publish()
    store.finish(old_delivery)
    cutoff = later_cutoff()
    time.sleep(0.002)
    new_event, new_delivery = store.publish()
    store.finish(new_delivery)

    purge_expired(store.engine, cutoff_ms=cutoff)

    assert store.ids_of(events.c.id) == {new_event}
    assert store.ids_of(deliveries.c.id) == {new_delivery}
    assert store.count(attempts) == 1


def test_purge_walks_past_events_with_pending_deliveries(store: Store) -> None:
    # The oldest events fill whole batches but cannot go; the purge must look beyond them.
    pending = {store.publish()[0] for _ in range(4)}
    for _ in range(3):
        store.finish(store.publish()[1])

    result = purge_expired(store.engine, cutoff_ms=later_cutoff(), batch_size=2)

    assert result.events == 3
    assert result.complete
    assert store.ids_of(events.c.id) == pending


def test_purge_stops_after_max_batches(store: Store) -> None:
    for _ in range(5):
        store.finish(store.publish()[1])

    result = purge_expired(store.engine, cutoff_ms=later_cutoff(), batch_size=2, max_batches=1)

    assert result.events == 2
    assert not result.complete
    assert store.count(events) == 3


def test_purge_claim_admits_one_caller_per_interval(store: Store) -> None:
    now = ids.now_ms()

    first = claim_purge_run(store.engine, now_ms=now, interval_ms=1000)
    too_soon = claim_purge_run(store.engine, now_ms=now + 999, interval_ms=1000)
    next_interval = claim_purge_run(store.engine, now_ms=now + 1000, interval_ms=1000)

    assert first
    assert not too_soon
    assert next_interval


def test_worker_purges_expired_events(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    failing = Receiver(default=Reply(status=500)).start()
    service = make_service(
        env={
            "WP_LLM_RETENTION": "2s",
            "WP_LLM_PURGE_INTERVAL": "0.5s",
            "WP_LLM_RETRY_SCHEDULE": "1h",
        }
    )
    key = service.create_key()
    body = catalog.EVENT_TYPES
    try:
        with service.client(key) as client:
            client.post(
                "/v1/webhooks", json={"url": receiver.url, "events": ["system.maintenance"]}
            )
            client.post("/v1/webhooks", json={"url": failing.url, "events": ["system.update"]})
            delivered = client.post(
                "/v1/events",
                json={"type": "system.maintenance", "data": body["system.maintenance"].example},
            )
            waiting = client.post(
                "/v1/events", json={"type": "system.update", "data": body["system.update"].example}
            )
            receiver.wait_for(1)
            failing.wait_for(1)
            early = client.get(f"/v1/events/{delivered.json()['id']}")
            gone_after = wait_until(
                lambda: client.get(f"/v1/events/{delivered.json()['id']}").status_code == 404,
                20,
                "the delivered event to be purged",
                interval=0.2,
            )
            waiting_response = client.get(f"/v1/events/{waiting.json()['id']}")
    finally:
        failing.stop()

    print(f"delivered event purged {gone_after:.1f}s after delivery")
    assert early.status_code == 200
    assert waiting_response.status_code == 200
