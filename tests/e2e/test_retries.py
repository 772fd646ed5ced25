"""Retries: the schedule, timeouts, Retry-After, 410 Gone, exhaustion and manual redelivery.

The test service retries after 0.5 s, 1 s and 2 s with no jitter, and times out after 2 s.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.support.receiver import Receiver, Reply

# Leeway for scheduling on a busy 2-core machine: the poll interval, the flush and the claim.
EARLY_SECONDS = 0.05
LATE_SECONDS = 1.5


def gaps(receiver: Receiver, count: int) -> list[float]:
    requests = receiver.wait_for(count, timeout=30)
    return [b.received_at - a.received_at for a, b in zip(requests, requests[1:], strict=False)]


def test_server_errors_follow_the_schedule(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(500), Reply(502))
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    first, second = gaps(receiver, 3)
    assert 0.5 - EARLY_SECONDS <= first <= 0.5 + LATE_SECONDS
    assert 1.0 - EARLY_SECONDS <= second <= 1.0 + LATE_SECONDS
    delivery = wait_for_delivery(account.client, event["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 3
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 502, 204]
    assert [a["outcome"] for a in delivery["attempts"]] == ["failed", "failed", "succeeded"]


def test_nul_in_response_body_is_stored(account: Account, receiver: Receiver) -> None:
    # PostgreSQL text cannot hold NUL: the stored body gets U+FFFD in its place, and the
    # attempt is recorded like any other.
    receiver.reply_with(Reply(500, body=b"bad\x00body"))
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"], timeout=30)
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 204]
    assert delivery["attempts"][0]["response_body"] == "bad\ufffdbody"


def test_timeout_is_recorded_and_retried(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(204, delay=3.0))
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"], timeout=30)
    first, second = delivery["attempts"]
    assert first["status_code"] is None
    assert "timed out" in first["error"]
    assert second["status_code"] == 204


def test_retry_after_lengthens_the_delay(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(503, headers={"Retry-After": "2"}))
    create_webhook(account.client, receiver.url)
    publish(account.client, "generation.completed")
    [gap] = gaps(receiver, 2)
    assert gap >= 2.0 - EARLY_SECONDS


def test_retry_after_is_capped(make_service, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(env={"WP_LLM_RETRY_AFTER_CAP": "1s"})
    with service.client(service.create_key()) as client:
        receiver.reply_with(Reply(429, headers={"Retry-After": "3600"}))
        create_webhook(client, receiver.url)
        publish(client, "generation.completed")
        [gap] = gaps(receiver, 2)
    assert gap <= 1.0 + LATE_SECONDS


def test_gone_disables_the_webhook(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(410))
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempt_count"] == 1
    updated = account.client.get(f"/v1/webhooks/{webhook['id']}").json()
    assert updated["enabled"] is False
    assert "410" in updated["disabled_reason"]
    later = publish(account.client, "generation.completed")
    assert (
        account.client.get("/v1/deliveries", params={"event_id": later["id"]}).json()["data"] == []
    )


def test_exhausted_schedule_fails_the_delivery(account: Account, receiver: Receiver) -> None:
    receiver.default = Reply(500, body=b"x" * 10_000)
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"], timeout=30)
    assert delivery["status"] == "failed"
    assert delivery["attempt_count"] == 4
    assert delivery["next_attempt_at"] is None
    last = delivery["attempts"][-1]
    assert last["response_truncated"] is True
    assert len(last["response_body"]) == 4096


def test_manual_retry_redelivers_now(account: Account, receiver: Receiver) -> None:
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    response = account.client.post(f"/v1/deliveries/{delivery['id']}/retry")
    assert response.status_code == 202
    second, _ = receiver.wait_for(2)[1], None
    assert second.headers["x-wp-llm-delivery"] == delivery["id"]
    assert wait_for_delivery(account.client, event["id"])["attempt_count"] == 2


def test_deleting_a_webhook_cancels_its_pending_deliveries(
    account: Account, receiver: Receiver
) -> None:
    receiver.default = Reply(500)
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    receiver.wait_for(1)
    assert account.client.delete(f"/v1/webhooks/{webhook['id']}").json()["deleted"] is True
    delivery = wait_for_delivery(account.client, event["id"], statuses={"cancelled"})
    assert delivery["next_attempt_at"] is None
    retried = account.client.post(f"/v1/deliveries/{delivery['id']}/retry")
    assert retried.status_code == 409


def test_retry_refused_after_webhook_deletion(account: Account, receiver: Receiver) -> None:
    """A finished delivery stays in the log, but has no endpoint left to go to."""
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    assert delivery["status"] == "succeeded"
    account.client.delete(f"/v1/webhooks/{webhook['id']}")

    retried = account.client.post(f"/v1/deliveries/{delivery['id']}/retry")

    assert retried.status_code == 409
    assert retried.json()["error"]["code"] == "webhook_deleted"
    after = wait_for_delivery(account.client, event["id"])
    assert after["status"] == "succeeded"
    assert after["attempt_count"] == 1


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirect_is_a_failure(account: Account, receiver: Receiver, status: int) -> None:
    receiver.reply_with(Reply(status, headers={"Location": "http://127.0.0.1:1/elsewhere"}))
    create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    delivery = wait_for_delivery(account.client, event["id"])
    first = delivery["attempts"][0]
    assert first["outcome"] == "failed"
    assert "redirect not followed" in first["error"]


def deleted_while_in_flight(account: Account, receiver: Receiver, status: int) -> dict[str, Any]:
    """Delete the webhook while its first attempt waits for `status`; return the delivery.

    The delivery is returned once that attempt is recorded.
    """
    receiver.reply_with(Reply(status, delay=1.0))
    webhook = create_webhook(account.client, receiver.url)
    event = publish(account.client, "generation.completed")
    receiver.wait_for(1)
    account.client.delete(f"/v1/webhooks/{webhook['id']}")
    delivery = wait_for_delivery(account.client, event["id"], statuses={"cancelled", "succeeded"})
    deadline = time.monotonic() + 10
    while delivery["attempt_count"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        delivery = account.client.get(f"/v1/deliveries/{delivery['id']}").json()
    return delivery


def test_attempt_in_flight_at_deletion_still_counts(account: Account, receiver: Receiver) -> None:
    """An attempt the endpoint accepts after the delete makes the delivery succeeded."""
    delivery = deleted_while_in_flight(account, receiver, 200)

    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 1
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    retried = account.client.post(f"/v1/deliveries/{delivery['id']}/retry")
    assert retried.json()["error"]["code"] == "webhook_deleted"


def test_failed_attempt_in_flight_at_deletion(account: Account, receiver: Receiver) -> None:
    """An attempt that fails after the delete leaves the delivery cancelled, not retried."""
    delivery = deleted_while_in_flight(account, receiver, 500)

    assert delivery["status"] == "cancelled"
    assert delivery["attempt_count"] == 1
    assert delivery["last_status_code"] == 500
    assert delivery["next_attempt_at"] is None
