"""Small steps that many end-to-end tests share."""

from __future__ import annotations

import time
from typing import Any

import httpx

from wp_llm import catalog

FINAL_STATUSES = {"succeeded", "failed", "cancelled"}
ENVELOPE_FIELDS = {"type", "code", "message", "details", "request_id", "timestamp"}


def assert_error(
    response: httpx.Response, status: int, error_type: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ENVELOPE_FIELDS
    assert error["type"] == error_type
    assert error["request_id"] == response.headers["x-request-id"]
    if field is not None:
        assert error["details"]["field"] == field
    return dict(error)


def create_webhook(
    client: httpx.Client, url: str, events: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": events or ["*"], **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def publish(
    client: httpx.Client, event_type: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    payload = catalog.EVENT_TYPES[event_type].example if data is None else data
    response = client.post("/v1/events", json={"type": event_type, "data": payload})
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries_of(client: httpx.Client, event_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/deliveries", params={"event_id": event_id, "limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def wait_for_delivery(
    client: httpx.Client, event_id: str, statuses: set[str] = FINAL_STATUSES, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll until the event's single delivery reaches one of `statuses`; return it with attempts."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = deliveries_of(client, event_id)
        if found:
            last = client.get(f"/v1/deliveries/{found[0]['id']}").json()
            if last["status"] in statuses:
                return last
        time.sleep(0.1)
    raise AssertionError(f"delivery of {event_id} did not reach {statuses} in {timeout}s: {last}")
