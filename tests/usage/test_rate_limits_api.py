"""Rate limits through the real service: headers, 429 responses and usage.limit_exceeded notices."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import drop_database_url, new_database_url
from tests.support.receiver import Receiver
from tests.usage.conftest import (
    UsageAccount,
    UsageService,
    create_service_key,
    events_of,
    new_account,
    start_usage_service,
    subscribe,
)

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# Refills one token per 1000 s: within a test, a drained bucket stays empty.
NO_REFILL = 0.001
EVENT = {"type": "system.update", "data": {"message": "rate limit test"}}


def send_concurrently(client: httpx.Client, count: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda _: client.get("/v1/webhooks"), range(count)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/events"),
        # Error responses to authenticated requests carry the headers too.
        ("GET", "/v1/webhooks/webhook_missing"),
        ("GET", "/v1/deliveries/dlv_missing"),
    ],
)
def test_rate_limit_headers_on_authenticated_responses(
    make_account: Callable[..., UsageAccount], method: str, path: str
) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=5)

    response = account.client.request(method, path, json=EVENT if method == "POST" else None)

    for name in RATE_HEADERS:
        assert name in response.headers, (
            f"{name} missing from {method} {path} ({response.status_code})"
        )
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_rate_limit_headers_absent_without_authentication(usage_service: UsageService) -> None:
    with usage_service.process.client() as client:
        response = client.get("/v1/webhooks")

    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response.headers


def test_rate_limit_remaining_counts_down(make_account: Callable[..., UsageAccount]) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=3)

    remaining = [
        account.client.get("/v1/webhooks").headers["X-RateLimit-Remaining"] for _ in range(3)
    ]

    assert remaining == ["2", "1", "0"]


def test_rate_limit_rejects_with_envelope(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=2)
    for _ in range(2):
        account.client.get("/v1/webhooks")

    response = account.client.get("/v1/webhooks")

    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["Retry-After"]) >= 999
    reset = int(response.headers["X-RateLimit-Reset"])
    assert reset >= usage_service.clock.now() + 1999


def test_rate_limit_is_per_key(make_account: Callable[..., UsageAccount]) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=1)
    account.client.get("/v1/webhooks")

    throttled = account.client.get("/v1/webhooks")
    other_key = account.setup.get("/v1/webhooks")

    assert throttled.status_code == 429
    assert other_key.status_code == 200


def test_rate_limit_notice_once_under_concurrent_requests(
    make_account: Callable[..., UsageAccount], usage_service: UsageService, receiver: Receiver
) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=3)
    subscribe(account, receiver.url, ["usage.*"])

    responses = send_concurrently(account.client, 40)

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 3
    assert statuses.count(429) == 37
    [notice] = events_of(usage_service.engine, account.id, "usage.limit_exceeded")
    assert notice["data"]["limit"] == 3
    assert notice["data"]["current_usage"] == 4
    assert notice["data"]["retry_after"] >= 999
    [delivered] = receiver.wait_for(1)
    assert delivered.headers["x-wp-llm-event"] == "usage.limit_exceeded"
    time.sleep(1.0)
    assert len(receiver.requests) == 1


def test_rate_limit_notice_again_in_next_window(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=1)
    for _ in range(5):
        account.client.get("/v1/webhooks")

    # Past the bucket's reset (1000 s) and the notice interval (1 h): a new window opens.
    usage_service.clock.advance(3601)
    account.client.get("/v1/webhooks")
    for _ in range(5):
        account.client.get("/v1/webhooks")

    assert len(events_of(usage_service.engine, account.id, "usage.limit_exceeded")) == 2


def test_rate_limit_refills_when_clock_moves(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(rate_limit=NO_REFILL, rate_limit_burst=1)
    account.client.get("/v1/webhooks")
    assert account.client.get("/v1/webhooks").status_code == 429

    usage_service.clock.advance(1001)

    assert account.client.get("/v1/webhooks").status_code == 200


def test_rate_limit_service_key_own_bucket(
    backend: str, tmp_path: Path, receiver: Receiver
) -> None:
    url = new_database_url(backend, tmp_path)
    service = start_usage_service(
        tmp_path,
        url,
        {"WP_LLM_SERVICE_RATE_LIMIT": str(NO_REFILL), "WP_LLM_SERVICE_RATE_LIMIT_BURST": "2"},
    )
    try:
        target = new_account(service)
        subscribe(target, receiver.url, ["*"])
        key = create_service_key(service.engine)
        body = {**EVENT, "account": target.id}
        with service.process.client(key) as producer:
            statuses = [producer.post("/v1/events", json=body).status_code for _ in range(4)]
        account_key_status = target.client.get("/v1/webhooks").status_code

        assert statuses == [201, 201, 429, 429]
        assert account_key_status == 200
        # The producer's bucket is not the account's: the account gets no notice.
        assert events_of(service.engine, target.id, "usage.limit_exceeded") == []
    finally:
        service.process.stop()
        service.engine.dispose()
        drop_database_url(url)


def test_rate_limit_holds_across_api_processes(backend: str, tmp_path: Path) -> None:
    url = new_database_url(backend, tmp_path)
    # Two API processes on one database must share each key's bucket.
    extra = {
        "WP_LLM_RATE_LIMIT": str(NO_REFILL),
        "WP_LLM_RATE_LIMIT_BURST": "10",
        "WP_LLM_RATE_LIMIT_STORE": "database",
    }
    first = start_usage_service(tmp_path, url, extra)
    second = start_usage_service(tmp_path, url, extra)
    try:
        account = new_account(first)
        clients = [account.client, second.process.client(account.key)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = pool.map(lambda i: clients[i % 2].get("/v1/webhooks"), range(40))
            statuses = [response.status_code for response in responses]
        clients[1].close()

        assert statuses.count(200) == 10
        assert len(events_of(first.engine, account.id, "usage.limit_exceeded")) == 1
    finally:
        for service in (first, second):
            service.process.stop()
            service.engine.dispose()
        drop_database_url(url)
