"""Fixtures shared by every test folder: real databases, the real service, real receivers.

Tests that take `backend` run once on SQLite and once on PostgreSQL. Set
WP_LLM_TEST_BACKENDS=sqlite to run only one of them while developing; CI runs both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.receiver import Receiver
from tests.support.service import ServiceProcess, create_postgres_database, drop_postgres_database
from wp_llm.server.db.engine import create_db_engine, migrate

BACKENDS = [
    b.strip()
    for b in os.environ.get("WP_LLM_TEST_BACKENDS", "sqlite,postgresql").split(",")
    if b.strip()
]


def new_database_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / ('db-' + uuid.uuid4().hex[:8] + '.sqlite')}"
    return create_postgres_database()


def drop_database_url(url: str) -> None:
    if url.startswith("postgresql"):
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def service(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One shared service per backend; tests isolate themselves with their own account."""
    folder = tmp_path_factory.mktemp(f"service-{backend}")
    url = new_database_url(backend, folder)
    process = ServiceProcess(database_url=url, data_dir=folder).start()
    yield process
    process.stop()
    drop_database_url(url)


@dataclass
class Account:
    """An API key of a fresh account on the shared service, and a client that sends it."""

    key: str
    client: httpx.Client
    service: ServiceProcess


@pytest.fixture
def account(service: ServiceProcess) -> Iterator[Account]:
    key = service.create_key()
    with service.client(key) as client:
        yield Account(key=key, client=client, service=service)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the current backend, for tests that start their own service."""
    url = new_database_url(backend, tmp_path)
    yield url
    drop_database_url(url)


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty, migrated database of the current backend."""
    created = create_db_engine(database_url)
    migrate(created)
    yield created
    created.dispose()


@pytest.fixture
def make_service(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services with extra environment variables or flags; all are stopped afterwards."""
    started: list[ServiceProcess] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> ServiceProcess:
        process = ServiceProcess(
            database_url=database_url, data_dir=tmp_path, env=env or {}, args=args or []
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
