"""PostgreSQL stops or restarts under load: the API returns 503, workers wait, nothing is lost.

Every test here stops the machine's PostgreSQL server; see the `restarts_postgresql` marker.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.scale.cluster import (
    FastReceiver,
    WorkerProcess,
    restart_postgresql,
    scale_environment,
    start_postgresql,
    stop_postgresql,
    wait_until,
)
from tests.scale.load import (
    EVENT_TYPE,
    create_webhooks,
    deliveries_of_events,
    publish_one,
    stored_deliveries,
)
from tests.support.service import ServiceProcess
from wp_llm import catalog

pytestmark = pytest.mark.restarts_postgresql

WEBHOOKS = 30
EVENTS = 100
DELIVERY_TIMEOUT_SECONDS = 90.0
OUTAGE_SECONDS = 3.0


class Publisher(threading.Thread):
    """Publishes events one after another, riding out 503s, and keeps the ids the API accepted."""

    def __init__(self, client: httpx.Client, count: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.count = count
        self.accepted: list[str] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for _ in range(self.count):
                event_id = publish_one(self.client, retry_unavailable=True)
                if event_id is not None:
                    self.accepted.append(event_id)
                time.sleep(0.02)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread, which raises it
            self.failure = error


def test_restart_mid_run_loses_no_accepted_event(
    restartable_postgres_url: str, tmp_path: Path, fast_receiver: FastReceiver
) -> None:
    url = restartable_postgres_url
    env = scale_environment()
    api = ServiceProcess(database_url=url, data_dir=tmp_path, env=env, args=["--no-worker"]).start()
    workers = [WorkerProcess(url, tmp_path, env).start() for _ in range(2)]
    key = api.create_key()
    try:
        with api.client(key) as client:
            create_webhooks([client], fast_receiver.url, WEBHOOKS)
            publisher = Publisher(client, EVENTS)
            publisher.start()
            wait_until(
                lambda: len(publisher.accepted) >= EVENTS // 3, 60, "a third of the events accepted"
            )
            restart_postgresql()
            publisher.join(timeout=120)
        expected = deliveries_of_events(url, publisher.accepted)
        wait_until(
            lambda: expected <= fast_receiver.received().keys(),
            DELIVERY_TIMEOUT_SECONDS,
            "every delivery of every accepted event at the receiver",
            interval=0.5,
        )
        stored = stored_deliveries(url)
        alive = [worker.process is not None and worker.process.poll() is None for worker in workers]
        reconnects = [
            worker.log_text().count("delivery listener connected") - 1 for worker in workers
        ]
    finally:
        for worker in workers:
            worker.stop()
        api.stop()

    assert publisher.failure is None
    assert not publisher.is_alive()
    assert len(publisher.accepted) == EVENTS
    assert len(expected) == WEBHOOKS * len(publisher.accepted)
    assert set(stored) <= fast_receiver.received().keys()
    assert alive == [True, True]
    assert reconnects == [1, 1]


def test_outage_returns_503_then_recovers(
    restartable_postgres_url: str, tmp_path: Path, fast_receiver: FastReceiver
) -> None:
    url = restartable_postgres_url
    env = scale_environment()
    api = ServiceProcess(database_url=url, data_dir=tmp_path, env=env, args=["--no-worker"]).start()
    worker = WorkerProcess(url, tmp_path, env).start()
    key = api.create_key()
    body = {"type": EVENT_TYPE, "data": catalog.EVENT_TYPES[EVENT_TYPE].example}
    try:
        with api.client(key) as client:
            create_webhooks([client], fast_receiver.url, 1)
            stop_postgresql()
            during = client.post("/v1/events", json=body)
            time.sleep(OUTAGE_SECONDS)
            start_postgresql()
            recovery_seconds = wait_until(
                lambda: client.post("/v1/events", json=body).status_code == 201,
                30,
                "the API to accept events again",
            )
            expected = set(stored_deliveries(url))
            wait_until(
                lambda: expected <= fast_receiver.received().keys(),
                30,
                "the event published after the outage at the receiver",
            )
        worker_log = worker.log_text()
        worker_alive = worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()
        api.stop()

    error = during.json()["error"]
    print(f"API accepted events again {recovery_seconds:.1f}s after PostgreSQL started")
    assert during.status_code == 503
    assert during.headers.get("Retry-After") == "1"
    assert error["type"] == "server_error"
    assert set(error) == {"type", "code", "message", "details", "request_id", "timestamp"}
    assert "Traceback" not in during.text
    assert worker_alive
    assert "claim failed; database unavailable, will retry" in worker_log
    assert worker_log.count("delivery listener connected") >= 2
