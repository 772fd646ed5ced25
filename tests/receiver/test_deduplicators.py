"""Deduplicators: the same behaviour from the memory, SQLite and Redis backends."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wp_llm.webhooks import (
    Deduplicator,
    MemoryDeduplicator,
    RedisDeduplicator,
    SQLiteDeduplicator,
)

from .conftest import REDIS_URL

RACE_THREADS = 16
RACE_ROUNDS = 25
RACE_TIMEOUT_SECONDS = 30
REDIS_EXPIRY_SECONDS = 0.2


class FakeClock:
    """A clock that advances only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Store:
    """Builds deduplicators that share one store of a kind, and advances that store's time."""

    name: str
    make: Callable[..., Deduplicator]
    advance: Callable[[float], None]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    clock = FakeClock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    if request.param == "memory":
        # Instances never share memory, so "another instance" is the same one.
        shared: dict[tuple[tuple[str, Any], ...], MemoryDeduplicator] = {}

        def make_memory(**options: Any) -> Deduplicator:
            key = tuple(sorted(options.items()))
            if key not in shared:
                shared[key] = MemoryDeduplicator(clock=clock, **options)
            return shared[key]

        return Store("memory", make_memory, advance)

    if request.param == "sqlite":
        path = tmp_path / "received.sqlite3"
        opened: list[SQLiteDeduplicator] = []

        def make_sqlite(**options: Any) -> Deduplicator:
            deduplicator = SQLiteDeduplicator(path, clock=clock, **options)
            opened.append(deduplicator)
            return deduplicator

        def close_all() -> None:
            for deduplicator in opened:
                deduplicator.close()

        request.addfinalizer(close_all)
        return Store("sqlite", make_sqlite, advance)

    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")

    def make_redis(**options: Any) -> Deduplicator:
        return RedisDeduplicator(client, key_prefix=prefix, **options)

    # Redis expires keys on its own clock, so the test waits for real.
    return Store("redis", make_redis, lambda seconds: time.sleep(seconds))


def test_deduplicator_backends_satisfy_protocol(store: Store) -> None:
    assert isinstance(store.make(), Deduplicator)


def test_claim_first_copy_only(store: Store) -> None:
    deduplicator = store.make()

    assert deduplicator.claim("evt_1") is True
    assert deduplicator.claim("evt_1") is False
    assert deduplicator.claim("evt_2") is True


def test_claim_is_shared_between_instances(store: Store) -> None:
    first, second = store.make(), store.make()

    assert first.claim("evt_1") is True
    assert second.claim("evt_1") is False


def test_is_completed_only_after_complete(store: Store) -> None:
    deduplicator = store.make()
    deduplicator.claim("evt_1")

    assert deduplicator.is_completed("evt_1") is False
    deduplicator.complete("evt_1")
    assert deduplicator.is_completed("evt_1") is True
    assert deduplicator.claim("evt_1") is False


def test_is_completed_unknown_id_is_false(store: Store) -> None:
    assert store.make().is_completed("evt_never_seen") is False


def test_release_lets_next_copy_claim(store: Store) -> None:
    deduplicator = store.make()
    deduplicator.claim("evt_1")

    deduplicator.release("evt_1")

    assert deduplicator.claim("evt_1") is True


def test_release_unknown_id_is_harmless(store: Store) -> None:
    deduplicator = store.make()

    deduplicator.release("evt_never_seen")

    assert deduplicator.claim("evt_never_seen") is True


def test_processing_claim_lapses_after_timeout(store: Store) -> None:
    deduplicator = store.make(processing_timeout=REDIS_EXPIRY_SECONDS)
    deduplicator.claim("evt_1")

    store.advance(REDIS_EXPIRY_SECONDS * 2)

    assert deduplicator.claim("evt_1") is True


def test_completed_id_forgotten_after_ttl(store: Store) -> None:
    deduplicator = store.make(ttl=REDIS_EXPIRY_SECONDS)
    deduplicator.claim("evt_1")
    deduplicator.complete("evt_1")

    store.advance(REDIS_EXPIRY_SECONDS * 2)

    assert deduplicator.is_completed("evt_1") is False
    assert deduplicator.claim("evt_1") is True


def test_completed_id_kept_within_ttl(store: Store) -> None:
    deduplicator = store.make(ttl=60, processing_timeout=REDIS_EXPIRY_SECONDS)
    deduplicator.claim("evt_1")
    deduplicator.complete("evt_1")

    # Past the processing timeout, the completed state must still hold.
    store.advance(REDIS_EXPIRY_SECONDS * 2)

    assert deduplicator.claim("evt_1") is False


def test_claim_race_has_exactly_one_winner(store: Store) -> None:
    # Each thread has its own instance where the store allows it (its own SQLite
    # connection), so the store itself must make the claim atomic.
    deduplicators = [store.make() for _ in range(RACE_THREADS)]
    barrier = threading.Barrier(RACE_THREADS)

    def claim(deduplicator: Deduplicator, event_id: str) -> bool:
        barrier.wait(timeout=RACE_TIMEOUT_SECONDS)
        return deduplicator.claim(event_id)

    with ThreadPoolExecutor(max_workers=RACE_THREADS) as pool:
        for round_number in range(RACE_ROUNDS):
            event_id = f"evt_race_{round_number}"
            futures = [pool.submit(claim, deduplicator, event_id) for deduplicator in deduplicators]
            results = [future.result(timeout=RACE_TIMEOUT_SECONDS) for future in futures]
            assert results.count(True) == 1, f"round {round_number}: {results}"


