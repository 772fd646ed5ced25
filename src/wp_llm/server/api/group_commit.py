"""Group commit: the events of requests that arrive together are stored in one transaction.

A transaction costs about as much for one event as for a hundred, and SQLite runs one
write transaction at a time. So while a transaction runs, the requests that arrive
wait in a queue, and the next transaction stores all of them together. A request that
arrives while no transaction runs starts one at once: grouping adds no delay of its
own, only the wait for the transaction ahead.

Each request still gets its own result or error. When the grouped transaction fails, for
example because one account's quota is used up, every request of the group runs again
alone (see `publish_metered_group`). A transaction whose connection was lost during
COMMIT runs again only if a check finds that it did not commit. If it did, each request
gets its stored events, and the deliveries leased to the worker are handed over.

When the process runs a delivery worker, each group first requests a hand-off from it:
the group stores the deliveries the worker has room for already leased to it, and hands
them over once the transaction commits. They start without a claim query, and the
worker is woken only for deliveries left over.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from sqlalchemy import Engine

from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.deliveries import ClaimedDelivery, HandOff

# Events stored by one transaction at most; a batch request larger than this goes alone.
MAX_GROUP_EVENTS = 200


class LocalWorker(Protocol):
    """The delivery worker of this process, as the publishes see it."""

    def offer(self) -> HandOff | None:
        """Return the room the worker has for new deliveries, or None to have none."""

    def accept(self, deliveries: list[ClaimedDelivery], leased_at: float) -> None:
        """Take deliveries stored leased to the worker, leased at monotonic `leased_at`."""

    def rows_left(self, webhook_ids: Collection[str]) -> None:
        """Note that a publish left deliveries of these webhooks unleased for their quota."""


@dataclass
class _Waiting:
    request: usage_store.GroupedPublish
    future: asyncio.Future[usage_store.MeteredBatch]


class GroupCommit:
    """Queues the publishes of one process and stores them in grouped transactions.

    One grouped transaction runs at a time, on PostgreSQL too. On a 2-core machine, with
    one account publishing from 64 connections, one at a time stored 855 events/s. Two
    or four at once stored 589 and 279: their groups were smaller, and each waited for
    the others' lock on the account's counter row.
    """

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], float],
        *,
        default_quota: int,
        thresholds: tuple[int, ...],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._wake = wake
        self._now = now
        self._default_quota = default_quota
        self._thresholds = thresholds
        self._queue: deque[_Waiting] = deque()
        self._storing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: LocalWorker | None = None

    def hand_off_to(self, worker: LocalWorker) -> None:
        """Let the worker of this process take new deliveries as they are stored."""
        self._worker = worker

    async def publish(
        self, account_id: str, items: Sequence[tuple[str, Any]]
    ) -> usage_store.MeteredBatch:
        """Count and store the events of one request, all or none, as `publish_metered_batch`."""
        future: asyncio.Future[usage_store.MeteredBatch] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(_Waiting(usage_store.GroupedPublish(account_id, items), future))
        self._start_next_group()
        # A request cancelled before its group starts (the client went away) is not stored.
        return await future

    def _start_next_group(self) -> None:
        if self._storing:
            return
        group = self._next_group()
        if group:
            self._storing = True
            task = asyncio.get_running_loop().create_task(self._store(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _next_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        events = 0
        while self._queue:
            waiting = self._queue[0]
            if waiting.future.done():
                self._queue.popleft()
                continue
            size = len(waiting.request.items)
            if group and events + size > MAX_GROUP_EVENTS:
                break
            self._queue.popleft()
            group.append(waiting)
            events += size
        return group

    async def _store(self, group: list[_Waiting]) -> None:
        # Taken before the transaction, so the leases it writes run from later than this.
        leased_at = time.monotonic()
        hand_off = self._worker.offer() if self._worker is not None else None
        store = functools.partial(
            usage_store.publish_metered_group,
            self._engine,
            [waiting.request for waiting in group],
            default_quota=self._default_quota,
            thresholds=self._thresholds,
            now=self._now(),
            hand_off=hand_off,
        )
        try:
            results: list[Any] = await anyio.to_thread.run_sync(store)
        except asyncio.CancelledError:
            for waiting in group:
                waiting.future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - every request of the group gets the error
            results = [error] * len(group)
        finally:
            self._storing = False

        self._hand_over(results, hand_off, leased_at)
        for waiting, result in zip(group, results, strict=True):
            if waiting.future.done():
                continue
            if isinstance(result, BaseException):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
        self._start_next_group()

    def _hand_over(self, results: list[Any], hand_off: HandOff | None, leased_at: float) -> None:
        """Pass the worker what the group leased to it, and wake it if a claim could take more.

        Deliveries are handed over even where the client has gone away: they are stored.
        """
        stored = [result for result in results if isinstance(result, usage_store.MeteredBatch)]
        leased = [delivery for batch in stored for delivery in batch.leased]
        if self._worker is not None:
            if leased:
                self._worker.accept(leased, leased_at)
            if hand_off is not None and hand_off.over_quota:
                # Not worth a wake-up, since a claim now would skip them too; the
                # worker claims them once their webhook has room.
                self._worker.rows_left(hand_off.over_quota)
        deliveries = sum(batch.delivery_count for batch in stored)
        if deliveries > len(leased) and (hand_off is None or hand_off.leaves_claimable(deliveries)):
            self._wake()
