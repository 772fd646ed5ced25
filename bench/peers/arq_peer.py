"""The arq peer: an asyncio worker that takes jobs from Redis and posts them with aiohttp.

Start it with `python -m bench.peers.arq_peer`; it runs arq's own worker on uvloop.
Attempts go to PostgreSQL through a psycopg connection pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from arq import Retry, func
from arq.connections import RedisSettings
from arq.worker import run_worker
from psycopg_pool import AsyncConnectionPool

from bench.payload import signed_headers
from bench.peers import jobs
from bench.peers.jobs import INSERT_ATTEMPT, MAX_RETRIES, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS, Job

# arq waits this long between polls of its queue. Its default of 0.5 s would add up to
# half a second to every delivery of an idle worker, so the bench lowers it.
POLL_DELAY_SECONDS = 0.01
DATABASE_POOL_MAX = 16
DATABASE_POOL_MIN = 4


async def startup(context: dict[str, Any]) -> None:
    connector = aiohttp.TCPConnector(limit=jobs.concurrency())
    context["session"] = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=jobs.request_timeout())
    )
    pool = AsyncConnectionPool(
        jobs.attempts_database(),
        min_size=DATABASE_POOL_MIN,
        max_size=DATABASE_POOL_MAX,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open()
    context["database"] = pool


async def shutdown(context: dict[str, Any]) -> None:
    await context["session"].close()
    await context["database"].close()


async def _record(
    context: dict[str, Any], job: Job, started: float, status: int | None, error: str | None
) -> None:
    latency_ms = int((time.perf_counter() - started) * 1000)
    async with context["database"].connection() as connection:
        await connection.execute(
            INSERT_ATTEMPT,
            (job["delivery_id"], job["event_id"], time.time(), status, latency_ms, error),
        )


async def deliver(context: dict[str, Any], job: Job) -> None:
    """POST one signed delivery; ask arq to run it again later when it fails."""
    body = job["body"].encode()
    headers = signed_headers(job["event_id"], job["delivery_id"], body)
    started = time.perf_counter()
    try:
        async with context["session"].post(job["url"], data=body, headers=headers) as response:
            await response.read()
            status: int | None = response.status
            error = None if 200 <= response.status < 300 else f"endpoint returned {response.status}"
    except (aiohttp.ClientError, TimeoutError) as failure:
        status, error = None, f"{type(failure).__name__}: {failure}"[:500]
    await _record(context, job, started, status, error)
    if error is not None:
        delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (context["job_try"] - 1))
        raise Retry(defer=delay)


class WorkerSettings:
    """arq's worker configuration, read by `run_worker`."""

    # arq's type for job functions takes any arguments, which a typed signature does not match.
    functions = [func(deliver, name="deliver", max_tries=MAX_RETRIES + 1)]  # type: ignore[arg-type]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(jobs.redis_url())
    queue_name = jobs.queue_name()
    max_jobs = jobs.concurrency()
    keep_result = 0
    poll_delay = POLL_DELAY_SECONDS


def main() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_worker(WorkerSettings)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