def _claim_in_process(path: str, event_ids: list[str], start: Any, results: Any) -> None:
    deduplicator = SQLiteDeduplicator(path)
    start.wait(RACE_TIMEOUT_SECONDS)
    results.put([event_id for event_id in event_ids if deduplicator.claim(event_id)])
    deduplicator.close()


def test_sqlite_claim_race_between_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "received.sqlite3")
    SQLiteDeduplicator(path).close()
    event_ids = [f"evt_{number}" for number in range(200)]
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_claim_in_process, args=(path, event_ids, start, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()

    start.set()
    claimed = [results.get(timeout=RACE_TIMEOUT_SECONDS) for _ in processes]
    for process in processes:
        process.join(timeout=RACE_TIMEOUT_SECONDS)

    winners = sorted(event_id for batch in claimed for event_id in batch)
    assert winners == sorted(event_ids)


def test_memory_deduplicator_forgets_oldest_when_full() -> None:
    deduplicator = MemoryDeduplicator(max_entries=2)
    for event_id in ["evt_1", "evt_2", "evt_3"]:
        deduplicator.claim(event_id)

    assert len(deduplicator) == 2
    assert deduplicator.claim("evt_1") is True
    assert deduplicator.claim("evt_3") is False


def test_memory_deduplicator_drops_expired_entries() -> None:
    clock = FakeClock()
    deduplicator = MemoryDeduplicator(processing_timeout=10, clock=clock)
    deduplicator.claim("evt_1")

    clock.now += 11
    deduplicator.claim("evt_2")

    assert len(deduplicator) == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_entries": 0}, ValueError),
        ({"ttl": 0}, ValueError),
        ({"processing_timeout": -1}, ValueError),
        ({"ttl": float("nan")}, ValueError),
    ],
)
def test_memory_deduplicator_invalid_options_raise(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        MemoryDeduplicator(**options)


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_sqlite_deduplicator_rejects_in_memory_database(path: str) -> None:
    with pytest.raises(ValueError, match="MemoryDeduplicator"):
        SQLiteDeduplicator(path)


def test_sqlite_deduplicator_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "received.sqlite3"
    with SQLiteDeduplicator(path) as deduplicator:
        deduplicator.claim("evt_1")
        deduplicator.complete("evt_1")

    with SQLiteDeduplicator(path) as reopened:
        assert reopened.is_completed("evt_1") is True


def test_sqlite_deduplicator_purges_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "received.sqlite3"
    clock = FakeClock()
    with SQLiteDeduplicator(path, processing_timeout=10, clock=clock) as deduplicator:
        deduplicator.claim("evt_1")
        # Past the processing timeout and the purge interval, the next claim purges.
        clock.now += 3_600
        deduplicator.claim("evt_2")

    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT event_id FROM wp_llm_received_events").fetchall()
    assert rows == [("evt_2",)]


def test_redis_deduplicator_from_url(redis_prefix: str) -> None:
    deduplicator = RedisDeduplicator(url=REDIS_URL, key_prefix=redis_prefix)

    assert deduplicator.claim("evt_1") is True
    assert deduplicator.claim("evt_1") is False


def test_redis_deduplicator_keys_carry_prefix_and_expiry(
    redis_client: Any, redis_prefix: str
) -> None:
    deduplicator = RedisDeduplicator(redis_client, key_prefix=redis_prefix, ttl=3_600)
    deduplicator.claim("evt_1")
    deduplicator.complete("evt_1")

    assert redis_client.get(redis_prefix + "evt_1") == b"completed"
    assert 0 < redis_client.pttl(redis_prefix + "evt_1") <= 3_600_000


def test_redis_deduplicator_with_decoded_responses(redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    deduplicator = RedisDeduplicator(client, key_prefix=redis_prefix)
    deduplicator.claim("evt_1")
    deduplicator.complete("evt_1")

    assert deduplicator.is_completed("evt_1") is True
    client.close()


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"client": object(), "url": REDIS_URL},
    ],
    ids=["neither", "both"],
)
def test_redis_deduplicator_needs_client_or_url(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either a redis client"):
        RedisDeduplicator(**arguments)


def test_redis_deduplicator_unique_prefixes_do_not_collide(redis_client: Any) -> None:
    first_prefix = f"wp_llm_test:{uuid.uuid4().hex}:"
    second_prefix = f"wp_llm_test:{uuid.uuid4().hex}:"
    first = RedisDeduplicator(redis_client, key_prefix=first_prefix)
    second = RedisDeduplicator(redis_client, key_prefix=second_prefix)

    assert first.claim("evt_1") is True
    assert second.claim("evt_1") is True
    redis_client.delete(first_prefix + "evt_1", second_prefix + "evt_1")
