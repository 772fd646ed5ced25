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
- A busy key renews its lease ahead: once a lease that served at least
  MIN_SPENT_TO_RENEW requests is half spent or half over, a background thread reserves
  the next one while requests spend the rest. Such a key waits for the shared bucket
  only when a renewal has not landed before its lease runs out. Requests that arrive
  during a reservation in the foreground wait for it in threads of their own. What a
  replaced lease did not spend goes back with the next reservation, so a process has
  at most two leases of a key.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from wp_llm.server.config import RateLimitStore
from wp_llm.server.store import usage as usage_store
from wp_llm.server.usage.ratelimit import (
    MIN_RETRY_AFTER_SECONDS,
    BucketState,
    Grant,
    RateDecision,
    RateLimit,
    TokenBucket,
)

logger = logging.getLogger(__name__)

LEASE_SECONDS = 0.05
LEASE_MAX_BURST_SHARE = 0.25
# Requests a lease must have served before it is renewed ahead: at least 200 a second for a
# key whose lease lasts its 0.05 s. Renewing at half time or half tokens makes about twice
# as many bucket transactions, which pays off only where many requests would otherwise
# wait for a reservation. Without this, a key sending every 30 ms made one per request.
MIN_SPENT_TO_RENEW = 10


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
    # Tokens at reservation time, after the reserving request took its own.
    reserved: int
    # Whether the next lease was requested already. The flag keeps a lease to one renewal.
    renewing: bool = False

    def renewal_due(self, now: float) -> bool:
        """Return whether a request spending from this lease should request the next one."""
        if self.renewing or self.reserved - self.tokens < MIN_SPENT_TO_RENEW:
            return False
        half_spent = self.tokens * 2 <= self.reserved
        return half_spent or now >= self.expires - LEASE_SECONDS / 2


@dataclass(frozen=True)
class _Renewal:
    """A lease to reserve in the background: the key, its limit, and the time it was due."""

    key_id: str
    limit: RateLimit
    now: float
    lease: _Lease


