"""LISTEN/NOTIFY: an idle worker in another process wakes at once when deliveries become due.

The workers here poll only every 60 seconds, so a delivery that arrives within a few
seconds can only have been started by a notification.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.scale.cluster import WorkerProcess, restart_postgresql, scale_environment
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess
from wp_llm import catalog

EVENT_TYPE = "system.maintenance"
POLL_INTERVAL = "60s"
# Far below the poll interval, far above a notification's latency on a busy machine.
WAKE_LIMIT_SECONDS = 5.0


@dataclass
class Deployment:
    """An API process without a worker, one idle worker, and a client of the API."""

    api: ServiceProcess
    worker: WorkerProcess
    client: httpx.Client


@pytest.fixture
def deployment(postgres_url: str, tmp_path: Path) -> Iterator[Deployment]:
    # Failed attempts wait an hour, so only an explicit retry brings them back.
    env = scale_environment(WP_LLM_POLL_INTERVAL=POLL_INTERVAL, WP_LLM_RETRY_SCHEDULE="1h")
    api = ServiceProcess(
        database_url=postgres_url, data_dir=tmp_path, env=env, args=["--no-worker"]
    ).start()
    worker = WorkerProcess(postgres_url, tmp_path, env).start(
        wait_for="delivery listener connected"
    )
    key = api.create_key()
    with api.client(key) as client:
        # The worker claims once when it starts and once when its listener connects; after
        # that it sleeps for the whole poll interval unless notified.
        time.sleep(1.0)
        yield Deployment(api, worker, client)
    worker.stop()
    api.stop()


def publish(client: httpx.Client) -> None:
    body = {"type": EVENT_TYPE, "data": catalog.EVENT_TYPES[EVENT_TYPE].example}
    response = client.post("/v1/events", json=body)
    assert response.status_code == 201, response.text


def seconds_until_received(receiver: Receiver, count: int) -> float:
    started = time.monotonic()
    receiver.wait_for(count, timeout=WAKE_LIMIT_SECONDS)
    return time.monotonic() - started


def test_idle_worker_wakes_on_publish(deployment: Deployment, receiver: Receiver) -> None:
    deployment.client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
    ).raise_for_status()

    publish(deployment.client)

    assert seconds_until_received(receiver, 1) < WAKE_LIMIT_SECONDS


def test_idle_worker_wakes_on_retry(deployment: Deployment, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=500))
    deployment.client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
    ).raise_for_status()
    publish(deployment.client)
    receiver.wait_for(1, timeout=WAKE_LIMIT_SECONDS)
    [delivery] = deployment.client.get("/v1/deliveries").json()["data"]
    time.sleep(0.5)

    response = deployment.client.post(f"/v1/deliveries/{delivery['id']}/retry")

    assert response.status_code == 202
    assert seconds_until_received(receiver, 2) < WAKE_LIMIT_SECONDS


def test_idle_worker_wakes_on_reenabled_webhook(deployment: Deployment, receiver: Receiver) -> None:
    # The first attempt fails and waits an hour; re-enabling the webhook makes it due now.
    receiver.reply_with(Reply(status=500))
    created = deployment.client.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]})
    webhook_id = created.json()["id"]
    publish(deployment.client)
    receiver.wait_for(1, timeout=WAKE_LIMIT_SECONDS)
    deployment.client.patch(
        f"/v1/webhooks/{webhook_id}", json={"enabled": False}
    ).raise_for_status()
    time.sleep(0.5)

    deployment.client.patch(f"/v1/webhooks/{webhook_id}", json={"enabled": True}).raise_for_status()

    assert seconds_until_received(receiver, 2) < WAKE_LIMIT_SECONDS


@pytest.mark.restarts_postgresql
def test_listener_reconnects_after_restart(
    restartable_postgres_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = scale_environment(WP_LLM_POLL_INTERVAL=POLL_INTERVAL)
    url = restartable_postgres_url
    api = ServiceProcess(database_url=url, data_dir=tmp_path, env=env, args=["--no-worker"]).start()
    worker = WorkerProcess(url, tmp_path, env).start(wait_for="delivery listener connected")
    key = api.create_key()
    try:
        with api.client(key) as client:
            client.post(
                "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
            ).raise_for_status()
            restart_postgresql()
            worker.wait_for_log("delivery listener connected", 30, count=2)
            time.sleep(1.0)
            publish(client)
            elapsed = seconds_until_received(receiver, 1)
    finally:
        worker.stop()
        api.stop()

    assert elapsed < WAKE_LIMIT_SECONDS
