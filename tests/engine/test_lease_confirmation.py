"""A worker that missed its lease renewals does not send a delivery another worker claimed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from tests.engine.helpers import worker_settings
from tests.engine.servers import ScriptedReceiver
from tests.engine.test_claim import BOX, add_webhook, publish, set_webhook
from wp_llm.server import ids
from wp_llm.server.db.schema import deliveries
from wp_llm.server.engine.worker import DeliveryWorker
from wp_llm.server.store import accounts
from wp_llm.server.store import deliveries as delivery_store

LEASE_SECONDS = 1.0
# When the other worker takes the second delivery: after its lease ran out.
OTHER_CLAIM_AFTER_SECONDS = 1.4
# How long the receiver may hold a request at most, and how long after the first reply
# the test waits for a second request that must not come.
HOLD_TIMEOUT_SECONDS = 10.0
QUIET_SECONDS = 1.0
OTHER_WORKER = "other-worker"


def cut_off_renewals(*_args: object, **_options: object) -> set[str]:
    raise OperationalError("UPDATE deliveries", {}, ConnectionError("server closed the connection"))


def lease_owner(engine: Engine, delivery_id: str) -> str | None:
    query = select(deliveries.c.lease_owner).where(deliveries.c.id == delivery_id)
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_lapsed_lease_not_started_on_completion(
    migrated_engine: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripted: Callable[..., ScriptedReceiver],
) -> None:
    engine = migrated_engine
    account_id = accounts.ensure_account(engine, "lapsed-leases")
    # Requests wait for the reply until the other worker has claimed the second delivery.
    replying = threading.Event()

    async def reply_when_released(_request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(replying.wait, HOLD_TIMEOUT_SECONDS)
        return web.Response(status=204)

    receiver = scripted(reply_when_released)
    # One at a time: the second delivery waits in the worker's queue behind the first.
    webhook_id = add_webhook(engine, account_id, ["generation.*"], max_concurrency=1)
    set_webhook(engine, webhook_id, url=receiver.url)
    publish(engine, account_id, "generation.completed", 2)
    monkeypatch.setattr(delivery_store, "extend_leases", cut_off_renewals)
    settings = worker_settings(
        database_url, tmp_path, lease_seconds=LEASE_SECONDS, poll_interval=60.0
    )
    worker = DeliveryWorker(engine, BOX, settings)

    async def scenario() -> tuple[str, str, list[str]]:
        running = asyncio.create_task(worker.run())
        try:
            [first] = await asyncio.to_thread(receiver.wait_for, 1)
            first_id = first.headers["x-wp-llm-delivery"]
            with engine.connect() as connection:
                query = select(deliveries.c.id).where(deliveries.c.id != first_id)
                second_id = str(connection.execute(query).scalar_one())
            await asyncio.sleep(first.received_at + OTHER_CLAIM_AFTER_SECONDS - time.time())
            # Another worker claims the second delivery now that its lease has run out.
            with engine.begin() as connection:
                connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id == second_id)
                    .values(lease_owner=OTHER_WORKER, lease_until=ids.now_ms() + 60_000)
                )
            replying.set()
            await asyncio.sleep(QUIET_SECONDS)
            sent = [request.headers["x-wp-llm-delivery"] for request in receiver.requests]
            return first_id, second_id, sent
        finally:
            replying.set()
            worker.stop()
            await running

    first_id, second_id, sent = asyncio.run(scenario())

    # Its lease ran out while it was in flight, and a claim took it back before its
    # attempt was written: sent once all the same.
    assert sent.count(first_id) == 1
    assert second_id not in sent, "sent although another worker held the lease"
    assert lease_owner(engine, second_id) == OTHER_WORKER
