"""Starts a peer's worker, fills its queue, and cleans up its Redis keys and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
import redis
from arq.connections import ArqRedis, RedisSettings, create_pool
from celery import Celery

from bench.databases import create_postgres_database, drop_database
from bench.peers import jobs
from bench.peers.celery_peer import TASK_NAME
from bench.peers.jobs import Job
from bench.processes import ManagedProcess, python_module

PeerKind = Literal["celery", "arq"]
ARQ_ENQUEUE_CHUNK = 500
# Keys the two libraries create beside the queue itself; the bench's Redis database is its own.
LIBRARY_KEY_PATTERNS = ("arq:*", "unacked*", "_kombu.*")


@dataclass(frozen=True)
class PeerSetup:
    """One peer configuration as the report names it."""

    name: str
    kind: PeerKind
    label: str
    # Celery only: the worker pool and its size; arq runs `concurrency` jobs in one loop.
    pool: str = ""
    pool_size: int = 0


def celery_setup(pool: str, pool_size: int) -> PeerSetup:
    return PeerSetup("celery", "celery", f"Celery {pool} x{pool_size}, requests", pool, pool_size)


ARQ = PeerSetup("arq", "arq", "arq on uvloop, aiohttp")


class PeerSystem:
    """A peer's worker process, its queue in Redis and its attempt table in PostgreSQL."""

    def __init__(
        self, setup: PeerSetup, folder: Path, *, concurrency: int, request_timeout: float
    ) -> None:
        self.setup = setup
        self.folder = folder
        self.concurrency = concurrency
        self.queue = f"wp-llm-bench-{setup.kind}-{uuid.uuid4().hex[:8]}"
        self.database_url = create_postgres_database()
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            connection.execute(jobs.CREATE_ATTEMPTS_TABLE)
        self._environment = {
            jobs.REDIS_URL_VARIABLE: jobs.redis_url(),
            jobs.QUEUE_VARIABLE: self.queue,
            jobs.DATABASE_VARIABLE: self.database_url,
            jobs.CONCURRENCY_VARIABLE: str(concurrency),
            jobs.TIMEOUT_VARIABLE: str(request_timeout),
        }
        self._process: ManagedProcess | None = None
        self._celery: Celery | None = None
        self._arq: ArqRedis | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        log_path = self.folder / f"{self.setup.name}-{self.queue}.log"
        self._process = ManagedProcess(
            self.setup.name, self._command(), self._environment, log_path
        ).start()

    def _command(self) -> list[str]:
        if self.setup.kind == "arq":
            return python_module("bench.peers.arq_peer")
        return python_module(
            "celery",
            "-A",
            "bench.peers.celery_peer",
            "worker",
            "--pool",
            self.setup.pool,
            "--concurrency",
            str(self.setup.pool_size),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--queues",
            self.queue,
        )

    def check_running(self) -> None:
        if self._process is not None and self._process.exited() is not None:
            raise RuntimeError(f"{self.setup.name} worker exited: {self._process.log_tail()}")

    async def enqueue(self, batch: Sequence[Job]) -> None:
        """Put jobs on the queue, in order, as the platform's producer would."""
        if self.setup.kind == "celery":
            await asyncio.to_thread(self._send_celery, batch)
            return
        pool = await self._arq_pool()
        for start in range(0, len(batch), ARQ_ENQUEUE_CHUNK):
            chunk = batch[start : start + ARQ_ENQUEUE_CHUNK]
            await asyncio.gather(*(pool.enqueue_job("deliver", job) for job in chunk))

    def _send_celery(self, batch: Sequence[Job]) -> None:
        if self._celery is None:
            self._celery = Celery("wp_llm_bench_producer", broker=jobs.redis_url())
        with self._celery.producer_or_acquire() as producer:
            for job in batch:
                self._celery.send_task(TASK_NAME, args=[job], queue=self.queue, producer=producer)

    async def _arq_pool(self) -> ArqRedis:
        if self._arq is None:
            settings = RedisSettings.from_dsn(jobs.redis_url())
            self._arq = await create_pool(settings, default_queue_name=self.queue)
        return self._arq

    def attempt_count(self) -> int:
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute("SELECT count(*) FROM peer_attempts").fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    async def close(self) -> None:
        """Stop the worker, drop the attempt database and delete the run's Redis keys."""
        self.stop()
        if self._arq is not None:
            await self._arq.aclose()
        if self._celery is not None:
            self._celery.close()
        drop_database(self.database_url)
        await asyncio.to_thread(self._delete_keys)

    def _delete_keys(self) -> None:
        client = redis.Redis.from_url(jobs.redis_url())
        try:
            for pattern in (f"*{self.queue}*", *LIBRARY_KEY_PATTERNS):
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()
