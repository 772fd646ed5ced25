"""Duplicate detection by event id: the `Deduplicator` protocol and an in-memory store.

The service delivers each event at least once, so a receiver can see the same event
twice, even at the same moment. A deduplicator records each event id in one of two
states. `processing`: a handler is running, and the claim expires after
`processing_timeout` so that a copy arriving after a crash gets through. `completed`:
handled, remembered for `ttl`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_PROCESSING_TIMEOUT",
    "DEFAULT_TTL",
    "Deduplicator",
    "MemoryDeduplicator",
    "duration_seconds",
]

# Longer than the service's retry schedule of about three days, so a late retry of an
# event that was already handled is still recognized.
DEFAULT_TTL = timedelta(days=4)
# A handler still running after this long is presumed dead, and its claim lapses.
DEFAULT_PROCESSING_TIMEOUT = timedelta(minutes=10)
DEFAULT_MAX_ENTRIES = 100_000

ClaimState = Literal["processing", "completed"]


@runtime_checkable
class Deduplicator(Protocol):
    """A store of event ids that lets exactly one copy of each event be processed."""

    def claim(self, event_id: str) -> bool:
        """Record the event as processing, and return True only for the first copy, atomically."""
        ...

    def complete(self, event_id: str) -> None:
        """Record that the event was handled, so later copies are skipped for the TTL."""
        ...

    def release(self, event_id: str) -> None:
        """Forget a claim whose handler failed, so the service's retry is processed."""
        ...

    def is_completed(self, event_id: str) -> bool:
        """Check whether the event was handled, as opposed to still being processed."""
        ...


def duration_seconds(value: timedelta | float, name: str) -> float:
    """Convert a duration given as a timedelta or seconds, which must be positive."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ValueError(f"{name} must be a positive duration, got {value!r}")
    return seconds


@dataclass
class _Entry:
    state: ClaimState
    expires_at: float


class MemoryDeduplicator:
    """A thread-safe, in-process deduplicator with a bounded number of entries.

    It suits one process. Several worker processes each have their own memory, so use
    `SQLiteDeduplicator` or `RedisDeduplicator` there. When full, it evicts the oldest
    entries first, and a copy of an evicted event is processed again.
    """

    def __init__(
        self,
        *,
        ttl: timedelta | float = DEFAULT_TTL,
        processing_timeout: timedelta | float = DEFAULT_PROCESSING_TIMEOUT,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._ttl = duration_seconds(ttl, "ttl")
        self._processing_timeout = duration_seconds(processing_timeout, "processing_timeout")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def claim(self, event_id: str) -> bool:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is not None and entry.expires_at > now:
                return False

            self._store(event_id, _Entry("processing", now + self._processing_timeout))
            self._evict(now)
            return True

    def complete(self, event_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._store(event_id, _Entry("completed", now + self._ttl))
            self._evict(now)

    def release(self, event_id: str) -> None:
        with self._lock:
            self._entries.pop(event_id, None)

    def is_completed(self, event_id: str) -> bool:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(event_id)
            return entry is not None and entry.state == "completed" and entry.expires_at > now

    def _store(self, event_id: str, entry: _Entry) -> None:
        self._entries[event_id] = entry
        self._entries.move_to_end(event_id)

    def _evict(self, now: float) -> None:
        # Entries are kept in order of their last write, so the oldest come first.
        while self._entries:
            oldest_id, oldest = next(iter(self._entries.items()))
            if oldest.expires_at > now and len(self._entries) <= self._max_entries:
                return
            del self._entries[oldest_id]
