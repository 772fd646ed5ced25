"""Our service as the bench runs it: one SQLite process, or PostgreSQL with separate workers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from sqlalchemy import Engine, func, select

from bench.databases import create_postgres_database, drop_database, sqlite_url
from bench.processes import ManagedProcess, python_module
from bench.sink import free_port
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import deliveries

READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.1
# High enough that a per-key rate limit, where the service has one, never throttles the bench.
RATE_LIMIT_PER_SECOND = 1_000_000

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Topology:
    """A deployment of our service: which processes run the delivery engine, on which database."""

    name: str
    backend: Backend
    # Separate `wp-llm worker` processes.
    workers: int
    # Whether the API process runs the engine too (`wp-llm serve` without --no-worker).
    api_engine: bool

    @property
    def label(self) -> str:
        if self.api_engine:
            return f"{self.backend}, one process"
        if self.workers == 0:
            return f"{self.backend}, API only"
        plural = "es" if self.workers > 1 else ""
        return f"{self.backend}, {self.workers} worker process{plural}"


SQLITE_ONE_PROCESS = Topology("ours-sqlite", "sqlite", 0, True)
SQLITE_API_ONLY = Topology("ours-sqlite-api", "sqlite", 0, False)
POSTGRES_ONE_PROCESS = Topology("ours-pg", "postgresql", 0, True)
POSTGRES_API_ONLY = Topology("ours-pg-api", "postgresql", 0, False)
POSTGRES_ONE_WORKER = Topology("ours-pg-1w", "postgresql", 1, False)
POSTGRES_TWO_WORKERS = Topology("ours-pg-2w", "postgresql", 2, False)


class ServiceError(RuntimeError):
    """A process of our service exited early or never became ready."""


class OurService:
    """A fresh database plus the processes of one topology; seed it before or after `start`."""

    def __init__(
        self, topology: Topology, folder: Path, environment: dict[str, str], *, api: bool
    ) -> None:
        self.topology = topology
        self.folder = folder
        # An API process starts when the scenario publishes over HTTP or when it runs the engine.
        self.api = api or topology.api_engine or topology.workers == 0
        self.port = free_port()
        self.box = SecretBox(environment["WP_LLM_SECRET_KEY"])
        self.database_url = (
            sqlite_url(folder) if topology.backend == "sqlite" else create_postgres_database()
        )
        self.engine: Engine = create_db_engine(self.database_url)
        migrate(self.engine)
        self._environment = {
            **environment,
            "WP_LLM_DATABASE_URL": self.database_url,
            "WP_LLM_DATA_DIR": str(folder),
            "WP_LLM_RATE_LIMIT": str(RATE_LIMIT_PER_SECOND),
        }
        self.processes: list[ManagedProcess] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        """Every process of the service: the API and the workers."""
        return [process.pid for process in self.processes]

    @property
    def delivering_pids(self) -> list[int]:
        """Processes that run the delivery engine."""
        return [
            process.pid
            for process in self.processes
            if process.name != "api" or self.topology.api_engine
        ]

    async def start(self) -> None:
        if self.api:
            flags = [] if self.topology.api_engine else ["--no-worker"]
            self._spawn("api", "serve", "--port", str(self.port), *flags)
        for index in range(self.topology.workers):
            self._spawn(f"worker{index}", "worker")
        if self.api:
            await self._wait_ready()

    def _spawn(self, role: str, *arguments: str) -> None:
        log_path = self.folder / f"{self.topology.name}-{role}.log"
        command = python_module("wp_llm", *arguments)
        self.processes.append(ManagedProcess(role, command, self._environment, log_path).start())

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                self.check_running()
                try:
                    async with session.get(self.api_url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(READY_POLL_SECONDS)
        raise ServiceError(f"{self.topology.name} not ready after {READY_TIMEOUT_SECONDS}s")

    def check_running(self) -> None:
        """Raise ServiceError, with the log tail, if any process of the service has exited."""
        for process in self.processes:
            code = process.exited()
            if code is not None:
                raise ServiceError(
                    f"{self.topology.name} {process.name} exited with {code}: {process.log_tail()}"
                )

    def pending_count(self) -> int:
        with self.engine.connect() as connection:
            query = (
                select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
            )
            return int(connection.execute(query).scalar_one())

    async def wait_recorded(self, timeout: float) -> bool:
        """Wait until no delivery is pending, so every attempt is on record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(self.pending_count) == 0:
                return True
            await asyncio.sleep(READY_POLL_SECONDS)
        return False

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def close(self) -> None:
        """Stop the processes and drop the database."""
        self.stop()
        self.engine.dispose()
        drop_database(self.database_url)
