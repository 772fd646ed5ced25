"""`POST /v1/events/batch`: several events in one request, stored together or not at all."""

from __future__ import annotations

from typing import Any

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, deliveries_of
from tests.support.receiver import Receiver
from wp_llm import catalog


def event(event_type: str, **overrides: Any) -> dict[str, Any]:
    return {"type": event_type, "data": {**catalog.EVENT_TYPES[event_type].example, **overrides}}


def listed_event_ids(account: Account) -> list[str]:
    response = account.client.get("/v1/events", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def test_batch_stores_every_event_in_order(account: Account, receiver: Receiver) -> None:
    create_webhook(account.client, receiver.url, ["generation.*"])
    batch = [event("generation.completed"), event("analysis.completed"), event("generation.failed")]

    response = account.client.post("/v1/events/batch", json={"events": batch})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False
    assert [item["type"] for item in body["data"]] == [item["type"] for item in batch]
    assert [item["data"] for item in body["data"]] == [item["data"] for item in batch]
    assert set(listed_event_ids(account)) == {item["id"] for item in body["data"]}
    # Only the two generation events match the webhook.
    delivered = receiver.wait_for(2)
    assert sorted(request.headers["webhook-id"] for request in delivered) == sorted(
        item["id"] for item in body["data"] if item["type"].startswith("generation.")
    )
    assert deliveries_of(account.client, body["data"][1]["id"]) == []


def test_batch_envelopes_are_the_bytes_delivered(account: Account, receiver: Receiver) -> None:
    create_webhook(account.client, receiver.url)
    response = account.client.post(
        "/v1/events/batch", json={"events": [event("generation.completed")]}
    )
    assert response.status_code == 201, response.text
    [delivered] = receiver.wait_for(1)
    envelope = response.content.split(b'"data":[', 1)[1].rsplit(b'],"has_more"', 1)[0]
    assert delivered.body == envelope


def test_batch_with_one_invalid_event_stores_nothing(account: Account) -> None:
    before = listed_event_ids(account)
    batch = [event("generation.completed"), event("generation.completed", completion=42)]

    response = account.client.post("/v1/events/batch", json={"events": batch})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["details"]["field"] == "events[1].data.completion"
    assert listed_event_ids(account) == before


def test_batch_unknown_type_names_its_position(account: Account) -> None:
    batch = [event("generation.completed"), {"type": "generation.exploded", "data": {}}]
    response = account.client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "events[1].type"


def test_batch_unstorable_value_names_its_position(account: Account) -> None:
    batch = [event("generation.completed", model="nul\u0000byte")]
    response = account.client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "events[0].data.model"


def test_batch_nan_names_its_position(account: Account) -> None:
    content = b'{"events": [{"type": "system.update", "data": {"version": NaN}}]}'
    response = account.client.post(
        "/v1/events/batch", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "events[0].data.version"


def test_batch_size_is_bounded(account: Account) -> None:
    too_many = [event("generation.completed")] * 101
    for events in ([], too_many):
        response = account.client.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"]["field"] == "events"
