"""A killed service loses nothing: pending deliveries resume after a restart."""

from __future__ import annotations

from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.support.receiver import Receiver, Reply

EVENT_COUNT = 20


def test_kill_during_retries_resumes_every_delivery(make_service, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    key = service.create_key()
    receiver.reply_with(*[Reply(500)] * EVENT_COUNT)
    with service.client(key) as client:
        create_webhook(client, receiver.url)
        events = [publish(client, "generation.completed") for _ in range(EVENT_COUNT)]
    receiver.wait_for(EVENT_COUNT)

    service.kill()
    service.start()

    with service.client(key) as client:
        delivered = [wait_for_delivery(client, e["id"], timeout=30) for e in events]
    assert {d["status"] for d in delivered} == {"succeeded"}
    succeeded_ids = {r.headers["webhook-id"] for r in receiver.requests if r.headers["webhook-id"]}
    assert succeeded_ids == {e["id"] for e in events}


def test_kill_before_first_attempt_still_delivers(make_service, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    key = service.create_key()
    receiver.default = Reply(204, delay=1.0)
    with service.client(key) as client:
        create_webhook(client, receiver.url)
        events = [publish(client, "analysis.completed") for _ in range(5)]
    service.kill()
    receiver.default = Reply(204)
    service.start()

    with service.client(key) as client:
        delivered = [wait_for_delivery(client, e["id"], timeout=30) for e in events]
    assert {d["status"] for d in delivered} == {"succeeded"}