class DatabaseRateLimiter:
    """Buckets in database rows shared by every API process, reserved a few tokens at a time."""

    def __init__(
        self,
        engine: Engine,
        policy: TokenBucket | None = None,
        *,
        background_renewals: bool = True,
    ) -> None:
        """With `background_renewals=False`, the request that starts a renewal runs it."""
        self._engine = engine
        self._policy = policy or TokenBucket()
        self._background_renewals = background_renewals
        self._leases: dict[str, _Lease] = {}
        self._blocks: dict[str, _Block] = {}
        # Tokens of leases that ran out or were replaced before they were spent; they go
        # back to the shared bucket with the key's next reservation.
        self._unspent: dict[str, int] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._renewals: queue.SimpleQueue[_Renewal] = queue.SimpleQueue()
        self._renewer: threading.Thread | None = None

    def acquire(self, key_id: str, limit: RateLimit, now: float) -> RateDecision:
        with self._key_lock(key_id):
            decision, renewal = self._decide_locally(key_id, limit, now)
            if decision is None:
                self._retire_lease(key_id)
                decision = self._reserve(key_id, limit, now)
        self._start_renewal(renewal)
        return decision

    def acquire_cached(self, key_id: str, limit: RateLimit, now: float) -> RateDecision | None:
        """Spend a leased token or repeat a block, or return None when the database must decide.

        Also return None while another thread has locked the key, such as for a reservation.
        """
        lock = self._key_lock(key_id)
        if not lock.acquire(blocking=False):
            return None
        try:
            decision, renewal = self._decide_locally(key_id, limit, now)
        finally:
            lock.release()
        self._start_renewal(renewal)
        return decision

    def _decide_locally(
        self, key_id: str, limit: RateLimit, now: float
    ) -> tuple[RateDecision | None, _Renewal | None]:
        """Spend a leased token or repeat a block; also return the lease's renewal if now due."""
        block = self._blocks.get(key_id)
        if block is not None and block.limit == limit and now < block.until:
            return block.decision_at(now), None

        lease = self._leases.get(key_id)
        if lease is None or lease.tokens <= 0 or now >= lease.expires:
            return None, None
        lease.tokens -= 1
        decision = replace(lease.decision, remaining=lease.decision.remaining + lease.tokens)
        if not lease.renewal_due(now):
            return decision, None
        lease.renewing = True
        return decision, _Renewal(key_id, limit, now, lease)

    def _retire_lease(self, key_id: str) -> None:
        """Drop the key's lease, keeping its unspent tokens to return. Hold the key's lock."""
        lease = self._leases.pop(key_id, None)
        if lease is not None:
            self._keep_unspent(key_id, lease.tokens)

    def _reserve(self, key_id: str, limit: RateLimit, now: float) -> RateDecision:
        """Reserve a lease for a request that spends its first token. Hold the key's lock."""
        grant = self._take(key_id, limit, now)
        if grant.granted == 0:
            until = self._policy.next_token_at(grant.state, limit)
            self._blocks[key_id] = _Block(until, grant.decision, limit)
            return grant.decision

        # This request spends one token; the rest stay leased to this process.
        leased = grant.granted - 1
        self._leases[key_id] = _Lease(leased, now + LEASE_SECONDS, grant.decision, leased)
        return replace(grant.decision, remaining=grant.decision.remaining + leased)

    def _take(self, key_id: str, limit: RateLimit, now: float) -> Grant:
        """Take a lease's worth of tokens from the shared bucket and return the unspent ones.

        The caller need not hold the key's lock: the unspent tokens are handed to one
        reservation at a time, and handed back if it fails.
        """
        requested = lease_size(limit)
        with self._lock:
            returned = self._unspent.pop(key_id, 0)
        try:
            return usage_store.take_tokens(
                self._engine,
                key_id,
                lambda state: self._policy.take(state, limit, now, requested, returned=returned),
            )
        except BaseException:
            self._keep_unspent(key_id, returned)
            raise

    def _keep_unspent(self, key_id: str, tokens: int) -> None:
        if tokens > 0:
            with self._lock:
                self._unspent[key_id] = self._unspent.get(key_id, 0) + tokens

    def _start_renewal(self, renewal: _Renewal | None) -> None:
        """Queue a renewal for the background thread, starting the thread on first use."""
        if renewal is None:
            return
        if not self._background_renewals:
            self._renew_or_log(renewal)
            return
        self._renewals.put(renewal)
        with self._lock:
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="wp-llm-rate-limit", daemon=True
                )
                self._renewer.start()

    def _renew_forever(self) -> None:
        while True:
            self._renew_or_log(self._renewals.get())

    def _renew_or_log(self, renewal: _Renewal) -> None:
        """Renew a lease; on failure, requests reserve in the foreground once it runs out."""
        try:
            self._renew(renewal)
        except SQLAlchemyError as error:
            logger.warning(
                "rate limit lease renewal failed",
                extra={"key_id": renewal.key_id, "error": str(error)[:200]},
            )
        except Exception:
            # One thread renews every key of the process, so it must outlive any error.
            logger.exception(
                "rate limit lease renewal failed unexpectedly", extra={"key_id": renewal.key_id}
            )

    def _renew(self, renewal: _Renewal) -> None:
        """Reserve the next lease of a key and put it in place of the current one.

        The key's lock is not held during the round trip, so requests keep spending the
        current lease meanwhile.
        """
        key_id, limit = renewal.key_id, renewal.limit
        if self._leases.get(key_id) is not renewal.lease:
            # A reservation in the foreground replaced the lease already.
            return
        grant = self._take(key_id, limit, renewal.now)
        if grant.granted == 0:
            # The bucket is empty. The request that finds the current lease spent reserves
            # in the foreground, and blocks the key.
            return
        with self._key_lock(key_id):
            self._retire_lease(key_id)
            self._leases[key_id] = _Lease(
                grant.granted, renewal.now + LEASE_SECONDS, grant.decision, grant.granted
            )

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
