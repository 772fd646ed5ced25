"""The database-backed limiter on a real database: one bucket for several processes.

Two limiter instances on one database stand for two API processes; a manual clock
makes the refill exact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from wp_llm.server.db.schema import rate_limit_buckets
from wp_llm.server.store import usage as usage_store
from wp_llm.server.usage.clock import ManualClock
from wp_llm.server.usage.limiters import LEASE_SECONDS, DatabaseRateLimiter, lease_size
from wp_llm.server.usage.ratelimit import RateLimit

START = 1_700_000_000.0


def bucket_row(engine: Engine, key_id: str) -> tuple[float, int]:
    query = select(rate_limit_buckets.c.tokens, rate_limit_buckets.c.updated).where(
        rate_limit_buckets.c.key_id == key_id
    )
    with engine.connect() as connection:
        row = connection.execute(query).one()
    return row.tokens, row.updated


@pytest.fixture
def engine(fresh_database: tuple[str, Engine]) -> Engine:
    return fresh_database[1]


def test_database_limiter_shares_bucket_across_processes(engine: Engine) -> None:
    limit = RateLimit(rate=0.001, burst=10)
    processes = [DatabaseRateLimiter(engine, background_renewals=False) for _ in range(2)]

    decisions = [processes[i % 2].acquire("key_shared", limit, START) for i in range(30)]

    assert sum(decision.allowed for decision in decisions) == limit.burst


def wait_for_bucket(engine: Engine, key_id: str, tokens: float, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while bucket_row(engine, key_id)[0] != tokens:
        assert time.monotonic() < deadline, f"the bucket of {key_id} never held {tokens} tokens"
        time.sleep(0.01)


# Leases of 50 tokens: 1,000 requests a second for 0.05 s.
BUSY_KEY = RateLimit(rate=1000.0, burst=400)


def count_reservations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the key of every shared-bucket transaction from now on."""
    calls: list[str] = []
    take_tokens = usage_store.take_tokens

    def counted(engine: Engine, key_id: str, decide: Any) -> Any:
        calls.append(key_id)
        return take_tokens(engine, key_id, decide)

    monkeypatch.setattr(usage_store, "take_tokens", counted)
    return calls


def test_database_limiter_stays_within_lease_bound(engine: Engine) -> None:
    limit = RateLimit(rate=200.0, burst=40)
    processes = [DatabaseRateLimiter(engine, background_renewals=False) for _ in range(2)]
    clock = ManualClock(START)
    admitted = 0

    # Two seconds in steps of 5 ms; both processes send twice per step, 800 requests/s.
    for step in range(401):
        clock.set(START + step * 0.005)
        for process in processes * 2:
            admitted += process.acquire("key_busy", limit, clock.now()).allowed

    exact = limit.burst + limit.rate * 2
    assert admitted <= exact + limit.rate * LEASE_SECONDS
    # Tokens taken but not spent when the test stops: each process's lease, and the
    # unspent rest of the lease it replaced, which goes back with its next reservation.
    assert admitted >= exact - len(processes) * 2 * lease_size(limit)


def test_database_limiter_returns_unused_lease_tokens(engine: Engine) -> None:
    limit = RateLimit(rate=40.0, burst=100)
    first, second = (DatabaseRateLimiter(engine, background_renewals=False) for _ in range(2))
    clock = ManualClock(START)

    # The first process reserves two tokens and spends one; the second drains the rest.
    first.acquire("key_lease", limit, clock.now())
    while second.acquire("key_lease", limit, clock.now()).allowed:
        pass
    clock.advance(LEASE_SECONDS + 0.001)
    first.acquire("key_lease", limit, clock.now())

    tokens, _ = bucket_row(engine, "key_lease")
    refilled = limit.rate * (LEASE_SECONDS + 0.001)
    # Refill plus the one returned token, minus the new two-token lease.
    # Times are stored in whole milliseconds, so the refill may differ in the sixth digit.
    assert tokens == pytest.approx(refilled + 1 - 2, abs=1e-3)


