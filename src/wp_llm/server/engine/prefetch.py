"""Deliveries a worker has claimed ahead of its endpoints' budgets, waiting to be sent.

Claiming is the costly database step of the delivery loop, so a worker claims several
windows' worth of a healthy endpoint's due rows at once and starts each one the moment
a slot of that endpoint frees up. Every waiting row stays leased to this worker.
A row that waits longer than the queue's age limit goes back to the database, so the
next claim reads its webhook again and a changed URL, a disabled webhook or an opened
circuit takes effect within that limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from wp_llm.server.store.deliveries import ClaimedDelivery


class ClaimedQueue:
    """Claimed, unstarted deliveries per webhook, oldest claim first.

    Times are `time.monotonic()` seconds, passed in by the caller.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[float, ClaimedDelivery]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ClaimedDelivery]:
        for queue in self._waiting.values():
            for _, delivery in queue:
                yield delivery

    def webhooks(self) -> list[str]:
        """Webhooks with deliveries waiting, in the order they first got one."""
        return list(self._waiting)

    def counts(self) -> dict[str, int]:
        """Waiting deliveries per webhook that has any."""
        return {webhook_id: len(queue) for webhook_id, queue in self._waiting.items()}

    def waiting(self, webhook_id: str) -> int:
        queue = self._waiting.get(webhook_id)
        return len(queue) if queue else 0

    def put(self, delivery: ClaimedDelivery, now: float) -> None:
        self._waiting.setdefault(delivery.webhook_id, deque()).append((now, delivery))
        self._count += 1

    def take(self, webhook_id: str) -> ClaimedDelivery | None:
        """Remove and return the webhook's oldest waiting delivery, if any."""
        queue = self._waiting.get(webhook_id)
        if not queue:
            return None
        _, delivery = queue.popleft()
        self._count -= 1
        if not queue:
            del self._waiting[webhook_id]
        return delivery

    def remove_webhook(self, webhook_id: str) -> list[ClaimedDelivery]:
        """Remove and return every delivery waiting for one webhook."""
        queue = self._waiting.pop(webhook_id, None)
        if not queue:
            return []
        self._count -= len(queue)
        return [delivery for _, delivery in queue]

    def remove_older_than(self, cutoff: float) -> list[ClaimedDelivery]:
        """Remove and return every delivery claimed before `cutoff`."""
        expired: list[ClaimedDelivery] = []
        for webhook_id in list(self._waiting):
            queue = self._waiting[webhook_id]
            while queue and queue[0][0] < cutoff:
                expired.append(queue.popleft()[1])
            if not queue:
                del self._waiting[webhook_id]
        self._count -= len(expired)
        return expired

    def remove_all(self) -> list[ClaimedDelivery]:
        everything = list(self)
        self._waiting.clear()
        self._count = 0
        return everything
