"""Prometheus metrics at /metrics, from a service of the test's own."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.engine.helpers import wait_until
from tests.engine.servers import ScriptedReceiver, answer
from tests.support.service import ServiceProcess

ENV = {
    "WP_LLM_METRICS_INTERVAL": "0.2s",
    "WP_LLM_CIRCUIT_FAILURE_THRESHOLD": "2",
    "WP_LLM_CIRCUIT_PROBE_INTERVAL": "60s",
}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(service: ServiceProcess) -> Samples:
    response = httpx.get(service.base_url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_once_circuit_open(service: ServiceProcess) -> Samples:
    """Scrape, or return nothing while the sampled gauge does not show the open circuit yet."""
    samples = scrape(service)
    return samples if samples.get(("wp_llm_webhooks_circuit_open", ())) == 1 else {}


def test_metrics_count_attempts_and_health(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=ENV)
    healthy = scripted()
    failing = scripted(answer(503))
    with service.client(service.create_key()) as client:
        create_webhook(client, healthy.url, ["generation.*"])
        create_webhook(client, failing.url, ["analysis.*"], retry_schedule=[60])
        succeeded = [publish(client, "generation.completed") for _ in range(3)]
        for event in succeeded:
            wait_for_delivery(client, event["id"])
        publish(client, "analysis.completed")
        publish(client, "analysis.completed")
        failing.wait_for(2)
        samples = wait_until(lambda: scrape_once_circuit_open(service))

    assert samples[("wp_llm_delivery_attempts_total", (("result", "success"),))] == 3
    assert samples[("wp_llm_delivery_attempts_total", (("result", "http_error"),))] == 2
    assert samples[("wp_llm_delivery_outcomes_total", (("outcome", "succeeded"),))] == 3
    assert samples[("wp_llm_delivery_outcomes_total", (("outcome", "retry_scheduled"),))] == 2
    assert samples[("wp_llm_delivery_attempt_duration_seconds_count", ())] == 5
    assert samples[("wp_llm_deliveries_pending", ())] == 2
    assert samples[("wp_llm_webhooks_disabled", ())] == 0
    assert samples[("wp_llm_circuit_transitions_total", (("state", "open"),))] == 1
    assert samples[("wp_llm_deliveries_in_flight", ())] == 0


def test_metrics_need_no_api_key(make_service: Callable[..., ServiceProcess]) -> None:
    service = make_service(env=ENV)
    response = httpx.get(service.base_url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert "wp_llm_deliveries_pending" in response.text
