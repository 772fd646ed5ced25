"""Rate-limit bucket stores: process memory, or the database when many processes share a limit.

`MemoryRateLimiter` keeps each bucket in this process. It costs no I/O, and it is exact
when one API process serves the keys, as with SQLite. With several API processes each
would admit the whole limit, so `DatabaseRateLimiter` keeps one row per key instead.

A database round trip per request would add about a millisecond to every request, so
a process reserves a few tokens at once (a lease) and spends them locally:

- A lease holds at most `rate × LEASE_SECONDS` tokens (and a quarter of the burst), and
  it expires after LEASE_SECONDS. A token is therefore spent at most LEASE_SECONDS
  after it left the shared bucket, and in any interval all processes together admit at
  most `rate × LEASE_SECONDS` requests more than one exact bucket would.
- Tokens left in an expired lease go back to the shared bucket with the next
  reservation of that key, so a steady client is not charged for them. Until then
  other processes cannot use them, and may reject a request slightly early.
- A rejected key is rejected locally until its bucket refills one token, so a client
  that keeps sending while throttled costs no database work.
- Keys limited to fewer than `1 / LEASE_SECONDS` (20) requests per second get leases
  of one token: an exact shared bucket, with one round trip per request.
- `acquire_cached` spends a leased token or repeats a block without I/O, so an event
  loop can call it and go to a thread only for a reservation.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import Engine

from wp_llm.server.config import RateLimitStore
from wp_llm.server.store import usage as usage_store
from wp_llm.server.usage.ratelimit import (
    MIN_RETRY_AFTER_SECONDS,
    BucketState,
    RateDecision,
    RateLimit,
    TokenBucket,
)

logger = logging.getLogger(__name__)

LEASE_SECONDS = 0.05
LEASE_MAX_BURST_SHARE = 0.25


class RateLimiter(Protocol):
    """Takes one request's token from an API key's bucket."""

    def acquire(self, key_id: str, limit: RateLimit, now: float) -> RateDecision: ...

    def acquire_cached(self, key_id: str, limit: RateLimit, now: float) -> RateDecision | None:
        """Take a token without I/O or waiting, or return None when that is not possible."""


class MemoryRateLimiter:
    """Buckets in this process's memory: exact for one process, no I/O."""

    def __init__(self, policy: TokenBucket | None = None) -> None:
        self._policy = policy or TokenBucket()
        self._buckets: dict[str, BucketState] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str, limit: RateLimit, now: float) -> RateDecision:
        with self._lock:
            grant = self._policy.take(self._buckets.get(key_id), limit, now)
            self._buckets[key_id] = grant.state
        return grant.decision

    def acquire_cached(self, key_id: str, limit: RateLimit, now: float) -> RateDecision | None:
        return self.acquire(key_id, limit, now)


def lease_size(limit: RateLimit) -> int:
    """Return how many tokens one reservation takes for a key with this limit."""
    by_rate = math.floor(limit.rate * LEASE_SECONDS)
    by_burst = math.floor(limit.burst * LEASE_MAX_BURST_SHARE)
    return max(1, min(by_rate, by_burst))


@dataclass(frozen=True)
class _Block:
    """A key this process rejects without asking the database, until `until`."""

    until: float
    decision: RateDecision
    # The limit in force when blocked; a changed limit lifts the block.
    limit: RateLimit

    def decision_at(self, now: float) -> RateDecision:
        return replace(
            self.decision, retry_after=max(MIN_RETRY_AFTER_SECONDS, math.ceil(self.until - now))
        )


@dataclass
class _Lease:
    """Tokens this process reserved from a key's shared bucket."""

    tokens: int
    expires: float
    # The decision at reservation time, whose headers the leased requests reuse.
    decision: RateDecision


class DatabaseRateLimiter:
    """Buckets in database rows shared by every API process, reserved a few tokens at a time."""

    def __init__(self, engine: Engine, policy: TokenBucket | None = None) -> None:
        self._engine = engine
        self._policy = policy or TokenBucket()
        self._leases: dict[str, _Lease] = {}
        self._blocks: dict[str, _Block] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str, limit: RateLimit, now: float) -> RateDecision:
        with self._key_lock(key_id):
            decision = self._decide_locally(key_id, limit, now)
            if decision is not None:
                return decision
            lease = self._leases.get(key_id)
            return self._reserve(key_id, limit, now, returned=lease.tokens if lease else 0)

    def acquire_cached(self, key_id: str, limit: RateLimit, now: float) -> RateDecision | None:
        """Spend a leased token or repeat a block, or return None when the database must decide.

        Also return None while another thread has locked the key, such as for a reservation.
        """
        lock = self._key_lock(key_id)
        if not lock.acquire(blocking=False):
            return None
        try:
            return self._decide_locally(key_id, limit, now)
        finally:
            lock.release()

    def _decide_locally(self, key_id: str, limit: RateLimit, now: float) -> RateDecision | None:
        block = self._blocks.get(key_id)
        if block is not None and block.limit == limit and now < block.until:
            return block.decision_at(now)

        lease = self._leases.get(key_id)
        if lease is not None and lease.tokens > 0 and now < lease.expires:
            lease.tokens -= 1
            return replace(lease.decision, remaining=lease.decision.remaining + lease.tokens)
        return None

    def _reserve(self, key_id: str, limit: RateLimit, now: float, returned: int) -> RateDecision:
        requested = lease_size(limit)
        grant = usage_store.take_tokens(
            self._engine,
            key_id,
            lambda state: self._policy.take(state, limit, now, requested, returned=returned),
        )
        if grant.granted == 0:
            self._leases.pop(key_id, None)
            until = self._policy.next_token_at(grant.state, limit)
            self._blocks[key_id] = _Block(until, grant.decision, limit)
            return grant.decision

        # This request spends one token; the rest stay leased to this process.
        leased = grant.granted - 1
        self._leases[key_id] = _Lease(leased, now + LEASE_SECONDS, grant.decision)
        return replace(grant.decision, remaining=grant.decision.remaining + leased)

    def _key_lock(self, key_id: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key_id, threading.Lock())


def create_rate_limiter(engine: Engine, store: RateLimitStore) -> RateLimiter:
    """Return the limiter for the setting; `auto` picks memory on SQLite, the database otherwise."""
    if store == "auto":
        store = "memory" if engine.dialect.name == "sqlite" else "database"
    logger.debug("rate limiter created", extra={"store": store, "database": engine.dialect.name})
    if store == "memory":
        return MemoryRateLimiter()
    return DatabaseRateLimiter(engine)
