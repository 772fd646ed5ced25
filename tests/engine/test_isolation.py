"""Isolation: a hanging or backlogged endpoint does not delay deliveries to another one.

Each test measures the healthy endpoint's publish-to-receipt latency twice in one
service: first alone, then next to the bad endpoint, and compares the two. The
circuit breaker is held off (a threshold of 1000 failures), so the bad endpoint keeps
using its whole concurrency budget and only the scheduler protects the healthy one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.helpers import create_webhook, publish
from tests.engine.helpers import percentile
from tests.engine.servers import ScriptedReceiver, answer
from tests.support.service import ServiceProcess

# No API rate limit either: the backlog is published faster than 100 requests per second.
NO_BREAKER = {"WP_LLM_CIRCUIT_FAILURE_THRESHOLD": "1000", "WP_LLM_RATE_LIMIT": "0"}
SAMPLES = 40
SPACING_SECONDS = 0.025
# The bound: the p95 next to the bad endpoint within 3x the p95 alone, plus 200 ms.
RATIO = 3.0
ALLOWANCE_SECONDS = 0.2


def measure_latencies(
    client: httpx.Client, receiver: ScriptedReceiver, event_type: str
) -> list[float]:
    """Publish SAMPLES events one by one; return each one's seconds from publish to receipt."""
    already = len(receiver.requests)
    published: dict[str, float] = {}
    for _ in range(SAMPLES):
        started = time.time()
        published[publish(client, event_type)["id"]] = started
        time.sleep(SPACING_SECONDS)
    requests = receiver.wait_for(already + SAMPLES, timeout=30)[already:]
    return [r.received_at - published[r.headers["webhook-id"]] for r in requests]


def report(name: str, alone: list[float], beside: list[float]) -> tuple[float, float]:
    alone_p95, beside_p95 = percentile(alone, 0.95), percentile(beside, 0.95)
    print(
        f"\n{name}: healthy endpoint p50/p95 alone {percentile(alone, 0.5) * 1000:.0f}/"
        f"{alone_p95 * 1000:.0f} ms, beside it {percentile(beside, 0.5) * 1000:.0f}/"
        f"{beside_p95 * 1000:.0f} ms"
    )
    return alone_p95, beside_p95


@pytest.mark.parametrize(
    "max_in_flight",
    [
        "256",  # the default: the endpoint's own limit of 16 binds first
        "8",  # a small worker: the endpoint may take only half of its slots
    ],
)
def test_hanging_endpoint_does_not_delay_others(
    max_in_flight: str,
    make_service: Callable[..., ServiceProcess],
    scripted: Callable[..., ScriptedReceiver],
) -> None:
    service = make_service(env={**NO_BREAKER, "WP_LLM_MAX_IN_FLIGHT": max_in_flight})
    healthy = scripted()
    # The test service times out after 2 s, so this endpoint never responds in time.
    hanging = scripted(answer(204, delay=2.5))
    with service.client(service.create_key()) as client:
        create_webhook(client, healthy.url, ["generation.*"])
        alone = measure_latencies(client, healthy, "generation.completed")

        create_webhook(client, hanging.url, ["generation.*"])
        beside = measure_latencies(client, healthy, "generation.completed")
        hanging_peak = hanging.max_in_flight

    alone_p95, beside_p95 = report(f"hanging endpoint, {max_in_flight} slots", alone, beside)
    assert hanging_peak >= 2
    assert beside_p95 <= RATIO * alone_p95 + ALLOWANCE_SECONDS


def test_backlog_of_one_endpoint_does_not_delay_others(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=NO_BREAKER)
    healthy = scripted()
    # 300 deliveries at 8 at a time and 0.3 s each take about 11 s to drain.
    slow = scripted(answer(204, delay=0.3))
    with service.client(service.create_key()) as client:
        create_webhook(client, healthy.url, ["generation.*"])
        alone = measure_latencies(client, healthy, "generation.completed")

        create_webhook(client, slow.url, ["analysis.*"], max_concurrency=8)
        for _ in range(300):
            publish(client, "analysis.completed")
        beside = measure_latencies(client, healthy, "generation.completed")
        slow_received = len(slow.requests)

    alone_p95, beside_p95 = report("backlogged endpoint", alone, beside)
    assert slow_received < 300
    assert beside_p95 <= RATIO * alone_p95 + ALLOWANCE_SECONDS
