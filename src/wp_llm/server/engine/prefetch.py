"""Deliveries a worker has claimed ahead of its endpoints' budgets, waiting to be sent.

Claiming is the costly database step of the delivery loop, so a worker claims several
windows' worth of a healthy endpoint's due rows at once and starts each one the moment
a slot of that endpoint frees up. Every waiting row stays leased to this worker.
A row that waits longer than the queue's age limit goes back to the database, so the
next claim reads its webhook again and a changed URL, a disabled webhook or an opened
circuit takes effect within that limit.

Each waiting row also remembers when its lease was last known to be held: when it was
claimed, then at each renewal that found the row still leased to this worker. A row
whose lease was not confirmed recently goes back too, and a row that a renewal found
leased to another worker is dropped. A worker starved of CPU or cut off from the
database may miss renewals; it must not then send rows another worker has claimed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Iterator

from wp_llm.server.store.deliveries import ClaimedDelivery


class _Waiting:
    __slots__ = ("delivery", "leased_at", "queued_at")

    def __init__(self, delivery: ClaimedDelivery, queued_at: float, leased_at: float) -> None:
        self.delivery = delivery
        self.queued_at = queued_at
        self.leased_at = leased_at


class ClaimedQueue:
    """Claimed, unstarted deliveries per webhook, oldest claim first.

    Times are `time.monotonic()` seconds, passed in by the caller.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, deque[_Waiting]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ClaimedDelivery]:
        for queue in self._waiting.values():
            for entry in queue:
                yield entry.delivery

    def webhooks(self) -> list[str]:
        """Webhooks with deliveries waiting, in the order they first got one."""
        return list(self._waiting)

    def counts(self) -> dict[str, int]:
        """Waiting deliveries per webhook that has any."""
        return {webhook_id: len(queue) for webhook_id, queue in self._waiting.items()}

    def waiting(self, webhook_id: str) -> int:
        queue = self._waiting.get(webhook_id)
        return len(queue) if queue else 0

    def put(self, delivery: ClaimedDelivery, now: float, leased_at: float | None = None) -> None:
        """Queue a delivery claimed by a query that started at `leased_at` (default `now`)."""
        entry = _Waiting(delivery, now, now if leased_at is None else leased_at)
        self._waiting.setdefault(delivery.webhook_id, deque()).append(entry)
        self._count += 1

    def take(self, webhook_id: str) -> ClaimedDelivery | None:
        """Remove and return the webhook's oldest waiting delivery, if any."""
        return self.take_confirmed(webhook_id, -math.inf, [])

    def take_confirmed(
        self, webhook_id: str, leased_before: float, lapsed: list[ClaimedDelivery]
    ) -> ClaimedDelivery | None:
        """Remove and return the webhook's oldest delivery whose lease was last confirmed
        at `leased_before` or later, if any.

        The unconfirmed deliveries ahead of it are removed too and added to `lapsed`:
        they must not be sent, because another worker may have claimed them since.
        """
        queue = self._waiting.get(webhook_id)
        found: ClaimedDelivery | None = None
        while queue and found is None:
            entry = queue.popleft()
            self._count -= 1
            if entry.leased_at < leased_before:
                lapsed.append(entry.delivery)
            else:
                found = entry.delivery
        if queue is not None and not queue:
            del self._waiting[webhook_id]
        return found

    def remove_webhook(self, webhook_id: str) -> list[ClaimedDelivery]:
        """Remove and return every delivery waiting for one webhook."""
        queue = self._waiting.pop(webhook_id, None)
        if not queue:
            return []
        self._count -= len(queue)
        return [entry.delivery for entry in queue]

    def remove_stale(self, queued_before: float, leased_before: float) -> list[ClaimedDelivery]:
        """Remove and return every delivery queued before `queued_before` or whose lease
        was last confirmed before `leased_before`."""
        return self._remove(
            lambda entry: entry.queued_at < queued_before or entry.leased_at < leased_before
        )

    def renewed(self, listed_at: float, still_leased: Collection[str]) -> list[ClaimedDelivery]:
        """Note a lease renewal that listed every delivery queued by `listed_at`.

        Those still leased to this worker (`still_leased`) count as leased from `listed_at`.
        The others belong to another worker now: they are removed and returned.
        """
        for queue in self._waiting.values():
            for entry in queue:
                if entry.queued_at <= listed_at and entry.delivery.id in still_leased:
                    entry.leased_at = max(entry.leased_at, listed_at)
        return self._remove(
            lambda entry: entry.queued_at <= listed_at and entry.delivery.id not in still_leased
        )

    def remove_all(self) -> list[ClaimedDelivery]:
        everything = list(self)
        self._waiting.clear()
        self._count = 0
        return everything

    def _remove(self, doomed: Callable[[_Waiting], bool]) -> list[ClaimedDelivery]:
        removed: list[ClaimedDelivery] = []
        for webhook_id in list(self._waiting):
            queue = self._waiting[webhook_id]
            remaining: deque[_Waiting] = deque()
            for entry in queue:
                if doomed(entry):
                    removed.append(entry.delivery)
                else:
                    remaining.append(entry)
            if not remaining:
                del self._waiting[webhook_id]
            elif len(remaining) != len(queue):
                self._waiting[webhook_id] = remaining
        self._count -= len(removed)
        return removed
