"""Measure what usage accounting costs; run as `python -m tests.usage.usage_cost`.

Part one times `acquire()` alone: the memory limiter, the database limiter with leases
(a fast key) and without them (a slow key, one round trip per request). Part two times
`GET /v1/webhooks` against a real service with rate limits off and on. Part three
publishes from 16 threads, to one account and then to 16 accounts, because each
account's quota counter serializes that account's publishes. Every loop is bounded by
a request count; the service listens on loopback only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import drop_database_url, new_database_url
from tests.support.service import ServiceProcess
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.usage.limiters import DatabaseRateLimiter, MemoryRateLimiter
from wp_llm.server.usage.ratelimit import RateLimit

FAST_KEY = RateLimit(rate=1_000_000.0, burst=1_000_000)
# Below 20 requests per second a lease holds one token; the huge burst keeps it from emptying.
SLOW_KEY = RateLimit(rate=10.0, burst=1_000_000)
PUBLISH_THREADS = 16


def time_calls(call: Callable[[], object], count: int) -> float:
    """Return the mean microseconds per call."""
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def measure_limiters(backend: str, folder: Path, count: int) -> None:
    url = new_database_url(backend, folder)
    engine = create_db_engine(url)
    migrate(engine)
    try:
        memory = MemoryRateLimiter()
        database = DatabaseRateLimiter(engine)
        cases = {
            "memory": lambda: memory.acquire("key_memory", FAST_KEY, time.time()),
            "database, leased": lambda: database.acquire("key_fast", FAST_KEY, time.time()),
            "database, one trip per request": lambda: database.acquire(
                "key_slow", SLOW_KEY, time.time()
            ),
        }
        for name, call in cases.items():
            print(f"{backend:10} acquire() {name:32} {time_calls(call, count):8.1f} µs")
    finally:
        engine.dispose()
        drop_database_url(url)


def median_request_ms(service: ServiceProcess, key: str, count: int) -> float:
    with service.client(key) as client:
        client.get("/v1/webhooks")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            client.get("/v1/webhooks")
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure_requests(backend: str, folder: Path, count: int) -> None:
    settings = {"off": {"WP_LLM_RATE_LIMIT": "0"}, "on": {"WP_LLM_RATE_LIMIT": "1000000"}}
    for label, environment in settings.items():
        url = new_database_url(backend, folder)
        service = ServiceProcess(database_url=url, data_dir=folder, env=environment).start()
        try:
            median = median_request_ms(service, service.create_key(), count)
            print(f"{backend:10} GET /v1/webhooks, limits {label:3} median {median:6.2f} ms")
        finally:
            service.stop()
            drop_database_url(url)


def publish_rate(service: ServiceProcess, keys: list[str], count: int) -> float:
    """Publish `count` events from 16 threads, spreading them over `keys`; return events/s."""
    clients = [service.client(key) for key in keys]
    body = {"type": "system.update", "data": {"message": "m"}}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=PUBLISH_THREADS) as pool:
        statuses = list(
            pool.map(
                lambda i: clients[i % len(clients)].post("/v1/events", json=body).status_code,
                range(count),
            )
        )
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    if set(statuses) != {201}:
        raise RuntimeError(f"expected only 201 answers, got {sorted(set(statuses))}")
    return count / elapsed


def measure_publishing(backend: str, folder: Path, count: int) -> None:
    url = new_database_url(backend, folder)
    service = ServiceProcess(
        database_url=url, data_dir=folder, env={"WP_LLM_RATE_LIMIT": "0"}
    ).start()
    try:
        one = publish_rate(service, [service.create_key()], count)
        many = publish_rate(service, [service.create_key() for _ in range(PUBLISH_THREADS)], count)
        print(
            f"{backend:10} publish, 16 threads: one account {one:6.0f}/s, 16 accounts {many:6.0f}/s"
        )
    finally:
        service.stop()
        drop_database_url(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="Comma-separated backends to measure."
    )
    parser.add_argument("--calls", type=int, default=2000, help="acquire() calls per case.")
    parser.add_argument("--requests", type=int, default=500, help="HTTP requests per case.")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for backend in arguments.backends.split(","):
            measure_limiters(backend, Path(folder), arguments.calls)
            measure_requests(backend, Path(folder), arguments.requests)
            measure_publishing(backend, Path(folder), arguments.requests)


if __name__ == "__main__":
    main()
