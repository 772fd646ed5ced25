"""Deliveries stored already leased to the publishing process's worker, on a real database."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.e2e.helpers import create_webhook, publish
from tests.engine.helpers import wait_until
from tests.engine.test_claim import LEASE_MS, add_webhook, claim, set_webhook
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess
from wp_llm import catalog
from wp_llm.server import ids
from wp_llm.server.db.schema import deliveries, webhooks
from wp_llm.server.engine.throttle import PREFETCH_WINDOWS
from wp_llm.server.store import accounts
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store

OWNER = "local-worker"


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


@pytest.fixture
def account_id(engine: Engine) -> str:
    return accounts.ensure_account(engine, "hand-off")


def hand_off(room: int, quotas: Mapping[str, int] | None = None) -> delivery_store.HandOff:
    return delivery_store.HandOff(
        owner=OWNER,
        lease_ms=LEASE_MS,
        room=room,
        quotas=quotas or {},
        default_quota=8,
        concurrency_factor=4,
    )


def insert(
    engine: Engine, account_id: str, offer: delivery_store.HandOff, count: int = 1
) -> list[event_store.PublishedEvent]:
    items = [("generation.completed", {"index": index}) for index in range(count)]
    with engine.begin() as connection:
        return event_store.insert_events(connection, account_id, items, offer)


def lease_owners(engine: Engine) -> dict[str, str | None]:
    query = select(deliveries.c.webhook_id, deliveries.c.lease_owner)
    with engine.connect() as connection:
        return {row.webhook_id: row.lease_owner for row in connection.execute(query)}


def test_hand_off_leases_within_room(engine: Engine, account_id: str) -> None:
    webhook_ids = [add_webhook(engine, account_id, ["*"]) for _ in range(3)]
    before = ids.now_ms()

    [published] = insert(engine, account_id, hand_off(room=2))
    after = ids.now_ms()

    assert len(published.delivery_ids) == 3
    leased_webhooks = {delivery.webhook_id for delivery in published.leased}
    assert len(leased_webhooks) == 2
    owners = lease_owners(engine)
    assert set(owners) == set(webhook_ids)
    assert {w for w, owner in owners.items() if owner == OWNER} == leased_webhooks
    with engine.connect() as connection:
        leases = list(
            connection.execute(
                select(deliveries.c.lease_until).where(deliveries.c.lease_owner == OWNER)
            ).scalars()
        )
    assert all(before + LEASE_MS <= until <= after + LEASE_MS for until in leases)
    # The third delivery is left to a claim; the leased ones are not claimable.
    [claimed] = claim(engine, owner="worker-b", default_quota=8)
    assert claimed.webhook_id not in leased_webhooks


def test_hand_off_carries_what_a_claim_carries(engine: Engine, account_id: str) -> None:
    webhook_id = add_webhook(engine, account_id, ["*"], timeout=4.0, retry_schedule=[1, 30])

    [published] = insert(engine, account_id, hand_off(room=10))

    [delivery] = published.leased
    with engine.connect() as connection:
        webhook = connection.execute(select(webhooks).where(webhooks.c.id == webhook_id)).one()
    assert delivery.id == published.delivery_ids[0]
    assert delivery.event_id == published.id
    assert delivery.account_id == account_id
    assert delivery.event_type == "generation.completed"
    assert delivery.attempt_count == 0
    assert delivery.body == published.body
    assert delivery.url == webhook.url
    assert delivery.secrets_json == webhook.secrets
    assert delivery.endpoint.timeout == 4.0
    assert delivery.endpoint.retry_schedule == (1, 30)
    assert not delivery.probe


def test_hand_off_skips_open_and_paused(engine: Engine, account_id: str) -> None:
    open_circuit = add_webhook(engine, account_id, ["*"])
    paused = add_webhook(engine, account_id, ["*"])
    ready = add_webhook(engine, account_id, ["*"])
    set_webhook(engine, open_circuit, circuit_state="open", circuit_retry_at=ids.now_ms() + 60_000)
    set_webhook(engine, paused, paused_until=ids.now_ms() + 60_000)

    [published] = insert(engine, account_id, hand_off(room=10))

    assert [delivery.webhook_id for delivery in published.leased] == [ready]
    assert lease_owners(engine) == {open_circuit: None, paused: None, ready: OWNER}


def test_hand_off_keeps_webhook_quota(engine: Engine, account_id: str) -> None:
    limited = add_webhook(engine, account_id, ["*"])
    other = add_webhook(engine, account_id, ["*"], max_concurrency=1)
    offer = hand_off(room=100, quotas={limited: 2})

    published = insert(engine, account_id, offer, count=6)

    leased = [delivery.webhook_id for event in published for delivery in event.leased]
    assert leased.count(limited) == 2
    # A webhook the worker does not track yet gets max_concurrency times the factor.
    assert leased.count(other) == 4
    assert offer.room == 100 - 6


@pytest.fixture
def one_process(make_service: object) -> ServiceProcess:
    return make_service()  # type: ignore[operator, no-any-return]


def metric_value(service: ServiceProcess, sample: str) -> float:
    """Return the value of one sample of /metrics, named with its labels."""
    with service.client() as client:
        metrics = client.get("/metrics").text
    for line in metrics.splitlines():
        if line.startswith(sample + " "):
            return float(line.removeprefix(sample + " "))
    raise AssertionError(f"{sample} is missing from /metrics")


def handed_off_total(service: ServiceProcess) -> float:
    return metric_value(service, "wp_llm_deliveries_handed_off_total")


def test_published_events_skip_the_claim(one_process: ServiceProcess, receiver: Receiver) -> None:
    key = one_process.create_key()
    before = handed_off_total(one_process)
    with one_process.client(key) as client:
        create_webhook(client, receiver.url)
        events = [publish(client, "generation.completed") for _ in range(5)]

    receiver.wait_for(5)

    assert {request.headers["webhook-id"] for request in receiver.requests} == {
        event["id"] for event in events
    }
    assert wait_until(lambda: handed_off_total(one_process) - before == 5)


def test_quota_leftovers_need_no_claim(engine: Engine, account_id: str) -> None:
    full = add_webhook(engine, account_id, ["*"])
    add_webhook(engine, account_id, ["*"])
    offer = hand_off(room=10, quotas={full: 0})

    [published] = insert(engine, account_id, offer)

    assert len(published.leased) == 1
    # A claim would skip the full webhook too, so waking the worker would gain nothing.
    assert not offer.leaves_claimable(len(published.delivery_ids))
    # Deliveries the hand-off never saw, such as usage notices, are worth a claim.
    assert offer.leaves_claimable(len(published.delivery_ids) + 1)


def test_room_leftovers_need_a_claim(engine: Engine, account_id: str) -> None:
    for _ in range(2):
        add_webhook(engine, account_id, ["*"])
    offer = hand_off(room=1)

    [published] = insert(engine, account_id, offer)

    assert len(published.leased) == 1
    assert offer.leaves_claimable(len(published.delivery_ids))


def test_withdrawn_hand_off_needs_a_claim() -> None:
    offer = hand_off(room=5)

    offer.withdraw()

    assert not offer.take("webhook", None)
    assert offer.leaves_claimable(0)


def claims_total(service: ServiceProcess, result: str) -> float:
    return metric_value(service, f'wp_llm_claims_total{{result="{result}"}}')


def test_hand_off_runs_no_empty_claims(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    # A long poll, so that only refills could start claims during the test.
    service = make_service(env={"WP_LLM_POLL_INTERVAL": "60s"})
    key = service.create_key()
    with service.client(key) as client:
        create_webhook(client, receiver.url)
        publish(client, "generation.completed")
        receiver.wait_for(1)
        empty_before = claims_total(service, "empty")
        for count in range(2, 22):
            publish(client, "generation.completed")
            receiver.wait_for(count)

    assert handed_off_total(service) == 21
    # Each delivery drained the queue and asked for a refill; none of those claimed.
    assert claims_total(service, "empty") == empty_before


def test_over_quota_deliveries_need_no_poll(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    # A long poll: only the refills of the one webhook can claim what the publish left.
    service = make_service(env={"WP_LLM_POLL_INTERVAL": "60s"})
    receiver.reply_with(*[Reply(delay=0.02)] * 30)
    with service.client(service.create_key()) as client:
        create_webhook(client, receiver.url, max_concurrency=1)
        data = dict(catalog.EVENT_TYPES["generation.completed"].example)
        events = [{"type": "generation.completed", "data": data} for _ in range(30)]
        response = client.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 201, response.text

    # The publish leased the webhook's claim quota; the rest waited for refills.
    receiver.wait_for(30, timeout=10)
    assert handed_off_total(service) == PREFETCH_WINDOWS
    assert claims_total(service, "found") >= (30 - PREFETCH_WINDOWS) / PREFETCH_WINDOWS


def test_max_concurrency_backlog_needs_no_poll(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    # The backlog is stored by a process without a worker, so the first claim of the
    # next process finds a webhook it has no quota for yet: max_concurrency sets it.
    api_only = make_service(args=["--no-worker"])
    key = api_only.create_key()
    with api_only.client(key) as client:
        create_webhook(client, receiver.url, max_concurrency=1)
        for _ in range(12):
            publish(client, "generation.completed")
    api_only.stop()

    make_service(env={"WP_LLM_POLL_INTERVAL": "60s"})

    receiver.wait_for(12, timeout=10)


def test_full_webhook_costs_no_claim_per_refill(tmp_path: Path, receiver: Receiver) -> None:
    # SQLite only: on PostgreSQL a publish announces what it left over a quota, for
    # other workers to claim, and this worker claims on its own announcements too.
    # One request at a time and four claimed at most for the slow webhook: its quota
    # is full after the first publishes, and stays full while its requests hang.
    service = ServiceProcess(
        database_url=f"sqlite:///{tmp_path / 'full-webhook.sqlite'}",
        data_dir=tmp_path,
        env={"WP_LLM_POLL_INTERVAL": "60s", "WP_LLM_SHUTDOWN_TIMEOUT": "1s"},
        args=[],
    ).start()
    slow = Receiver(default=Reply(delay=5.0)).start()
    try:
        with service.client(service.create_key()) as client:
            create_webhook(client, slow.url, max_concurrency=1)
            create_webhook(client, receiver.url)
            for count in range(1, 4):
                publish(client, "generation.completed")
                receiver.wait_for(count)
            empty_before = claims_total(service, "empty")
            for count in range(4, 19):
                publish(client, "generation.completed")
                receiver.wait_for(count)

        # Each delivery to the healthy webhook asked for a refill. A claim would have
        # skipped the slow webhook, so none ran.
        assert claims_total(service, "empty") - empty_before <= 1
    finally:
        slow.stop()
        service.stop()


def test_retry_due_under_steady_publishes(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    # Steady handed-off publishes ask for a refill more often than the poll interval;
    # the retry of the other webhook comes due only through the poll.
    service = make_service(env={"WP_LLM_POLL_INTERVAL": "0.5s"})
    failing_once = Receiver().start()
    failing_once.reply_with(Reply(status=500))
    try:
        with service.client(service.create_key()) as client:
            create_webhook(
                client, failing_once.url, events=["generation.failed"], retry_schedule=[0.2]
            )
            create_webhook(client, receiver.url, events=["generation.completed"])
            failed = publish(client, "generation.failed")
            failing_once.wait_for(1)
            give_up_at = time.monotonic() + 5.0
            while len(failing_once.requests) < 2 and time.monotonic() < give_up_at:
                publish(client, "generation.completed")
                time.sleep(0.05)
            steady = len(receiver.requests)

        assert len(failing_once.requests) == 2, f"no retry while {steady} events were delivered"
        assert {request.headers["webhook-id"] for request in failing_once.requests} == {
            failed["id"]
        }
    finally:
        failing_once.stop()
