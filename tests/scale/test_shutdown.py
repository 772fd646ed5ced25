"""SIGTERM: a worker stops claiming, lets in-flight deliveries finish until its deadline,
and hands back the rest."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Account
from tests.scale.cluster import WorkerProcess, scale_environment, wait_until
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess
from wp_llm import catalog
from wp_llm.server.db.engine import create_db_engine
from wp_llm.server.db.schema import deliveries

EVENT_TYPE = "system.maintenance"
IN_FLIGHT = 3
SHUTDOWN_TIMEOUT_SECONDS = 4.0
# Start-up of a second process and scheduling noise on a busy two-core machine.
EXIT_MARGIN_SECONDS = 5.0


def delivery_rows(database_url: str) -> list[dict[str, object]]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(
                deliveries.c.id,
                deliveries.c.status,
                deliveries.c.lease_owner,
                deliveries.c.attempt_count,
            )
            return [dict(row) for row in connection.execute(query).mappings()]
    finally:
        engine.dispose()


def publish(client_account: Account, count: int) -> None:
    body = {"type": EVENT_TYPE, "data": catalog.EVENT_TYPES[EVENT_TYPE].example}
    for _ in range(count):
        response = client_account.client.post("/v1/events", json=body)
        assert response.status_code == 201, response.text


def api_account(
    database_url: str, folder: Path, env: dict[str, str]
) -> tuple[ServiceProcess, Account]:
    api = ServiceProcess(
        database_url=database_url, data_dir=folder, env=env, args=["--no-worker"]
    ).start()
    key = api.create_key()
    return api, Account(key=key, client=api.client(key), service=api)


def stop_timed(stop: Callable[[], int | None]) -> tuple[int | None, float]:
    started = time.monotonic()
    code = stop()
    return code, time.monotonic() - started


def test_worker_sigterm_finishes_in_flight_deliveries(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = scale_environment(WP_LLM_SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT_SECONDS}s")
    receiver.reply_with(*[Reply(delay=1.5)] * IN_FLIGHT)
    api, account = api_account(database_url, tmp_path, env)
    worker = WorkerProcess(database_url, tmp_path, env).start()
    try:
        account.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
        ).raise_for_status()
        publish(account, IN_FLIGHT)
        receiver.wait_for(IN_FLIGHT)
        code, elapsed = stop_timed(worker.stop)
        rows = delivery_rows(database_url)
    finally:
        worker.stop()
        account.client.close()
        api.stop()

    assert code == 0
    assert elapsed < SHUTDOWN_TIMEOUT_SECONDS
    assert [row["status"] for row in rows] == ["succeeded"] * IN_FLIGHT
    assert "delivery worker stopped" in worker.log_text()


def test_worker_sigterm_releases_unfinished_deliveries(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = scale_environment(
        WP_LLM_SHUTDOWN_TIMEOUT="1s", WP_LLM_REQUEST_TIMEOUT="30s", WP_LLM_LEASE_SECONDS="60s"
    )
    receiver.reply_with(*[Reply(delay=20)] * IN_FLIGHT)
    api, account = api_account(database_url, tmp_path, env)
    first = WorkerProcess(database_url, tmp_path, env).start()
    second = WorkerProcess(database_url, tmp_path, env)
    try:
        account.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
        ).raise_for_status()
        publish(account, IN_FLIGHT)
        receiver.wait_for(IN_FLIGHT)
        code, elapsed = stop_timed(first.stop)
        handed_back = delivery_rows(database_url)

        # With 60 s leases, only released leases let a second worker send them at once.
        second.start()
        receiver.wait_for(2 * IN_FLIGHT, timeout=15)
        wait_until(
            lambda: {row["status"] for row in delivery_rows(database_url)} == {"succeeded"},
            15,
            "every delivery to succeed on the second worker",
        )
    finally:
        first.stop()
        second.stop()
        account.client.close()
        api.stop()

    assert code == 0
    assert elapsed < 1 + EXIT_MARGIN_SECONDS
    assert [row["status"] for row in handed_back] == ["pending"] * IN_FLIGHT
    assert [row["lease_owner"] for row in handed_back] == [None] * IN_FLIGHT
    assert [row["attempt_count"] for row in handed_back] == [0] * IN_FLIGHT


def test_serve_sigterm_finishes_in_flight_deliveries(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = scale_environment(WP_LLM_SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT_SECONDS}s")
    receiver.reply_with(*[Reply(delay=1.5)] * IN_FLIGHT)
    service = ServiceProcess(database_url=database_url, data_dir=tmp_path, env=env).start()
    key = service.create_key()
    account = Account(key=key, client=service.client(key), service=service)
    try:
        account.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
        ).raise_for_status()
        publish(account, IN_FLIGHT)
        receiver.wait_for(IN_FLIGHT)
        account.client.close()
        assert service.process is not None
        process = service.process
        _, elapsed = stop_timed(service.stop)
        rows = delivery_rows(database_url)
    finally:
        service.stop()

    # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM)
    assert elapsed < SHUTDOWN_TIMEOUT_SECONDS + EXIT_MARGIN_SECONDS
    assert [row["status"] for row in rows] == ["succeeded"] * IN_FLIGHT