def test_database_limiter_rejects_locally_while_empty(engine: Engine) -> None:
    limit = RateLimit(rate=1.0, burst=2)
    limiter = DatabaseRateLimiter(engine)
    clock = ManualClock(START)
    for _ in range(3):
        limiter.acquire("key_blocked", limit, clock.now())
    _, updated_at_rejection = bucket_row(engine, "key_blocked")

    clock.advance(0.5)
    decision = limiter.acquire("key_blocked", limit, clock.now())

    assert not decision.allowed
    assert decision.retry_after == 1
    assert bucket_row(engine, "key_blocked")[1] == updated_at_rejection


def test_database_limiter_lifts_block_when_limit_changes(engine: Engine) -> None:
    limiter = DatabaseRateLimiter(engine)
    # At 0.001 requests per second, the rejection blocks the key for 1000 s.
    for _ in range(2):
        limiter.acquire("key_raised", RateLimit(rate=0.001, burst=1), START)

    decision = limiter.acquire("key_raised", RateLimit(rate=1.0, burst=1), START + 10)

    assert decision.allowed


def test_database_limiter_refills_after_rejection(engine: Engine) -> None:
    limit = RateLimit(rate=1.0, burst=1)
    limiter = DatabaseRateLimiter(engine)
    limiter.acquire("key_refill", limit, START)
    limiter.acquire("key_refill", limit, START)

    assert limiter.acquire("key_refill", limit, START + 1.0).allowed


def test_cached_acquire_spends_lease_only(engine: Engine) -> None:
    limit = RateLimit(rate=200.0, burst=40)
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    clock = ManualClock(START)

    before_reservation = limiter.acquire_cached("key_cached", limit, clock.now())
    reserved = limiter.acquire("key_cached", limit, clock.now())
    tokens_after_reservation, _ = bucket_row(engine, "key_cached")
    # The reserving request spent one of the lease's ten tokens; four more leave it more
    # than half full, so no renewal starts.
    cached = [limiter.acquire_cached("key_cached", limit, clock.now()) for _ in range(4)]

    assert before_reservation is None
    assert reserved.allowed
    assert all(decision is not None and decision.allowed for decision in cached)
    # Spending leased tokens wrote nothing to the shared bucket.
    assert bucket_row(engine, "key_cached")[0] == tokens_after_reservation


def test_cached_acquire_renews_half_spent_lease(engine: Engine) -> None:
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    limiter.acquire("key_renewed", BUSY_KEY, START)
    assert bucket_row(engine, "key_renewed")[0] == 350

    # The 25th leaves 24 of 49 tokens: the lease is half spent and is renewed.
    first = [limiter.acquire_cached("key_renewed", BUSY_KEY, START) for _ in range(25)]
    after_renewal, _ = bucket_row(engine, "key_renewed")
    # The new lease's 50 tokens serve the next requests without a reservation.
    second = [limiter.acquire_cached("key_renewed", BUSY_KEY, START) for _ in range(20)]

    assert all(decision is not None and decision.allowed for decision in first + second)
    assert after_renewal == 300
    assert bucket_row(engine, "key_renewed")[0] == 300


def test_cached_acquire_renews_lease_near_its_end(engine: Engine) -> None:
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    limiter.acquire("key_late", BUSY_KEY, START)

    # Ten tokens spent, past the middle of the lease's time.
    at = START + LEASE_SECONDS * 0.6
    decisions = [limiter.acquire_cached("key_late", BUSY_KEY, at) for _ in range(10)]

    assert all(decision is not None and decision.allowed for decision in decisions)
    # The bucket refilled for 30 ms (30 tokens) and gave the next lease 50.
    tokens, _ = bucket_row(engine, "key_late")
    assert tokens == pytest.approx(350 + 30 - 50, abs=1e-3)


