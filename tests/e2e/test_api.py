"""The management API: shapes, pagination, account isolation and subscriptions."""

from __future__ import annotations

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, deliveries_of, publish, wait_for_delivery
from tests.support.receiver import Receiver, Reply
from wp_llm import catalog


def test_webhook_lifecycle(account: Account, receiver: Receiver) -> None:
    created = create_webhook(account.client, receiver.url, ["generation.*"], description="staging")
    assert created["id"].startswith("webhook_")
    assert created["object"] == "webhook"
    assert created["status"] == "enabled"

    patched = account.client.patch(
        f"/v1/webhooks/{created['id']}", json={"events": ["*"], "enabled": False}
    )
    assert patched.json()["events"] == ["*"]
    assert patched.json()["status"] == "disabled"
    posted = account.client.post(f"/v1/webhooks/{created['id']}", json={"description": "prod"})
    assert posted.json()["description"] == "prod"

    fetched = account.client.get(f"/v1/webhooks/{created['id']}").json()
    assert fetched["description"] == "prod"
    assert account.client.delete(f"/v1/webhooks/{created['id']}").status_code == 200
    assert account.client.get(f"/v1/webhooks/{created['id']}").status_code == 404


def test_webhooks_paginate_newest_first(account: Account, receiver: Receiver) -> None:
    ids = [create_webhook(account.client, receiver.url)["id"] for _ in range(5)]
    first = account.client.get("/v1/webhooks", params={"limit": 2}).json()
    assert first["object"] == "list"
    assert [w["id"] for w in first["data"]] == ids[:-3:-1]
    assert first["has_more"] is True
    rest = account.client.get(
        "/v1/webhooks", params={"limit": 10, "starting_after": first["data"][-1]["id"]}
    ).json()
    assert [w["id"] for w in rest["data"]] == ids[2::-1]
    assert rest["has_more"] is False
    back = account.client.get(
        "/v1/webhooks", params={"limit": 2, "ending_before": rest["data"][0]["id"]}
    ).json()
    assert [w["id"] for w in back["data"]] == ids[:-3:-1]


def test_accounts_see_only_their_own_objects(account: Account, receiver: Receiver) -> None:
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    other_key = account.service.create_key()
    with account.service.client(other_key) as other:
        assert other.get(f"/v1/webhooks/{webhook['id']}").status_code == 404
        assert (
            other.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": False}).status_code == 404
        )
        assert other.delete(f"/v1/webhooks/{webhook['id']}").status_code == 404
        assert other.get(f"/v1/events/{event['id']}").status_code == 404
        assert other.get(f"/v1/deliveries/{delivery['id']}").status_code == 404
        assert other.post(f"/v1/deliveries/{delivery['id']}/retry").status_code == 404
        assert other.get("/v1/webhooks").json()["data"] == []
        assert other.get("/v1/events").json()["data"] == []
        assert other.get("/v1/deliveries").json()["data"] == []


def test_subscriptions_match_exact_prefix_and_star(account: Account) -> None:
    receivers = {
        pattern: Receiver().start()
        for pattern in ("generation.completed", "generation.*", "*", "model.*")
    }
    try:
        for pattern, server in receivers.items():
            create_webhook(account.client, server.url, [pattern])
        event = publish(account.client, "generation.completed")
        targets = {d["webhook_id"] for d in deliveries_of(account.client, event["id"])}
        assert len(targets) == 3
        for pattern in ("generation.completed", "generation.*", "*"):
            assert receivers[pattern].wait_for(1)[0].headers["webhook-id"] == event["id"]
        assert receivers["model.*"].requests == []
    finally:
        for server in receivers.values():
            server.stop()


def test_disabled_webhook_gets_no_deliveries(account: Account, receiver: Receiver) -> None:
    create_webhook(account.client, receiver.url, enabled=False)
    event = publish(account.client, "generation.completed")
    assert deliveries_of(account.client, event["id"]) == []


def test_events_read_back_as_published(account: Account) -> None:
    event = publish(account.client, "usage.limit_exceeded")
    assert account.client.get(f"/v1/events/{event['id']}").json() == event
    listed = account.client.get("/v1/events", params={"type": "usage.limit_exceeded"}).json()
    assert [e["id"] for e in listed["data"]] == [event["id"]]


def test_event_types_catalog_is_served(account: Account) -> None:
    listed = account.client.get("/v1/event_types").json()
    types = [entry["type"] for entry in listed["data"]]
    assert types == list(catalog.EVENT_TYPES)
    for entry in listed["data"]:
        assert entry["schema"]["type"] == "object"
        assert isinstance(entry["example"], dict)


def test_test_endpoint_reports_success(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(200, body=b'{"ok":true}'))
    webhook = create_webhook(account.client, receiver.url)
    minimal = {"id": "test_123", "prompt": "Test prompt", "completion": "Test completion"}
    result = account.client.post(
        f"/v1/webhooks/{webhook['id']}/test", json={"type": "generation.completed", "data": minimal}
    ).json()
    assert result["success"] is True
    assert result["status_code"] == 200
    assert result["response_body"] == '{"ok":true}'
    assert result["latency_ms"] >= 0
    assert receiver.wait_for(1)[0].headers["x-wp-llm-event"] == "generation.completed"
    sent = result["event"]["data"]
    assert {key: sent[key] for key in minimal} == minimal
    assert sent["usage"] == catalog.EVENT_TYPES["generation.completed"].example["usage"]


def test_test_endpoint_reports_failure(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(500, body=b"boom"))
    webhook = create_webhook(account.client, receiver.url)
    result = account.client.post(
        f"/v1/webhooks/{webhook['id']}/test", json={"type": "analysis.completed"}
    ).json()
    assert result["success"] is False
    assert result["status_code"] == 500
    assert result["response_body"] == "boom"
    assert result["error"] == "endpoint answered 500"


def test_openapi_document_is_served(account: Account) -> None:
    document = account.client.get("/openapi.json").json()
    assert "/v1/webhooks" in document["paths"]
    assert "/v1/events" in document["paths"]


def test_openapi_lists_error_envelope(account: Account) -> None:
    document = account.client.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}

    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "4XX", "5XX"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == envelope, f"{method} {path} {status}"
            # FastAPI's own validation error body, which the API never sends.
            assert "422" not in responses, f"{method} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]
