"""Platform service keys publish for any named account and manage nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.receiver import Receiver
from tests.usage.conftest import (
    UsageAccount,
    UsageService,
    create_service_key,
    events_of,
    subscribe,
)

EVENT = {
    "type": "generation.started",
    "data": {"id": "gen_1", "object": "text_generation", "created": 1, "model": "m", "prompt": "p"},
}
# The only account-scoped route a service key may use, and the public catalog.
SERVICE_ROUTES = {
    ("POST", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("GET", "/v1/event_types"),
}


@pytest.fixture
def producer(usage_service: UsageService) -> Iterator[httpx.Client]:
    with usage_service.process.client(create_service_key(usage_service.engine)) as client:
        yield client


@pytest.mark.parametrize("reference", ["id", "name"])
def test_service_key_publishes_to_named_account(
    make_account: Callable[..., UsageAccount],
    usage_service: UsageService,
    producer: httpx.Client,
    receiver: Receiver,
    reference: str,
) -> None:
    account = make_account()
    subscribe(account, receiver.url, ["generation.*"])

    response = producer.post("/v1/events", json={**EVENT, "account": getattr(account, reference)})

    assert response.status_code == 201, response.text
    [stored] = events_of(usage_service.engine, account.id)
    assert stored["id"] == response.json()["id"]
    [delivered] = receiver.wait_for(1)
    assert delivered.body == response.content


def test_service_key_publishes_batch_to_named_account(
    make_account: Callable[..., UsageAccount], usage_service: UsageService, producer: httpx.Client
) -> None:
    account = make_account()

    response = producer.post(
        "/v1/events/batch", json={"events": [EVENT] * 2, "account": account.id}
    )

    assert response.status_code == 201, response.text
    stored = events_of(usage_service.engine, account.id)
    assert sorted(event["id"] for event in stored) == sorted(
        item["id"] for item in response.json()["data"]
    )


def test_service_key_batch_without_account_is_rejected(producer: httpx.Client) -> None:
    response = producer.post("/v1/events/batch", json={"events": [EVENT]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "account_required"


def test_account_key_batch_cannot_name_other_account(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    publisher, victim = make_account(), make_account()

    response = publisher.client.post(
        "/v1/events/batch", json={"events": [EVENT], "account": victim.id}
    )

    assert response.status_code == 403
    assert events_of(usage_service.engine, victim.id) == []


def test_service_key_event_reaches_only_named_account(
    make_account: Callable[..., UsageAccount], usage_service: UsageService, producer: httpx.Client
) -> None:
    named, other = make_account(), make_account()
    named_receiver, other_receiver = Receiver().start(), Receiver().start()
    try:
        subscribe(named, named_receiver.url, ["*"])
        subscribe(other, other_receiver.url, ["*"])

        producer.post("/v1/events", json={**EVENT, "account": named.id})

        named_receiver.wait_for(1)
        time.sleep(1.0)
        assert other_receiver.requests == []
        assert events_of(usage_service.engine, other.id) == []
    finally:
        named_receiver.stop()
        other_receiver.stop()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (EVENT, "account_required"),
        ({**EVENT, "account": "acct_does_not_exist"}, "account_not_found"),
        ({**EVENT, "account": ""}, "account_required"),
    ],
)
def test_service_key_publish_rejects_missing_account(
    producer: httpx.Client, body: dict[str, object], code: str
) -> None:
    response = producer.post("/v1/events", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["details"]["field"] == "account"


@pytest.mark.parametrize("reference", ["id", "name"])
def test_account_key_cannot_publish_to_other_account(
    make_account: Callable[..., UsageAccount], usage_service: UsageService, reference: str
) -> None:
    publisher, victim = make_account(), make_account()

    response = publisher.client.post(
        "/v1/events", json={**EVENT, "account": getattr(victim, reference)}
    )

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "authorization_error"
    assert events_of(usage_service.engine, victim.id) == []


@pytest.mark.parametrize("reference", ["id", "name"])
def test_account_key_may_name_own_account(
    make_account: Callable[..., UsageAccount], reference: str
) -> None:
    account = make_account()

    response = account.client.post(
        "/v1/events", json={**EVENT, "account": getattr(account, reference)}
    )

    assert response.status_code == 201, response.text


def account_routes(client: httpx.Client) -> list[tuple[str, str]]:
    """Every documented /v1 route, with placeholder ids, except those service keys may use."""
    document = client.get("/openapi.json").json()
    routes = []
    for path, operations in document["paths"].items():
        for method in operations:
            if path.startswith("/v1/") and (method.upper(), path) not in SERVICE_ROUTES:
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "x_missing", path)))
    return routes


def test_service_key_refused_on_account_routes(
    usage_service: UsageService, producer: httpx.Client
) -> None:
    routes = account_routes(producer)
    answers = {route: producer.request(route[0], route[1], json={}) for route in routes}

    assert ("GET", "/v1/webhooks") in routes
    assert ("GET", "/v1/deliveries") in routes
    assert ("GET", "/v1/events") in routes
    for (method, path), response in answers.items():
        assert response.status_code == 403, f"{method} {path} answered {response.status_code}"
        assert response.json()["error"]["type"] == "authorization_error", f"{method} {path}"