def test_quiet_key_lease_not_renewed(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    reservations = count_reservations(monkeypatch)
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    clock = ManualClock(START)

    # A request every 30 ms: each lease serves two requests, too few to renew it.
    for _ in range(20):
        decision = limiter.acquire_cached("key_quiet", BUSY_KEY, clock.now())
        if decision is None:
            decision = limiter.acquire("key_quiet", BUSY_KEY, clock.now())
        assert decision.allowed
        clock.advance(0.03)

    assert len(reservations) == 10


def test_busy_key_reserves_in_background_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reservations = count_reservations(monkeypatch)
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    clock = ManualClock(START)
    in_request = 0

    # A request every millisecond for 0.2 s, as an API process takes tokens.
    for _ in range(200):
        decision = limiter.acquire_cached("key_steady", BUSY_KEY, clock.now())
        if decision is None:
            in_request += 1
            decision = limiter.acquire("key_steady", BUSY_KEY, clock.now())
        assert decision.allowed
        clock.advance(0.001)

    # Only the first request reserved; renewals at half of each lease made the rest.
    assert in_request == 1
    assert len(reservations) <= 2 * 0.2 / LEASE_SECONDS + 1


def test_replaced_lease_returns_its_tokens(engine: Engine) -> None:
    first = DatabaseRateLimiter(engine, background_renewals=False)
    second = DatabaseRateLimiter(engine, background_renewals=False)
    clock = ManualClock(START)
    first.acquire("key_replaced", BUSY_KEY, clock.now())
    # Renewed after 25: 24 tokens of the first lease were never spent.
    for _ in range(25):
        first.acquire_cached("key_replaced", BUSY_KEY, clock.now())
    # Another process empties the bucket, so that nothing overflows it below.
    while second.acquire("key_replaced", BUSY_KEY, clock.now()).allowed:
        pass

    clock.advance(LEASE_SECONDS + 0.001)
    first.acquire("key_replaced", BUSY_KEY, clock.now())

    tokens, _ = bucket_row(engine, "key_replaced")
    refilled = BUSY_KEY.rate * (LEASE_SECONDS + 0.001)
    # The 24 tokens of the replaced lease and the 50 of the expired one come back, and
    # the new lease takes 50.
    assert tokens == pytest.approx(refilled + 24 + 50 - 50, abs=1e-3)


def test_lease_renewal_runs_in_background(engine: Engine) -> None:
    limiter = DatabaseRateLimiter(engine)
    limiter.acquire("key_background", BUSY_KEY, START)

    decisions = [limiter.acquire_cached("key_background", BUSY_KEY, START) for _ in range(25)]

    assert all(decision is not None and decision.allowed for decision in decisions)
    # A thread of the limiter takes the next lease.
    wait_for_bucket(engine, "key_background", 300)


def test_failed_renewal_keeps_lease(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    limiter = DatabaseRateLimiter(engine, background_renewals=False)
    limiter.acquire("key_failing", BUSY_KEY, START)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE rate_limit_buckets RENAME TO buckets_away"))

    with caplog.at_level(logging.WARNING, logger="wp_llm.server.usage.limiters"):
        # The 25th starts a renewal, which fails. The lease still has 24 tokens.
        decisions = [limiter.acquire_cached("key_failing", BUSY_KEY, START) for _ in range(49)]
        exhausted = limiter.acquire_cached("key_failing", BUSY_KEY, START)

    assert all(decision is not None and decision.allowed for decision in decisions)
    assert exhausted is None
    assert [record.message for record in caplog.records] == ["rate limit lease renewal failed"]


def test_cached_acquire_repeats_block(engine: Engine) -> None:
    limit = RateLimit(rate=1.0, burst=1)
    limiter = DatabaseRateLimiter(engine)
    for _ in range(2):
        limiter.acquire("key_cached_block", limit, START)

    decision = limiter.acquire_cached("key_cached_block", limit, START + 0.5)

    assert decision is not None
    assert not decision.allowed
    assert decision.retry_after == 1


def test_cached_acquire_skips_busy_key(engine: Engine) -> None:
    limit = RateLimit(rate=200.0, burst=40)
    limiter = DatabaseRateLimiter(engine)
    limiter.acquire("key_busy_lock", limit, START)
    # Another thread that reserves tokens for the key has locked it.
    lock = limiter._key_lock("key_busy_lock")

    with lock:
        decision = limiter.acquire_cached("key_busy_lock", limit, START)

    assert decision is None
    assert limiter.acquire_cached("key_busy_lock", limit, START) is not None
