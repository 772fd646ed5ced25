"""The circuit breaker end to end: waiting without spending attempts, probes, closing, disabling.

These services open a circuit after 3 failed attempts in a row and probe every 0.5 s.
The retry schedule is the test default of 0.5 s, 1 s and 2 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.engine.helpers import deliveries_of_webhook, wait_until, webhook_of
from tests.engine.servers import ScriptedReceiver, answer
from tests.support.service import ServiceProcess

BREAKER = {"WP_LLM_CIRCUIT_FAILURE_THRESHOLD": "3", "WP_LLM_CIRCUIT_PROBE_INTERVAL": "0.5s"}
# Longer than the whole retry schedule (0.5 + 1 + 2 s), so unprotected deliveries would fail.
SCHEDULE_SECONDS = 3.5
EVENT_COUNT = 10


def test_open_circuit_keeps_deliveries_waiting(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=BREAKER)
    receiver = scripted(answer(500))
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, receiver.url)
        for _ in range(EVENT_COUNT):
            publish(client, "generation.completed")
        opened = wait_until(lambda: webhook_of(client, webhook["id"])["circuit_state"] == "open")
        shown = webhook_of(client, webhook["id"])
        time.sleep(SCHEDULE_SECONDS)
        waiting = deliveries_of_webhook(client, webhook["id"])

    assert opened
    assert shown["consecutive_failures"] >= 3
    assert shown["failing_since"] is not None
    assert shown["next_probe_at"] is not None
    assert {d["status"] for d in waiting} == {"pending"}
    assert max(d["attempt_count"] for d in waiting) == 1


def test_probes_go_one_at_a_time(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=BREAKER)
    receiver = scripted(answer(500))
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, receiver.url)
        for _ in range(EVENT_COUNT):
            publish(client, "generation.completed")
        wait_until(lambda: webhook_of(client, webhook["id"])["circuit_state"] == "open")

        # Slow failures, longer than the probe interval: overlapping probes would show here.
        receiver.handler = answer(500, delay=0.8)
        wait_until(lambda: receiver.in_flight == 0)
        receiver.max_in_flight = 0
        before = len(receiver.requests)
        time.sleep(3.0)
        probes = len(receiver.requests) - before

    assert receiver.max_in_flight == 1
    # One probe per 0.8 s response plus the 0.5 s interval at most, not ten deliveries at once.
    assert 1 <= probes <= 4


def test_successful_probe_resumes_deliveries(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=BREAKER)
    receiver = scripted(answer(503))
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, receiver.url)
        events = [publish(client, "generation.completed") for _ in range(EVENT_COUNT)]
        wait_until(lambda: webhook_of(client, webhook["id"])["circuit_state"] == "open")

        receiver.handler = answer(204)
        delivered = [wait_for_delivery(client, event["id"], timeout=20) for event in events]
        closed = webhook_of(client, webhook["id"])

    assert {d["status"] for d in delivered} == {"succeeded"}
    assert closed["circuit_state"] == "closed"
    assert closed["consecutive_failures"] == 0
    assert closed["failing_since"] is None


def test_open_circuit_does_not_slow_other_endpoints(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=BREAKER)
    failing = scripted(answer(500))
    healthy = scripted()
    with service.client(service.create_key()) as client:
        failing_webhook = create_webhook(client, failing.url, ["generation.*"])
        create_webhook(client, healthy.url, ["analysis.*"])
        for _ in range(EVENT_COUNT):
            publish(client, "generation.completed")
        wait_until(lambda: webhook_of(client, failing_webhook["id"])["circuit_state"] == "open")
        started = time.time()
        publish(client, "analysis.completed")
        [request] = healthy.wait_for(1)

    assert request.received_at - started < 1.0


def test_continuous_failure_disables_and_notifies(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env={**BREAKER, "WP_LLM_DISABLE_AFTER": "2s"})
    failing = scripted(answer(500))
    watcher = scripted()
    bystander = scripted()
    with service.client(service.create_key()) as client:
        url = failing.url.replace("http://", "http://ops:b4sic-auth-pass@")
        doomed = create_webhook(client, url, ["generation.*"])
        create_webhook(client, watcher.url, ["webhook.disabled"])
        create_webhook(client, bystander.url, ["generation.*"])
        event = publish(client, "generation.completed")

        [notice] = watcher.wait_for(1, timeout=20)
        disabled = webhook_of(client, doomed["id"])
        failing.handler = answer(204)
        enabled = client.post(f"/v1/webhooks/{doomed['id']}", json={"enabled": True})
        resumed = wait_until(
            lambda: [
                d for d in deliveries_of_webhook(client, doomed["id"]) if d["status"] == "succeeded"
            ]
        )

    envelope = json.loads(notice.body)
    data = envelope["data"]
    assert envelope["type"] == "webhook.disabled"
    assert notice.headers["x-wp-llm-event"] == "webhook.disabled"
    assert data["webhook_id"] == doomed["id"]
    assert data["url"] == failing.url.replace("http://", "http://***@")
    assert "failed continuously for 2 seconds" in data["reason"]
    assert "HTTP 500" in data["reason"]
    assert data["disabled_at"] - data["failing_since"] >= 2
    assert disabled["enabled"] is False
    assert disabled["disabled_reason"] == data["reason"]
    assert disabled["disabled_at"] == data["disabled_at"]
    assert [r.headers["webhook-id"] for r in bystander.requests] == [event["id"]]
    assert enabled.json()["circuit_state"] == "closed"
    assert resumed[0]["event_id"] == event["id"]


def test_gone_disables_and_notifies(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=BREAKER)
    gone = scripted(answer(410))
    watcher = scripted()
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, gone.url, ["generation.*"])
        create_webhook(client, watcher.url, ["webhook.*"])
        publish(client, "generation.completed")
        [notice] = watcher.wait_for(1)
        shown = webhook_of(client, webhook["id"])

    data = json.loads(notice.body)["data"]
    assert data["webhook_id"] == webhook["id"]
    assert data["reason"] == "The endpoint answered 410 Gone."
    assert shown["enabled"] is False
