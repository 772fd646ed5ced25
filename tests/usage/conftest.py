"""Fixtures for usage tests: a service whose usage clock tests can move, and accounts with limits.

The shared `usage_service` runs with generous defaults, so each test sets the limits it
needs on its own fresh account. Its clock only moves forward: tests share it, and a
backward step would leave other tests' buckets in the future.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.conftest import drop_database_url, new_database_url
from tests.support.service import ServiceProcess
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import events
from wp_llm.server.store import accounts
from wp_llm.server.store import usage as usage_store

CLI_TIMEOUT_SECONDS = 60

# High enough that no test is throttled unless it lowers its own account's limits.
USAGE_ENVIRONMENT = {
    "WP_LLM_RATE_LIMIT": "1000",
    "WP_LLM_SERVICE_RATE_LIMIT": "1000",
    "WP_LLM_RATE_LIMIT_NOTICE_INTERVAL": "1h",
}


class ShiftedClock:
    """Writes the offset file that the service's usage clock adds to the wall clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self._write()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the shared clock only moves forward, got {seconds} s")
        self.offset += seconds
        self._write()

    def advance_to(self, moment: float) -> None:
        """Move the clock so that it reads `moment` (Unix seconds) now."""
        self.advance(moment - self.now())

    def _write(self) -> None:
        # Rename over the old file, so the service never reads half a number.
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(repr(self.offset))
        os.replace(temporary, self.path)


@dataclass
class UsageService:
    """A running service, its database and its clock."""

    process: ServiceProcess
    engine: Engine
    clock: ShiftedClock
    environment: dict[str, str]


@dataclass
class UsageAccount:
    """A fresh account with two keys: `client` for the test, `setup` for preparations."""

    id: str
    name: str
    key: str
    client: httpx.Client
    setup: httpx.Client


def start_usage_service(
    folder: Path, database_url: str, extra: dict[str, str] | None = None
) -> UsageService:
    clock = ShiftedClock(folder / "clock-offset")
    environment = {
        **USAGE_ENVIRONMENT,
        "WP_LLM_CLOCK_OFFSET_FILE": str(clock.path),
        **(extra or {}),
    }
    process = ServiceProcess(database_url=database_url, data_dir=folder, env=environment).start()
    engine = create_db_engine(database_url)
    return UsageService(process=process, engine=engine, clock=clock, environment=environment)


@pytest.fixture(scope="session")
def usage_service(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsageService]:
    folder = tmp_path_factory.mktemp(f"usage-{backend}")
    url = new_database_url(backend, folder)
    service = start_usage_service(folder, url)
    yield service
    service.process.stop()
    service.engine.dispose()
    drop_database_url(url)


@pytest.fixture
def make_account(usage_service: UsageService) -> Iterator[Callable[..., UsageAccount]]:
    """Create accounts on `usage_service` with the given limit overrides."""
    clients: list[httpx.Client] = []

    def create(**limits: float | int) -> UsageAccount:
        account = new_account(usage_service, **limits)
        clients.extend([account.client, account.setup])
        return account

    yield create
    for client in clients:
        client.close()


def new_account(service: UsageService, **limits: float | int) -> UsageAccount:
    engine = service.engine
    name = "acct-" + uuid.uuid4().hex[:10]
    account_id = accounts.ensure_account(engine, name)
    setup_key = accounts.create_key(engine, account_id=account_id, name=name).token
    key = accounts.create_key(engine, account_id=account_id, name=name).token
    if limits:
        usage_store.set_account_limits(engine, account_id, dict(limits))
    return UsageAccount(
        id=account_id,
        name=name,
        key=key,
        client=service.process.client(key),
        setup=service.process.client(setup_key),
    )


def create_service_key(engine: Engine, name: str = "producer") -> str:
    return accounts.create_key(engine, account_id=None, kind="service", name=name).token


def events_of(
    engine: Engine, account_id: str, event_type: str | None = None
) -> list[dict[str, Any]]:
    """Read the account's events from the database, oldest first, without using any API key."""
    import json

    query = select(events.c.body).where(events.c.account_id == account_id).order_by(events.c.id)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    with engine.connect() as connection:
        return [json.loads(row.body) for row in connection.execute(query)]


def subscribe(account: UsageAccount, url: str, patterns: list[str], enabled: bool = True) -> None:
    response = account.setup.post(
        "/v1/webhooks", json={"url": url, "events": patterns, "enabled": enabled}
    )
    assert response.status_code == 201, response.text


def run_cli(
    database_url: str, data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `wp-llm ARGS` on the database; a wide terminal keeps Rich tables unwrapped."""
    environment = {
        **os.environ,
        **(env or {}),
        "WP_LLM_DATABASE_URL": database_url,
        "WP_LLM_DATA_DIR": str(data_dir),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "wp_llm", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """An empty, migrated database of the current backend, and an engine on it."""
    url = new_database_url(backend, tmp_path)
    engine = create_db_engine(url)
    migrate(engine)
    yield url, engine
    engine.dispose()
    drop_database_url(url)
