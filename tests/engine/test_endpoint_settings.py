"""Per-endpoint delivery settings: set through the API within the operator's caps, then obeyed.

The shared test service keeps the default caps: timeout 30 s, 64 concurrent deliveries,
1000 deliveries per second, 20 retries of at most one day each and seven days in total.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.engine.helpers import wait_until, webhook_of
from tests.engine.servers import ScriptedReceiver, answer
from wp_llm import catalog

URL = "https://example.com/hook"
SETTINGS: dict[str, Any] = {
    "rate_limit": 2.5,
    "max_concurrency": 3,
    "timeout": 4.5,
    "retry_schedule": [1, 60, 600],
}


def test_settings_are_stored_and_shown(account: Account) -> None:
    created = create_webhook(account.client, URL, **SETTINGS)
    shown = webhook_of(account.client, created["id"])
    for name, value in SETTINGS.items():
        assert created[name] == value
        assert shown[name] == value


def test_settings_default_to_null(account: Account) -> None:
    created = create_webhook(account.client, URL)
    for name in SETTINGS:
        assert created[name] is None


def test_update_changes_and_resets_settings(account: Account) -> None:
    created = create_webhook(account.client, URL, **SETTINGS)
    changed = account.client.post(
        f"/v1/webhooks/{created['id']}", json={"timeout": 9, "rate_limit": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["timeout"] == 9
    assert changed.json()["rate_limit"] is None
    assert changed.json()["max_concurrency"] == 3


@pytest.mark.parametrize(
    ("fields", "field", "maximum", "variable"),
    [
        ({"timeout": 31}, "timeout", 30, "WP_LLM_MAX_ENDPOINT_TIMEOUT"),
        ({"max_concurrency": 65}, "max_concurrency", 64, "WP_LLM_MAX_ENDPOINT_CONCURRENCY"),
        ({"rate_limit": 1000.5}, "rate_limit", 1000, "WP_LLM_MAX_ENDPOINT_RATE_LIMIT"),
        ({"retry_schedule": [1] * 21}, "retry_schedule", 20, "WP_LLM_MAX_RETRY_ATTEMPTS"),
        ({"retry_schedule": [1, 86401]}, "retry_schedule[1]", 86400, "WP_LLM_MAX_RETRY_DELAY"),
        ({"retry_schedule": [86400] * 8}, "retry_schedule", 604800, "WP_LLM_MAX_RETRY_WINDOW"),
    ],
)
def test_setting_above_cap_is_rejected(
    account: Account, fields: dict[str, Any], field: str, maximum: float, variable: str
) -> None:
    for response in (
        account.client.post("/v1/webhooks", json={"url": URL, "events": ["*"], **fields}),
        account.client.post(
            f"/v1/webhooks/{create_webhook(account.client, URL)['id']}", json=fields
        ),
    ):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert error["details"]["field"] == field
        assert error["details"]["maximum"] == maximum
        assert f"{maximum:g}" in error["message"]
        assert variable in error["message"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"retry_schedule": [1, -2]}, "retry_schedule[1]"),
        ({"retry_schedule": "5s,1m"}, "retry_schedule"),
    ],
)
def test_setting_out_of_range_is_rejected(
    account: Account, fields: dict[str, Any], field: str
) -> None:
    response = account.client.post("/v1/webhooks", json={"url": URL, "events": ["*"], **fields})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field


def test_endpoint_timeout_applies(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(204, delay=1.5))
    create_webhook(account.client, receiver.url, timeout=0.4, retry_schedule=[])
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["error"] == "timed out after 0.4s"


def test_endpoint_retry_schedule_applies(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(500))
    create_webhook(account.client, receiver.url, retry_schedule=[0.2, 0.4])
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    times = [request.received_at for request in receiver.requests]
    assert delivery["status"] == "failed"
    assert delivery["attempt_count"] == 3
    assert times[1] - times[0] == pytest.approx(0.2, abs=0.15)
    assert times[2] - times[1] == pytest.approx(0.4, abs=0.15)


def test_empty_retry_schedule_means_one_attempt(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(500))
    create_webhook(account.client, receiver.url, retry_schedule=[])
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempt_count"] == 1
    assert len(receiver.requests) == 1


def test_max_concurrency_bounds_open_requests(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(204, delay=0.3))
    create_webhook(account.client, receiver.url, max_concurrency=2)
    for _ in range(8):
        publish(account.client, "generation.completed")
    receiver.wait_for(8, timeout=20)
    assert receiver.max_in_flight == 2


def test_rate_limit_spaces_deliveries(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted()
    create_webhook(account.client, receiver.url, rate_limit=5)
    for _ in range(10):
        publish(account.client, "generation.completed")
    requests = receiver.wait_for(10, timeout=20)
    times = sorted(request.received_at for request in requests)
    # The bucket contains one second of the rate: five at once, then one every 0.2 s.
    assert times[-1] - times[0] >= 0.8
    assert times[9] - times[5] >= 0.6


def test_update_takes_effect_on_next_claim(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(204, delay=0.3))
    webhook = create_webhook(account.client, receiver.url)
    account.client.post(f"/v1/webhooks/{webhook['id']}", json={"max_concurrency": 1})
    for _ in range(4):
        publish(account.client, "generation.completed")
    wait_until(lambda: len(receiver.requests) >= 4)
    assert receiver.max_in_flight == 1


def test_rate_limit_paces_without_polling(
    make_service: Callable[..., Any], scripted: Callable[..., ScriptedReceiver]
) -> None:
    # A poll far longer than the test: only the rate limit's own timing may start deliveries.
    service = make_service(env={"WP_LLM_POLL_INTERVAL": "60s"})
    receiver = scripted()
    with service.client(service.create_key()) as client:
        # The window fills before the bucket empties, so the rate blocks while none are open.
        create_webhook(client, receiver.url, rate_limit=5, max_concurrency=2)
        data = dict(catalog.EVENT_TYPES["generation.completed"].example)
        events = [{"type": "generation.completed", "data": data} for _ in range(10)]
        response = client.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 201, response.text

    requests = receiver.wait_for(10, timeout=10)

    times = sorted(request.received_at for request in requests)
    # The bucket has five tokens, then one more may start every 0.2 s: about a second in all.
    assert 0.8 <= times[-1] - times[0] < 5
