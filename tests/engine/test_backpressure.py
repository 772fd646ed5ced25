"""Back-pressure: an overloaded endpoint gets fewer concurrent requests and its asked-for pause.

The services here keep the circuit closed (a threshold of 1000 failures), so only
back-pressure shapes the traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.helpers import create_webhook, publish
from tests.engine.helpers import wait_until, webhook_of
from tests.engine.servers import ScriptedReceiver, answer
from tests.support.service import ServiceProcess

NO_BREAKER = {"WP_LLM_CIRCUIT_FAILURE_THRESHOLD": "1000"}
# Scheduling slack on a busy 2-core machine: claim, poll and flush delays.
EARLY_SECONDS = 0.1


def test_retry_after_pauses_whole_endpoint(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=NO_BREAKER)
    paused = scripted(answer(429, headers={"Retry-After": "2"}))
    other = scripted()
    with service.client(service.create_key()) as client:
        paused_webhook = create_webhook(client, paused.url, ["generation.*"])
        create_webhook(client, other.url, ["analysis.*"])
        publish(client, "generation.completed")
        [first] = paused.wait_for(1)
        paused.handler = answer(204)
        wait_until(lambda: webhook_of(client, paused_webhook["id"])["paused_until"])

        publish(client, "generation.completed")
        published_other = time.time()
        publish(client, "analysis.completed")
        other.wait_for(1)
        requests = paused.wait_for(3, timeout=20)

    # The second event's first attempt waited out the pause the first event's 429 asked for.
    assert min(r.received_at for r in requests[1:]) >= first.received_at + 2 - EARLY_SECONDS
    assert other.requests[0].received_at - published_other < 1.0


def test_overload_shrinks_concurrency(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=NO_BREAKER)
    receiver = scripted(answer(204, delay=0.3))
    with service.client(service.create_key()) as client:
        create_webhook(client, receiver.url, max_concurrency=8, retry_schedule=[0.2] * 10)
        for _ in range(16):
            publish(client, "generation.completed")
        receiver.wait_for(16)
        wait_until(lambda: receiver.in_flight == 0)
        healthy_peak = receiver.max_in_flight

        receiver.handler = answer(503, delay=0.3)
        for _ in range(16):
            publish(client, "generation.completed")
        receiver.wait_for(24)
        # After the first round of 503s the window has halved at least once.
        receiver.max_in_flight = 0
        receiver.wait_for(40, timeout=30)
        overloaded_peak = receiver.max_in_flight

    print(f"\npeak concurrency: healthy {healthy_peak}, after 503s {overloaded_peak}")
    assert healthy_peak == 8
    assert overloaded_peak <= 4


def test_timeouts_shrink_concurrency(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=NO_BREAKER)
    receiver = scripted(answer(204, delay=1.0))
    with service.client(service.create_key()) as client:
        create_webhook(
            client, receiver.url, max_concurrency=8, timeout=0.3, retry_schedule=[0.1] * 10
        )
        for _ in range(16):
            publish(client, "generation.completed")
        receiver.wait_for(8)
        receiver.max_in_flight = 0
        receiver.wait_for(40, timeout=30)
        later_peak = receiver.max_in_flight

    print(f"\npeak concurrency after timeouts: {later_peak}")
    assert later_peak <= 4
