"""The delivery loop: claim due deliveries, send them concurrently, record outcomes in batches.

Database calls run on a small thread pool so the event loop keeps sending while a
batch commits. Each webhook has its own budget: a concurrency window that shrinks when
the endpoint pushes back, an optional rate limit, and a pause when it sends
Retry-After. A claim skips webhooks with no budget left and takes at most the budget
of each other webhook, so a slow endpoint can neither take every slot nor hide other
endpoints' deliveries behind its backlog. Webhooks with an open circuit get one probe
at a time from `_probe_loop` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from wp_llm.server import ids
from wp_llm.server.config import Settings
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.engine import database_retry_delay, is_postgresql, libpq_url
from wp_llm.server.engine import metrics
from wp_llm.server.engine.breaker import CircuitBreaker
from wp_llm.server.engine.health import HealthTracker
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.engine.notify import DeliveryListener
from wp_llm.server.engine.outcome import (
    RetryPolicies,
    attempt_record,
    delivery_outcome,
    log_outcome,
    without_details,
)
from wp_llm.server.engine.prefetch import ClaimedQueue
from wp_llm.server.engine.retry import RetryPolicy
from wp_llm.server.engine.secrets import SecretCache
from wp_llm.server.engine.sender import Sender, SendResult, delivery_headers
from wp_llm.server.engine.throttle import (
    PREFETCH_WINDOWS,
    EndpointThrottle,
    Throttles,
    is_congestion,
    pause_seconds,
)
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import retention, vacuum
from wp_llm.server.store.health import EndpointOutcome

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 256
# Claimed deliveries waiting to start, at most, as a multiple of max_in_flight.
QUEUE_LIMIT_FACTOR = 2
# A claimed delivery that has not started after this long goes back to the database.
MAX_QUEUED_SECONDS = 2.0
# A claimed delivery goes back unsent once its lease was last confirmed longer ago than
# this fraction of the lease. Renewals run every third of a lease, so only a worker
# that missed a renewal reaches it.
LEASE_CONFIRMED_FRACTION = 0.5
# Shortest interval between claims that skip full webhooks to reach rows behind them.
BEHIND_BACKLOG_SECONDS = 0.05
DB_THREADS = 2
# After the shutdown deadline, how long the worker keeps trying to record finished
# attempts and hand back leases before it exits anyway.
STOP_WRITE_SECONDS = 5.0
# How long finished attempts wait to be written together. Each write is a transaction
# that holds SQLite's write lock, and publishes in the same process queue behind it.
# At 1,000 events/s, 5 ms made 200 writes a second and a median publish of 14 ms.
# With 20 ms it was 50 writes and 10.5 ms.
FLUSH_MAX_WAIT_SECONDS = 0.02
# One endpoint may use at most 1/n of the worker's max_in_flight slots.
MAX_SHARE_DIVISOR = 2

# Errors of a database that is down, restarting or unreachable: wait and try again.
DATABASE_ERRORS = (OperationalError, InterfaceError)
# Errors of a value the database cannot store: a text with a NUL or a lone surrogate, a
# number out of range, a constraint. Another attempt with the same data fails alike.
REJECTED_DATA = (DataError, IntegrityError, UnicodeError)

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
        self.policy = RetryPolicy(
            settings.retry_schedule, settings.retry_jitter, settings.retry_after_cap
        )
        self.wake = asyncio.Event()
        self._stopping = asyncio.Event()
        # Set when a webhook runs low on claimed deliveries, or the worker on slots.
        self._refill = asyncio.Event()
        self._flush_needed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="wp-llm-db")
        self._in_flight: dict[str, str] = {}
        self._throttles = Throttles(
            settings.per_endpoint_concurrency, max(1, settings.max_in_flight // MAX_SHARE_DIVISOR)
        )
        self._policies = RetryPolicies(self.policy)
        self._queue = ClaimedQueue()
        self._queue_limit = settings.max_in_flight * QUEUE_LIMIT_FACTOR
        self._backlog_claimed_at = -math.inf
        # Whether due rows may be waiting in the database. A claim that came back short,
        # with no quota cutting it, clears it. Wake-ups, released leases and polls set it.
        self._rows_may_wait = True
        # Webhooks the last claim left out for their full quota: rows of theirs may wait,
        # but claiming is no use until one of them has room again.
        self._skipped: set[str] = set()
        # When to claim even without a wake-up or a refill, because retries come due and
        # other workers' leases run out silently. Each claim moves it a poll interval on.
        self._next_poll_at = 0.0
        self._secrets = SecretCache(box)
        self._records: list[delivery_store.AttemptRecord] = []
        # Deliveries passed over unsent because their lease was not confirmed recently,
        # to hand back before the next claim.
        self._lapsed: list[str] = []
        # Attempts in the batch being written now. With in-flight deliveries and queued
        # records, they are sent but unrecorded, and all together stay within max_in_flight.
        self._writing: list[delivery_store.AttemptRecord] = []

        breaker = CircuitBreaker(
            failure_threshold=settings.circuit_failure_threshold,
            probe_interval_ms=int(settings.circuit_probe_interval * 1000),
            disable_after_ms=int(settings.disable_after * 1000),
        )
        self._health = HealthTracker(
            engine, breaker, on_deliveries_due=self._notify_from_thread, worker=self.owner
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # Whether publishes in this process may hand deliveries over: only while sending.
        self._accepting = False
        # Per webhook, the timer that starts its waiting deliveries once its budget allows.
        self._dispatch_timers: dict[str, asyncio.TimerHandle] = {}
        self._stop_deadline = 0.0
        self._claim_failures = 0
        self._write_failures = 0
        # Held while a batch is being written, so shutdown never cancels a write halfway.
        self._write_lock = asyncio.Lock()

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    def notify(self) -> None:
        """Wake the claim loop now, for example after an event was published in this process."""
        self.wake.set()

    def offer(self) -> delivery_store.HandOff | None:
        """Return the room for deliveries that a publish in this process may lease to this worker.

        The room and each webhook's quota are counted as a claim counts them, so deliveries
        handed over wait in the same queue, within the same bounds. None while the worker
        is not sending, is stopping, or cannot record attempts.
        """
        if not self._accepting or self._stopping.is_set() or self._write_failures:
            return None
        room = self._queue_limit - len(self._queue)
        if room <= 0:
            return None
        quotas = self._throttles.claim_quotas(time.monotonic(), self._queue.counts())
        return delivery_store.HandOff(
            owner=self.owner,
            lease_ms=int(self.settings.lease_seconds * 1000),
            room=room,
            quotas=quotas,
            default_quota=self._throttles.default_claim_quota,
            concurrency_factor=PREFETCH_WINDOWS,
        )

    def accept(self, deliveries: list[delivery_store.ClaimedDelivery], leased_at: float) -> None:
        """Queue deliveries a publish stored leased to this worker, and start what budgets allow.

        `leased_at` is a monotonic time no later than the start of their leases.
        """
        metrics.HANDED_OFF.inc(len(deliveries))
        self._enqueue(deliveries, leased_at)

    def rows_left(self, webhook_ids: Collection[str]) -> None:
        """Note that a publish left deliveries of these webhooks unleased for their quota.

        The worker claims them once one of the webhooks has room again.
        """
        self._skipped.update(webhook_ids)

    def _notify_from_thread(self) -> None:
        self._loop.call_soon_threadsafe(self.wake.set)

    def stop(self) -> None:
        """Stop claiming; in-flight deliveries get `shutdown_timeout` seconds to finish."""
        if not self._stopping.is_set():
            self._stop_deadline = time.monotonic() + self.settings.shutdown_timeout
            logger.info(
                "delivery worker stopping",
                extra={"worker": self.owner, "in_flight": len(self._in_flight)},
            )
        self._stopping.set()
        self.wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but return at once when the worker is asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        address_policy = AddressPolicy(
            self.settings.allow_private_networks, self.settings.allowed_networks
        )
        self._loop = asyncio.get_running_loop()
        logger.info("delivery worker started", extra={"worker": self.owner})
        async with Sender(
            address_policy,
            timeout=self.settings.request_timeout,
            body_limit=self.settings.response_body_limit,
        ) as sender:
            self._sender = sender
            self._accepting = True
            background = [
                asyncio.create_task(self._flush_loop()),
                asyncio.create_task(self._heartbeat_loop()),
                asyncio.create_task(self._probe_loop()),
                *(asyncio.create_task(loop) for loop in self._optional_loops()),
            ]
            try:
                await self._claim_loop()
            finally:
                self._accepting = False
                await self._drain()
                async with self._write_lock:
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                await self._flush_all(deadline=time.monotonic() + STOP_WRITE_SECONDS)
                self._executor.shutdown(wait=True)
        logger.info("delivery worker stopped", extra={"worker": self.owner})

    def _optional_loops(self) -> list[Coroutine[Any, Any, None]]:
        loops = []
        if is_postgresql(self.engine):
            listener = DeliveryListener(libpq_url(self.engine), self.notify, worker=self.owner)
            loops.append(listener.run())
            loops.append(self._vacuum_loop())
        if self.settings.retention > 0:
            loops.append(self._retention_loop())
        return loops

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            if self.wake.is_set():
                self._rows_may_wait = True
            # Cleared before the claim, not after it, so a wake-up or a freed slot that
            # arrives while the claim runs is not lost.
            self.wake.clear()
            self._refill.clear()
            await self._return_stale()
            self._dispatch_all()
            # Handed-off deliveries drain the queue and request a refill after nearly
            # every publish group. An empty claim for each held SQLite's write lock.
            if self._claim_needed() and await self._claim_once():
                continue
            await self._wait_for_work()

    def _capacity(self) -> int:
        """Deliveries that may start now: sent but unrecorded ones count until written."""
        unrecorded = len(self._in_flight) + len(self._records) + len(self._writing)
        return self.settings.max_in_flight - unrecorded

    async def _claim_once(self) -> bool:
        """Claim due deliveries, start what budgets allow, and return whether to claim again."""
        room = self._queue_limit - len(self._queue)
        if room <= 0 or self._write_failures:
            # While finished attempts cannot be written, claiming more would only let
            # their leases run out and send them twice.
            return False
        now = time.monotonic()
        quotas = self._throttles.claim_quotas(now, self._queue.counts())
        excluded = [w for w, quota in quotas.items() if quota <= 0]
        limit = min(room, CLAIM_BATCH_SIZE)
        # The leases run from this moment at the latest: the database sets them from the
        # wall clock read below.
        leased_at = time.monotonic()
        self._next_poll_at = leased_at + self.settings.poll_interval
        # Cleared before the claim and merged after it, so that what a release or a
        # publish notes while the claim runs is kept.
        self._rows_may_wait = False
        skipped_before, self._skipped = self._skipped, set()
        try:
            batch = await self._db(
                delivery_store.claim_due,
                self.engine,
                owner=self.owner,
                limit=limit,
                lease_ms=int(self.settings.lease_seconds * 1000),
                now=ids.now_ms(),
                exclude_webhooks=excluded,
                quotas={w: quota for w, quota in quotas.items() if quota > 0},
                default_quota=self._throttles.default_claim_quota,
                concurrency_factor=PREFETCH_WINDOWS,
            )
        except DATABASE_ERRORS as error:
            self._claim_failures += 1
            delay = database_retry_delay(self._claim_failures)
            logger.warning(
                "claim failed; database unavailable, will retry",
                extra={
                    "worker": self.owner,
                    "failures": self._claim_failures,
                    "retry_in_s": delay,
                    "error": str(error)[:200],
                },
            )
            self._claim_failed(skipped_before)
            await self._pause(delay)
            return False
        except Exception:
            # Not a database outage, so it may repeat. Ending the claim loop would stop
            # every delivery of this worker until a restart, so wait and claim again.
            self._claim_failures += 1
            delay = database_retry_delay(self._claim_failures)
            logger.exception(
                "claim failed unexpectedly; will retry",
                extra={"worker": self.owner, "failures": self._claim_failures, "retry_in_s": delay},
            )
            self._claim_failed(skipped_before)
            await self._pause(delay)
            return False
        self._claim_failures = 0
        metrics.CLAIMS.labels("found" if batch else "empty").inc()
        self._enqueue(self._not_own(batch), leased_at)
        full = len(batch) >= limit
        saturated = self._saturated(batch, quotas)
        # Rows may wait past the batch's end or past a webhook's quota. Only a claim that
        # saw every due row, apart from those of the webhooks it skipped, lets refills rest.
        self._rows_may_wait = self._rows_may_wait or full or saturated
        self._skipped.update(excluded)
        return full or (saturated and self._backlog_claim_due())

    def _not_own(
        self, batch: list[delivery_store.ClaimedDelivery]
    ) -> list[delivery_store.ClaimedDelivery]:
        """Leave out claimed rows that this worker already has: queued, in flight or sent
        and not yet recorded.

        A claim takes rows whose lease ran out. After renewals failed for a whole lease,
        those include this worker's own deliveries. The claim leased them to it again,
        so their pending records still move them on.
        """
        if not batch:
            return batch
        own = self._own_delivery_ids()
        return [delivery for delivery in batch if delivery.id not in own]

    def _own_delivery_ids(self) -> set[str]:
        """Return the ids of this worker's deliveries: queued, in flight or unrecorded."""
        return {
            *self._in_flight,
            *(delivery.id for delivery in self._queue),
            *(record.delivery_id for record in (*self._records, *self._writing)),
        }

    def _unconfirmed_before(self, now: float) -> float:
        """Return the time before which a lease confirmation is too old to send on."""
        return now - self.settings.lease_seconds * LEASE_CONFIRMED_FRACTION

    def _claim_failed(self, skipped_before: set[str]) -> None:
        """Keep what was known before a claim that failed: it saw no rows."""
        self._rows_may_wait = True
        self._skipped.update(skipped_before)

    def _claim_needed(self) -> bool:
        """Return whether a claim may find rows: some may wait, or a skipped webhook has room.

        Next to an endpoint that hangs, each refill of the healthy endpoint used to claim,
        and each claim read past the hanging endpoint's growing backlog only to skip it.
        """
        now = time.monotonic()
        if now >= self._next_poll_at:
            # Owed until a claim runs, even if this one finds no room to claim into.
            self._rows_may_wait = True
            self._next_poll_at = now + self.settings.poll_interval
        if self._rows_may_wait:
            return True
        if not self._skipped:
            return False
        quotas = self._throttles.claim_quotas(now, self._queue.counts())
        # A webhook whose throttle went idle is gone from `quotas`: a claim gives it the default.
        return any(quotas.get(webhook_id, 1) > 0 for webhook_id in self._skipped)

    def _saturated(
        self, batch: list[delivery_store.ClaimedDelivery], quotas: dict[str, int]
    ) -> bool:
        """Return whether a webhook's quota cut the batch short, which may have left rows behind."""
        counts = Counter(delivery.webhook_id for delivery in batch)
        concurrency = {delivery.webhook_id: delivery.endpoint.max_concurrency for delivery in batch}
        default = self._throttles.default_claim_quota
        return any(
            count
            >= delivery_store.claim_quota_of(
                webhook_id, concurrency[webhook_id], quotas, default, PREFETCH_WINDOWS
            )
            for webhook_id, count in counts.items()
        )

    def _backlog_claim_due(self) -> bool:
        """Return whether to claim again at once, past the backlog of the webhooks that are full.

        A batch cut short by a webhook's quota may hide other webhooks' rows behind that
        webhook's backlog: the next claim skips the full webhook to reach them. That claim
        reads past the whole backlog, so it runs at most every `BEHIND_BACKLOG_SECONDS`.
        """
        now = time.monotonic()
        if now - self._backlog_claimed_at >= BEHIND_BACKLOG_SECONDS:
            self._backlog_claimed_at = now
            return True
        return False

    def _enqueue(self, batch: list[delivery_store.ClaimedDelivery], leased_at: float) -> None:
        now = time.monotonic()
        for delivery in batch:
            endpoint = delivery.endpoint
            self._throttles.configure(
                delivery.webhook_id, endpoint.max_concurrency, endpoint.rate_limit, now
            )
            self._queue.put(delivery, now, leased_at)
        for webhook_id in {delivery.webhook_id for delivery in batch}:
            self._dispatch(webhook_id)

    def _dispatch_all(self) -> None:
        for webhook_id in self._queue.webhooks():
            self._dispatch(webhook_id)

    def _dispatch(self, webhook_id: str) -> None:
        """Start the webhook's waiting deliveries while its budget and the worker's allow."""
        if self._write_failures or self._stopping.is_set():
            return
        throttle = self._throttles.endpoints.get(webhook_id)
        if throttle is None:
            return
        now = time.monotonic()
        # Completions start deliveries too, so the claim loop's check of unconfirmed
        # leases (`_return_stale`) may not have run since a renewal was missed.
        leased_before = self._unconfirmed_before(now)
        lapsed: list[delivery_store.ClaimedDelivery] = []
        started = 0
        while self._queue.waiting(webhook_id) and self._capacity() > 0:
            if throttle.allowance(now) <= 0:
                break
            delivery = self._queue.take_confirmed(webhook_id, leased_before, lapsed)
            if delivery is None:
                break
            self._launch(delivery, throttle, now)
            started += 1
        if lapsed:
            # Handed back by the claim loop, which never claims at the same time.
            self._lapsed.extend(item.id for item in lapsed)
            self._refill.set()
        if started and self._queue.waiting(webhook_id) <= int(throttle.window):
            # Down to its last window of waiting deliveries: claim more in time.
            self._refill.set()
        if self._queue.waiting(webhook_id):
            self._dispatch_when_ready(webhook_id, throttle.ready_at(now), now)

    def _dispatch_when_ready(self, webhook_id: str, ready_at: float | None, now: float) -> None:
        """Try the webhook again when its rate limit or pause next lets a delivery start.

        Without this, a delivery that finished while its endpoint was out of tokens left
        the waiting ones to the next poll.
        """
        if ready_at is None or webhook_id in self._dispatch_timers:
            return

        def dispatch() -> None:
            self._dispatch_timers.pop(webhook_id, None)
            self._dispatch(webhook_id)

        self._dispatch_timers[webhook_id] = self._loop.call_later(
            max(ready_at - now, 0.0), dispatch
        )

    def _launch(
        self, delivery: delivery_store.ClaimedDelivery, throttle: EndpointThrottle, now: float
    ) -> None:
        throttle.start(now)
        self._in_flight[delivery.id] = delivery.webhook_id
        metrics.IN_FLIGHT.inc()
        task = asyncio.create_task(self._deliver(delivery, throttle, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _return_stale(self) -> None:
        """Hand back deliveries that waited too long, so their webhook is read again, and
        those whose lease was not confirmed recently, so they are never sent after it lapses."""
        now = time.monotonic()
        stale = self._queue.remove_stale(
            queued_before=now - MAX_QUEUED_SECONDS,
            leased_before=self._unconfirmed_before(now),
        )
        returned = [delivery.id for delivery in stale]
        if self._lapsed:
            # A claim since may have leased some of them to this worker again: keep those.
            own = self._own_delivery_ids()
            returned += [delivery_id for delivery_id in self._lapsed if delivery_id not in own]
            self._lapsed = []
        if returned:
            await self._release(returned)

    async def _start_probes(self, probes: list[delivery_store.ClaimedDelivery]) -> None:
        """Start probes at once: a probe is the one delivery an open circuit lets through."""
        now = time.monotonic()
        for delivery in probes:
            endpoint = delivery.endpoint
            throttle = self._throttles.configure(
                delivery.webhook_id, endpoint.max_concurrency, endpoint.rate_limit, now
            )
            self._launch(delivery, throttle, now)

    async def _probe_loop(self) -> None:
        """Claim one probe delivery for each open circuit that is due for one."""
        hold_ms = int(max(self.settings.lease_seconds, self.settings.circuit_probe_interval) * 1000)
        interval = min(self.settings.circuit_probe_interval, self.settings.poll_interval)
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set() or self._capacity() <= 0 or self._write_failures:
                continue
            try:
                probes = await self._db(
                    delivery_store.claim_probes,
                    self.engine,
                    owner=self.owner,
                    lease_ms=int(self.settings.lease_seconds * 1000),
                    now=ids.now_ms(),
                    hold_ms=hold_ms,
                )
            except DATABASE_ERRORS as error:
                logger.warning(
                    "probe claim failed; will retry",
                    extra={"worker": self.owner, "error": str(error)[:200]},
                )
                continue
            except Exception:
                # Open circuits close only through probes, so this loop must survive any error.
                logger.exception(
                    "probe claim failed unexpectedly; will retry", extra={"worker": self.owner}
                )
                continue
            await self._start_probes(probes)

    async def _release(self, delivery_ids: list[str]) -> None:
        """Hand leases back; if the database is down they expire on their own instead."""
        try:
            await self._db(
                delivery_store.release_leases,
                self.engine,
                owner=self.owner,
                delivery_ids=delivery_ids,
            )
            self._rows_may_wait = True
        except DATABASE_ERRORS as error:
            logger.warning(
                "releasing leases failed; they will expire instead",
                extra={"worker": self.owner, "count": len(delivery_ids), "error": str(error)[:200]},
            )

    async def _wait_for_work(self) -> None:
        waiters = [
            asyncio.create_task(self.wake.wait()),
            asyncio.create_task(self._refill.wait()),
        ]
        now = time.monotonic()
        timeout = max(self._next_poll_at - now, 0.0)
        # A paused or rate-limited endpoint may send again before the next poll.
        ready_at = self._throttles.next_ready(now)
        if ready_at is not None:
            timeout = min(timeout, max(ready_at - now, 0.0))
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if ready_at is not None and time.monotonic() >= ready_at:
            # A publish skipped the webhook's rows while it was paused, and nothing else
            # marks them: claim now, whichever waiter ended the wait.
            self._rows_may_wait = True

    async def _deliver(
        self, delivery: delivery_store.ClaimedDelivery, throttle: EndpointThrottle, started: float
    ) -> None:
        result: SendResult | None = None
        try:
            secrets = self._secrets.active(delivery.secrets_json, ids.now_ms())
            headers = delivery_headers(
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                delivery_id=delivery.id,
                secrets=secrets,
                body=delivery.body,
                timestamp=int(time.time()),
            )
            attempted_at = ids.now_ms()
            result = await self._sender.send(
                delivery.url, delivery.body, headers, timeout=delivery.endpoint.timeout
            )
            policy = self._policies.for_endpoint(delivery.endpoint)
            record = attempt_record(delivery, result, policy, attempted_at)
            self._records.append(record)
            self._flush_needed.set()
            self._observe(delivery, result, record, throttle)
            if not result.succeeded and self._queue.waiting(delivery.webhook_id):
                # A failing endpoint gets nothing claimed ahead: hand its waiting rows back.
                waiting = self._queue.remove_webhook(delivery.webhook_id)
                await self._release([waiting_delivery.id for waiting_delivery in waiting])
        except Exception:
            logger.exception(
                "delivery crashed; its lease will expire and it will be retried",
                extra={"delivery_id": delivery.id, "webhook_id": delivery.webhook_id},
            )
        finally:
            self._in_flight.pop(delivery.id, None)
            metrics.IN_FLIGHT.dec()
            congested = result is not None and is_congestion(result.status_code, result.timed_out)
            succeeded = result is not None and result.succeeded
            throttle.finish(
                started_at=started, succeeded=succeeded, congested=congested, now=time.monotonic()
            )
            self._dispatch(delivery.webhook_id)

    def _observe(
        self,
        delivery: delivery_store.ClaimedDelivery,
        result: SendResult,
        record: delivery_store.AttemptRecord,
        throttle: EndpointThrottle,
    ) -> None:
        """Log and count one attempt, and feed its outcome back to the endpoint's health."""
        outcome = delivery_outcome(record)
        log_outcome(delivery, result, record, outcome)
        metrics.observe_attempt(result, outcome)

        paused_until = None
        pause = pause_seconds(result.status_code, result.retry_after, self.settings.retry_after_cap)
        if pause:
            throttle.pause(time.monotonic() + pause)
            paused_until = ids.now_ms() + int(pause * 1000)

        endpoint_outcome = EndpointOutcome(
            webhook_id=delivery.webhook_id,
            succeeded=result.succeeded,
            attempted_at=record.attempted_at,
            probe=delivery.probe,
            status_code=result.status_code,
            error=result.error,
            paused_until=paused_until,
        )
        self._health.add(endpoint_outcome, healthy_before=delivery.endpoint.healthy)

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_needed.wait()
            await asyncio.sleep(FLUSH_MAX_WAIT_SECONDS)
            self._flush_needed.clear()
            await self._flush_all()

    async def _flush_all(self, deadline: float | None = None) -> None:
        """Write every finished attempt; on a database error keep them and try again.

        With a deadline (at shutdown) it gives up then: the leases of the attempts it
        could not record expire, and another worker sends those deliveries again.
        """
        while self._records:
            if await self._write_once():
                continue
            if deadline is not None and time.monotonic() >= deadline:
                logger.error(
                    "attempts not recorded before exit; they will be sent again",
                    extra={"worker": self.owner, "count": len(self._records)},
                )
                return
            await asyncio.sleep(database_retry_delay(self._write_failures))

    async def _write_once(self) -> bool:
        async with self._write_lock:
            batch, self._records = self._records, []
            if not batch:
                return True
            self._writing = batch
            try:
                await self._db(self._write, batch)
            except DATABASE_ERRORS as error:
                self._records = batch + self._records
                self._write_failures += 1
                logger.warning(
                    "recording attempts failed; will retry",
                    extra={
                        "worker": self.owner,
                        "count": len(self._records),
                        "failures": self._write_failures,
                        "error": str(error)[:200],
                    },
                )
                return False
            except REJECTED_DATA as rejection:
                # One bad record must not hold up the others: find it by halving the batch.
                unwritten, failure = await self._write_rejected(batch, rejection)
                if unwritten:
                    self._records = unwritten + self._records
                    self._write_failures += 1
                    logger.error(
                        "recording attempts failed; will retry",
                        extra={
                            "worker": self.owner,
                            "count": len(self._records),
                            "error": str(failure)[:200],
                        },
                        exc_info=failure,
                    )
                    return False
            except Exception:
                # Not a database outage, so it may repeat, but dropping the batch would let
                # its leases expire and send those deliveries twice. Keep it, and stop claiming.
                self._records = batch + self._records
                self._write_failures += 1
                logger.exception(
                    "recording attempts failed unexpectedly; will retry",
                    extra={"worker": self.owner, "count": len(self._records)},
                )
                return False
            finally:
                self._writing = []
        if self._write_failures:
            # Claiming stopped while writes failed: resume it.
            self._write_failures = 0
            self._refill.set()
        # Recorded attempts no longer count against capacity: start waiting deliveries.
        self._dispatch_all()
        return True

    async def _write_rejected(
        self, records: list[delivery_store.AttemptRecord], rejection: Exception
    ) -> tuple[list[delivery_store.AttemptRecord], Exception | None]:
        """Write records that the database rejected together, in halves, and return those
        left unwritten with the error that left them.

        Halving finds k rejected records of n in about 2 * k * log2(n) writes. A single
        rejected record is written again without its error text and response body.
        """
        if len(records) == 1:
            return await self._write_without_details(records[0], rejection)
        middle = len(records) // 2
        unwritten: list[delivery_store.AttemptRecord] = []
        last_error: Exception | None = None
        for part in (records[:middle], records[middle:]):
            try:
                await self._db(self._record, part)
                continue
            except REJECTED_DATA as part_rejection:
                left, error = await self._write_rejected(part, part_rejection)
            except Exception as failure:  # noqa: BLE001 - kept for the caller to retry
                left, error = part, failure
            unwritten += left
            last_error = error or last_error
        return unwritten, last_error

    async def _write_without_details(
        self, record: delivery_store.AttemptRecord, rejection: Exception
    ) -> tuple[list[delivery_store.AttemptRecord], Exception | None]:
        try:
            await self._db(self._record, [without_details(record)])
        except Exception as failure:  # noqa: BLE001 - kept for the caller to retry
            return [record], failure
        logger.error(
            "attempt recorded without its error text and response body, "
            "which the database rejected",
            extra={
                "worker": self.owner,
                "delivery_id": record.delivery_id,
                "webhook_id": record.webhook_id,
                "error": str(rejection)[:200],
            },
        )
        return [], None

    def _record(self, records: list[delivery_store.AttemptRecord]) -> None:
        delivery_store.record_attempts(self.engine, owner=self.owner, records=records)

    def _write(self, batch: list[delivery_store.AttemptRecord]) -> None:
        # Health is written first, so a webhook that a 410 Gone disables is disabled
        # before its delivery shows as failed.
        self._health.write()
        delivery_store.record_attempts(self.engine, owner=self.owner, records=batch)

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            # Attempts waiting to be recorded keep their leases too, so a database outage
            # shorter than the lease does not make them due for a second send.
            leased = list(self._own_delivery_ids())
            listed_at = time.monotonic()
            until = ids.now_ms() + int(self.settings.lease_seconds * 1000)
            try:
                still_leased = await self._db(
                    delivery_store.extend_leases,
                    self.engine,
                    owner=self.owner,
                    delivery_ids=leased,
                    until=until,
                )
            except DATABASE_ERRORS as error:
                logger.warning(
                    "lease renewal failed; will retry",
                    extra={"worker": self.owner, "count": len(leased), "error": str(error)[:200]},
                )
                continue
            lost = self._queue.renewed(listed_at, still_leased)
            if lost:
                # Cancelled with their webhook, or claimed by another worker after this
                # one missed renewals: either way they are no longer this worker's to send.
                logger.warning(
                    "claimed deliveries no longer leased; dropped unsent",
                    extra={"worker": self.owner, "count": len(lost)},
                )

    async def _drain(self) -> None:
        """Let in-flight deliveries finish until the shutdown deadline, then hand back the rest."""
        self.stop()
        waiting = self._queue.remove_all()
        if waiting:
            await self._release([delivery.id for delivery in waiting])
        if self._tasks:
            remaining = max(self._stop_deadline - time.monotonic(), 0.0)
            await asyncio.wait(list(self._tasks), timeout=remaining)
        unfinished = list(self._in_flight)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if unfinished:
            logger.warning(
                "shutdown deadline passed; handing unfinished deliveries back",
                extra={"worker": self.owner, "count": len(unfinished)},
            )
            await self._release(unfinished)

    async def _retention_loop(self) -> None:
        """Purge expired events now and then; a shared row lets one worker run each purge."""
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(
                    retention.purge_if_due,
                    self.engine,
                    retention_seconds=self.settings.retention,
                    interval_seconds=self.settings.purge_interval,
                    should_stop=self._stopping.is_set,
                )
            except DBAPIError as error:
                logger.warning(
                    "purge of expired events failed; will retry",
                    extra={"worker": self.owner, "error": str(error)[:200]},
                )
            await self._pause(self.settings.purge_interval)

    async def _vacuum_loop(self) -> None:
        """Vacuum the deliveries table when its dead rows would slow the claims down."""
        while not self._stopping.is_set():
            await self._pause(vacuum.VACUUM_CHECK_SECONDS)
            if self._stopping.is_set():
                return
            try:
                dead = await asyncio.to_thread(vacuum.vacuum_if_needed, self.engine)
            except DBAPIError as error:
                logger.warning(
                    "vacuum of deliveries failed; will retry",
                    extra={"worker": self.owner, "error": str(error)[:200]},
                )
                continue
            if dead is not None:
                logger.info("deliveries vacuumed", extra={"worker": self.owner, "dead_rows": dead})
