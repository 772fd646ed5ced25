"""The delivery loop: claim due deliveries, send them concurrently, record outcomes in batches.

Database calls run on a small thread pool so the event loop keeps sending while a
batch commits. Each webhook has its own concurrency limit, and the claim query skips
webhooks that are at their limit, so one slow endpoint cannot take every slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from wp_llm.server import ids
from wp_llm.server.config import Settings
from wp_llm.server.crypto import SecretBox
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.engine.retry import RetryPolicy
from wp_llm.server.engine.sender import Sender, SendResult, delivery_headers
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store.webhooks import active_secrets

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 200
DB_THREADS = 2
DB_RETRY_SECONDS = 1.0
FLUSH_MAX_WAIT_SECONDS = 0.005
GONE_STATUS = 410

T = TypeVar("T")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{ids.new_id('w')[-8:]}"


class DeliveryWorker:
    """Runs deliveries for every account until stopped; many may share one database."""

    def __init__(self, engine: Engine, box: SecretBox, settings: Settings) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings
        self.owner = worker_name()
        self.policy = RetryPolicy(settings.retry_schedule, settings.retry_jitter, settings.retry_after_cap)
        self.wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._flush_needed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="wp-llm-db")
        self._in_flight: dict[str, str] = {}
        self._per_webhook: Counter[str] = Counter()
        self._records: list[delivery_store.AttemptRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    def notify(self) -> None:
        """Wake the claim loop now, for example after an event was published in this process."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    async def run(self) -> None:
        address_policy = AddressPolicy(
            self.settings.allow_private_networks, self.settings.allowed_networks
        )
        logger.info("delivery worker started", extra={"worker": self.owner})
        async with Sender(
            address_policy,
            timeout=self.settings.request_timeout,
            body_limit=self.settings.response_body_limit,
        ) as sender:
            self._sender = sender
            background = [
                asyncio.create_task(self._flush_loop()),
                asyncio.create_task(self._heartbeat_loop()),
            ]
            try:
                await self._claim_loop()
            finally:
                await self._drain()
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await self._flush_all()
                self._executor.shutdown(wait=True)
        logger.info("delivery worker stopped", extra={"worker": self.owner})

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            claimed = await self._claim_once()
            if claimed == CLAIM_BATCH_SIZE:
                continue
            await self._wait_for_work()

    async def _claim_once(self) -> int:
        capacity = self.settings.max_in_flight - len(self._in_flight)
        if capacity <= 0:
            return 0
        limit = min(capacity, CLAIM_BATCH_SIZE)
        saturated = [
            webhook_id
            for webhook_id, count in self._per_webhook.items()
            if count >= self.settings.per_endpoint_concurrency
        ]
        try:
            batch = await self._db(
                delivery_store.claim_due,
                self.engine,
                owner=self.owner,
                limit=limit,
                lease_ms=int(self.settings.lease_seconds * 1000),
                now=ids.now_ms(),
                exclude_webhooks=saturated,
            )
        except OperationalError as error:
            logger.warning("claim failed; database unavailable, will retry", extra={"error": str(error)[:200]})
            await asyncio.sleep(DB_RETRY_SECONDS)
            return 0
        await self._start(batch)
        return len(batch)

    async def _start(self, batch: list[delivery_store.ClaimedDelivery]) -> None:
        surplus: list[str] = []
        for delivery in batch:
            if self._per_webhook[delivery.webhook_id] >= self.settings.per_endpoint_concurrency:
                surplus.append(delivery.id)
                continue
            self._in_flight[delivery.id] = delivery.webhook_id
            self._per_webhook[delivery.webhook_id] += 1
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if surplus:
            # One claim can return more rows of a webhook than its limit allows; give them back.
            await self._db(delivery_store.release_leases, self.engine, owner=self.owner, delivery_ids=surplus)

    async def _wait_for_work(self) -> None:
        self.wake.clear()
        self._slot_freed.clear()
        waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(self._slot_freed.wait())]
        await asyncio.wait(waiters, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def _deliver(self, delivery: delivery_store.ClaimedDelivery) -> None:
        try:
            secrets = active_secrets(self.box, {"secrets": delivery.secrets_json}, ids.now_ms())
            headers = delivery_headers(
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                delivery_id=delivery.id,
                secrets=secrets,
                body=delivery.body,
                timestamp=int(time.time()),
            )
            attempted_at = ids.now_ms()
            result = await self._sender.send(delivery.url, delivery.body, headers)
            self._records.append(self._record(delivery, result, attempted_at))
            self._flush_needed.set()
            self._log_outcome(delivery, result)
        except Exception:
            logger.exception("delivery crashed; its lease will expire and it will be retried",
                             extra={"delivery_id": delivery.id, "webhook_id": delivery.webhook_id})
        finally:
            self._in_flight.pop(delivery.id, None)
            self._per_webhook[delivery.webhook_id] -= 1
            if self._per_webhook[delivery.webhook_id] <= 0:
                del self._per_webhook[delivery.webhook_id]
            self._slot_freed.set()

    def _record(
        self, delivery: delivery_store.ClaimedDelivery, result: SendResult, attempted_at: int
    ) -> delivery_store.AttemptRecord:
        attempts_made = delivery.attempt_count + 1
        next_status: delivery_store.DeliveryStatus = "succeeded"
        next_attempt_at: int | None = None
        if not result.succeeded:
            delay = self.policy.next_delay(attempts_made, result.retry_after)
            if delay is None or result.status_code == GONE_STATUS:
                next_status = "failed"
            else:
                next_status = "pending"
                next_attempt_at = ids.now_ms() + int(delay * 1000)
        return delivery_store.AttemptRecord(
            delivery_id=delivery.id,
            webhook_id=delivery.webhook_id,
            account_id=delivery.account_id,
            attempted_at=attempted_at,
            latency_ms=result.latency_ms,
            status_code=result.status_code,
            error=result.error,
            response_body=result.response_body,
            response_truncated=result.response_truncated,
            succeeded=result.succeeded,
            next_status=next_status,
            next_attempt_at=next_attempt_at,
        )

    def _log_outcome(self, delivery: delivery_store.ClaimedDelivery, result: SendResult) -> None:
        if result.succeeded:
            return
        fields = {
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "webhook_id": delivery.webhook_id,
            "attempt": delivery.attempt_count + 1,
            "status_code": result.status_code,
            "error": result.error,
        }
        logger.info("delivery attempt failed", extra=fields)

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_needed.wait()
            await asyncio.sleep(FLUSH_MAX_WAIT_SECONDS)
            self._flush_needed.clear()
            await self._flush_all()

    async def _flush_all(self) -> None:
        """Write every finished attempt; on a database error keep them and try again."""
        while self._records:
            batch, self._records = self._records, []
            try:
                await self._db(self._write, batch)
            except OperationalError as error:
                self._records = batch + self._records
                logger.warning("recording attempts failed; will retry",
                               extra={"count": len(batch), "error": str(error)[:200]})
                await asyncio.sleep(DB_RETRY_SECONDS)

    def _write(self, batch: list[delivery_store.AttemptRecord]) -> None:
        delivery_store.record_attempts(self.engine, owner=self.owner, records=batch)
        gone = {r.webhook_id for r in batch if r.status_code == GONE_STATUS}
        for webhook_id in gone:
            self._disable_gone(webhook_id)

    def _disable_gone(self, webhook_id: str) -> None:
        from wp_llm.server.store.webhooks import disable_webhook

        with self.engine.begin() as connection:
            if disable_webhook(connection, webhook_id, "endpoint answered 410 Gone", ids.now_ms()):
                logger.warning("webhook disabled: endpoint answered 410 Gone", extra={"webhook_id": webhook_id})

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            in_flight = list(self._in_flight)
            until = ids.now_ms() + int(self.settings.lease_seconds * 1000)
            try:
                await self._db(delivery_store.extend_leases, self.engine,
                               owner=self.owner, delivery_ids=in_flight, until=until)
            except OperationalError as error:
                logger.warning("lease renewal failed; will retry", extra={"error": str(error)[:200]})

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
