"""Monthly event quotas through the real service: counting, notices, 429 and period reset."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from tests.support.receiver import Receiver
from tests.usage.conftest import (
    UsageAccount,
    UsageService,
    create_service_key,
    events_of,
    subscribe,
)
from wp_llm.server.db.schema import usage_periods
from wp_llm.server.store import usage as usage_store
from wp_llm.server.usage.quota import month_period

EVENT = {"type": "system.update", "data": {"message": "quota test"}}


def publish(client: httpx.Client, **extra: str) -> httpx.Response:
    return client.post("/v1/events", json={**EVENT, **extra})


def counted(service: UsageService, account_id: str) -> int:
    """Return the account's event count in the current period of the service's clock."""
    period = month_period(service.clock.now())
    query = select(usage_periods.c.event_count).where(
        usage_periods.c.account_id == account_id, usage_periods.c.period_start == period.start
    )
    with service.engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def notice_types(service: UsageService, account_id: str) -> list[str]:
    return [
        event["type"]
        for event in events_of(service.engine, account_id)
        if event["type"].startswith("usage.")
    ]


def test_quota_warns_once_per_threshold(
    make_account: Callable[..., UsageAccount], usage_service: UsageService, receiver: Receiver
) -> None:
    account = make_account(event_quota=10)
    subscribe(account, receiver.url, ["usage.*"])

    statuses = [publish(account.client).status_code for _ in range(13)]

    assert statuses == [201] * 10 + [429] * 3
    warnings = events_of(usage_service.engine, account.id, "usage.warning")
    assert [warning["data"]["threshold"] for warning in warnings] == [80, 90]
    assert [warning["data"]["current_usage"] for warning in warnings] == [8, 9]
    [exceeded] = events_of(usage_service.engine, account.id, "usage.quota_exceeded")
    assert exceeded["data"]["quota"] == 10
    assert exceeded["data"]["current_usage"] == 10


def test_quota_notices_reach_subscribed_webhook(
    make_account: Callable[..., UsageAccount], receiver: Receiver
) -> None:
    account = make_account(event_quota=2)
    subscribe(account, receiver.url, ["usage.*"])

    for _ in range(4):
        publish(account.client)

    delivered = receiver.wait_for(3)
    assert sorted(request.headers["x-wp-llm-event"] for request in delivered) == [
        "usage.quota_exceeded",
        "usage.warning",
        "usage.warning",
    ]
    time.sleep(1.0)
    assert len(receiver.requests) == 3


def test_quota_rejection_envelope(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=1)
    publish(account.client)

    response = publish(account.client)

    period = month_period(usage_service.clock.now())
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "quota_error"
    assert error["details"]["period_end"] == period.end
    retry_after = int(response.headers["Retry-After"])
    assert abs(retry_after - (period.end - usage_service.clock.now())) <= 5


def test_quota_notices_do_not_count(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=5)

    statuses = [publish(account.client).status_code for _ in range(5)]

    assert statuses == [201] * 5
    assert counted(usage_service, account.id) == 5
    # The 80% warning (4 events), and at 5 the 90% warning and the quota notice.
    assert len(notice_types(usage_service, account.id)) == 3


def test_quota_concurrent_publishers_never_overshoot(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=20)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = [
            response.status_code
            for response in pool.map(lambda _: publish(account.client), range(40))
        ]

    assert statuses.count(201) == 20
    assert statuses.count(429) == 20
    assert counted(usage_service, account.id) == 20
    assert sorted(notice_types(usage_service, account.id)) == [
        "usage.quota_exceeded",
        "usage.warning",
        "usage.warning",
    ]


def test_quota_resets_at_period_boundary(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=3)
    period = month_period(usage_service.clock.now())
    usage_service.clock.advance_to(period.end - 30)
    for _ in range(3):
        publish(account.client)

    rejected = publish(account.client)
    usage_service.clock.advance_to(period.end + 1)
    accepted = publish(account.client)

    assert rejected.status_code == 429
    assert int(rejected.headers["Retry-After"]) <= 30
    assert accepted.status_code == 201
    assert counted(usage_service, account.id) == 1
    assert month_period(usage_service.clock.now()).start == period.end


def test_quota_notices_again_in_next_period(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=1)
    publish(account.client)

    usage_service.clock.advance_to(month_period(usage_service.clock.now()).end + 1)
    publish(account.client)

    assert len(events_of(usage_service.engine, account.id, "usage.quota_exceeded")) == 2


def test_quota_unlimited_by_default_still_counts(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account()

    statuses = [publish(account.client).status_code for _ in range(3)]

    assert statuses == [201] * 3
    assert counted(usage_service, account.id) == 3
    assert notice_types(usage_service, account.id) == []


def test_quota_lowered_below_usage_notifies_once(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=100)
    for _ in range(5):
        publish(account.client)
    usage_store.set_account_limits(usage_service.engine, account.id, {"event_quota": 3})

    statuses = [publish(account.client).status_code for _ in range(3)]

    assert statuses == [429] * 3
    [exceeded] = events_of(usage_service.engine, account.id, "usage.quota_exceeded")
    assert exceeded["data"]["current_usage"] == 5


def test_quota_counts_service_key_publishes_for_target(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=2)
    key = create_service_key(usage_service.engine)

    with usage_service.process.client(key) as producer:
        statuses = [publish(producer, account=account.name).status_code for _ in range(3)]
    own_key = publish(account.client)

    assert statuses == [201, 201, 429]
    assert own_key.status_code == 429
    assert len(events_of(usage_service.engine, account.id, "usage.quota_exceeded")) == 1


def test_quota_notices_published_while_rate_limited(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    # Two requests empty the key's bucket and the quota at once; the notices still go out.
    account = make_account(event_quota=2, rate_limit=0.001, rate_limit_burst=2)

    statuses = [publish(account.client).status_code for _ in range(3)]

    assert statuses == [201, 201, 429]
    assert sorted(notice_types(usage_service, account.id)) == [
        "usage.limit_exceeded",
        "usage.quota_exceeded",
        "usage.warning",
        "usage.warning",
    ]


def publish_batch(client: httpx.Client, count: int) -> httpx.Response:
    return client.post("/v1/events/batch", json={"events": [EVENT] * count})


def test_batch_quota_counts_each_event(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=5)

    assert publish_batch(account.client, 3).status_code == 201
    rejected = publish_batch(account.client, 3)
    assert rejected.status_code == 429
    assert rejected.json()["error"]["type"] == "quota_error"
    assert counted(usage_service, account.id) == 3
    assert publish_batch(account.client, 2).status_code == 201

    assert counted(usage_service, account.id) == 5
    assert len(events_of(usage_service.engine, account.id, EVENT["type"])) == 5


def test_batch_over_quota_stores_nothing(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=2)

    assert publish_batch(account.client, 3).status_code == 429

    assert counted(usage_service, account.id) == 0
    assert events_of(usage_service.engine, account.id, EVENT["type"]) == []
