"""Replay: requeue a webhook's past deliveries by time, type and status, or only count them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.engine.helpers import deliveries_of_webhook, wait_until
from tests.engine.servers import ScriptedReceiver, answer


def replay(client: httpx.Client, webhook_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/webhooks/{webhook_id}/replay", json=body)


def failed_history(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> tuple[ScriptedReceiver, dict[str, Any], list[dict[str, Any]]]:
    """A webhook whose three generation and two analysis deliveries failed for good."""
    receiver = scripted(answer(500))
    webhook = create_webhook(account.client, receiver.url, retry_schedule=[])
    types = ["generation.completed"] * 3 + ["analysis.completed"] * 2
    events = [publish(account.client, event_type) for event_type in types]
    for event in events:
        assert wait_for_delivery(account.client, event["id"])["status"] == "failed"
    receiver.handler = answer(204)
    return receiver, webhook, events


def test_dry_run_counts_without_sending(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver, webhook, _ = failed_history(account, scripted)
    response = replay(account.client, webhook["id"], since=0, dry_run=True)
    time.sleep(0.5)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "webhook_replay",
        "webhook_id": webhook["id"],
        "dry_run": True,
        "count": 5,
    }
    assert len(receiver.requests) == 5


def test_replay_by_event_type(account: Account, scripted: Callable[..., ScriptedReceiver]) -> None:
    receiver, webhook, events = failed_history(account, scripted)
    count = replay(account.client, webhook["id"], since=0, event_types=["analysis.*"]).json()[
        "count"
    ]
    requests = receiver.wait_for(7)
    delivered = [wait_for_delivery(account.client, event["id"]) for event in events]

    assert count == 2
    assert {r.headers["x-wp-llm-event"] for r in requests[5:]} == {"analysis.completed"}
    assert [d["status"] for d in delivered] == ["failed"] * 3 + ["succeeded"] * 2
    assert delivered[3]["attempt_count"] == 2


def test_replay_by_status(account: Account, scripted: Callable[..., ScriptedReceiver]) -> None:
    receiver, webhook, events = failed_history(account, scripted)
    assert replay(account.client, webhook["id"], since=0).json()["count"] == 5
    receiver.wait_for(10)
    wait_until(
        lambda: all(
            d["status"] == "succeeded" for d in deliveries_of_webhook(account.client, webhook["id"])
        )
    )

    assert replay(account.client, webhook["id"], since=0, dry_run=True).json()["count"] == 0
    succeeded = replay(account.client, webhook["id"], since=0, status=["succeeded"], dry_run=True)
    assert succeeded.json()["count"] == 5


def test_replay_by_time_window(account: Account, scripted: Callable[..., ScriptedReceiver]) -> None:
    _, webhook, _ = failed_history(account, scripted)
    now = int(time.time())
    future = replay(account.client, webhook["id"], since=now + 60, until=now + 120, dry_run=True)
    assert future.json()["count"] == 0
    assert (
        replay(account.client, webhook["id"], since=0, until=now - 3600, dry_run=True).json()[
            "count"
        ]
        == 0
    )
    assert (
        replay(account.client, webhook["id"], since=now - 3600, dry_run=True).json()["count"] == 5
    )


def test_replay_leaves_in_flight_alone(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(204, delay=1.5))
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    receiver.wait_for(1)

    counted = replay(account.client, webhook["id"], since=0, status=["pending"], dry_run=True)
    delivered = wait_for_delivery(account.client, event["id"])
    assert counted.json()["count"] == 0
    assert delivered["attempt_count"] == 1


def test_replay_makes_waiting_retry_due(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted(answer(500))
    webhook = create_webhook(account.client, receiver.url, retry_schedule=[3600])
    event = publish(account.client, "generation.completed")
    receiver.wait_for(1)
    wait_until(
        lambda: (
            wait_for_delivery(account.client, event["id"], statuses={"pending"})["attempt_count"]
            == 1
        )
    )
    receiver.handler = answer(204)

    count = replay(account.client, webhook["id"], since=0, status=["pending"]).json()["count"]
    delivered = wait_for_delivery(account.client, event["id"], timeout=10)
    assert count == 1
    assert delivered["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": 100, "until": 100}, "until"),
        ({"since": 0, "event_types": ["no.such.type"]}, "event_types[0]"),
        ({"since": 0, "status": ["cancelled"]}, "status[0]"),
        ({"since": 0, "status": []}, "status"),
        ({"since": -5}, "since"),
    ],
)
def test_replay_rejects_bad_request(account: Account, body: dict[str, Any], field: str) -> None:
    webhook = create_webhook(account.client, "https://example.com/hook")
    response = replay(account.client, webhook["id"], **body)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field


def test_replay_of_unknown_webhook_is_not_found(account: Account) -> None:
    response = replay(account.client, "webhook_01NOTAREALWEBHOOKID0000000", since=0)
    assert response.status_code == 404
