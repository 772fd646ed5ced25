"""An attempt whose data the database rejects holds up neither other attempts nor claiming."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import Engine, func, select, text

from tests.engine.helpers import worker_settings
from tests.engine.servers import ScriptedReceiver
from tests.engine.test_claim import BOX, add_webhook, publish, set_webhook
from wp_llm.server.db.schema import attempts, deliveries
from wp_llm.server.engine.outcome import DETAILS_NOT_STORED, without_details
from wp_llm.server.engine.worker import DeliveryWorker
from wp_llm.server.store import accounts
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store.deliveries import AttemptRecord

EVENTS = 5
# A response body that the database rejects, by the trigger or constraint below.
REJECTED_BODY = "rejected-by-the-database"
DRAIN_TIMEOUT_SECONDS = 15.0


def reject_body_in_attempts(engine: Engine) -> None:
    """Make the database reject any attempt whose response body contains REJECTED_BODY."""
    if engine.dialect.name == "sqlite":
        ddl = (
            "CREATE TRIGGER reject_body BEFORE INSERT ON attempts "
            f"WHEN NEW.response_body LIKE '%{REJECTED_BODY}%' "
            "BEGIN SELECT RAISE(ABORT, 'response body rejected'); END"
        )
    else:
        ddl = (
            "ALTER TABLE attempts ADD CONSTRAINT reject_body "
            f"CHECK (response_body NOT LIKE '%{REJECTED_BODY}%')"
        )
    with engine.begin() as connection:
        connection.execute(text(ddl))


async def rejected_reply(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, text=REJECTED_BODY)


def pending_count(engine: Engine) -> int:
    query = select(func.count()).where(deliveries.c.status == "pending")
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


async def drain(engine: Engine, worker: DeliveryWorker) -> None:
    """Run the worker until no delivery is pending, or for DRAIN_TIMEOUT_SECONDS."""
    running = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while pending_count(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await running


def statuses(engine: Engine, webhook_id: str) -> list[str]:
    query = select(deliveries.c.status).where(deliveries.c.webhook_id == webhook_id)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def test_rejected_attempt_stored_without_texts(
    migrated_engine: Engine,
    database_url: str,
    tmp_path: Path,
    scripted: Callable[..., ScriptedReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = migrated_engine
    reject_body_in_attempts(engine)
    account_id = accounts.ensure_account(engine, "rejected-attempts")
    rejected = add_webhook(engine, account_id, ["generation.*"])
    set_webhook(engine, rejected, url=scripted(rejected_reply).url)
    healthy = add_webhook(engine, account_id, ["generation.*"])
    set_webhook(engine, healthy, url=scripted().url)
    publish(engine, account_id, "generation.completed", EVENTS)
    settings = worker_settings(database_url, tmp_path)
    worker = DeliveryWorker(engine, BOX, settings)

    with caplog.at_level(logging.ERROR, logger="wp_llm.server.engine.worker"):
        asyncio.run(drain(engine, worker))

    assert statuses(engine, healthy) == ["succeeded"] * EVENTS
    assert statuses(engine, rejected) == ["succeeded"] * EVENTS
    query = select(
        attempts.c.status_code, attempts.c.response_body, attempts.c.response_truncated
    ).where(attempts.c.webhook_id == rejected)
    with engine.connect() as connection:
        stored = [tuple(row) for row in connection.execute(query)]
    assert stored == [(200, None, True)] * EVENTS
    assert "which the database rejected" in caplog.text


def test_other_write_error_keeps_texts(
    migrated_engine: Engine,
    database_url: str,
    tmp_path: Path,
    scripted: Callable[..., ScriptedReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = migrated_engine
    account_id = accounts.ensure_account(engine, "write-errors")
    webhook_id = add_webhook(engine, account_id, ["generation.*"])
    set_webhook(engine, webhook_id, url=scripted(rejected_reply).url)
    publish(engine, account_id, "generation.completed", EVENTS)
    record_attempts = delivery_store.record_attempts
    calls: list[int] = []

    def fail_first_write(*args: Any, **options: Any) -> None:
        calls.append(len(options["records"]))
        if len(calls) == 1:
            raise RuntimeError("connection pool exhausted")
        record_attempts(*args, **options)

    monkeypatch.setattr(delivery_store, "record_attempts", fail_first_write)
    settings = worker_settings(database_url, tmp_path)
    asyncio.run(drain(engine, DeliveryWorker(engine, BOX, settings)))

    assert len(calls) >= 2
    assert statuses(engine, webhook_id) == ["succeeded"] * EVENTS
    query = select(attempts.c.response_body).where(attempts.c.webhook_id == webhook_id)
    with engine.connect() as connection:
        bodies = list(connection.execute(query).scalars())
    # Written again unchanged: the error was not about the data.
    assert bodies == [REJECTED_BODY] * EVENTS


def test_without_details_keeps_outcome() -> None:
    record = AttemptRecord(
        delivery_id="dlv_1",
        webhook_id="wh_1",
        account_id="acct_1",
        attempted_at=1_000,
        latency_ms=12,
        status_code=500,
        error="endpoint answered 500",
        response_body="stack trace",
        response_truncated=False,
        succeeded=False,
        next_status="pending",
        next_attempt_at=61_000,
    )
    stripped = without_details(record)
    assert stripped.error == DETAILS_NOT_STORED
    assert stripped.response_body is None
    assert stripped.response_truncated is True
    assert stripped.attempt_id == record.attempt_id
    assert (stripped.status_code, stripped.latency_ms, stripped.succeeded) == (500, 12, False)
    assert (stripped.next_status, stripped.next_attempt_at) == ("pending", 61_000)
    no_texts = without_details(dataclasses.replace(record, error=None, response_body=None))
    assert no_texts.error is None
    assert no_texts.response_truncated is False
