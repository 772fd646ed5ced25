"""Fixtures of the scale-out tests: a fresh PostgreSQL database and the fast receiver.

These tests run several service processes against one PostgreSQL database. Tests
marked `restarts_postgresql` stop or restart the machine's PostgreSQL server, so no
other test may use it at the same time; CI runs the suite serially.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scale.cluster import FastReceiver, start_postgresql
from tests.support.service import create_postgres_database, drop_postgres_database


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "restarts_postgresql: stops or restarts the local PostgreSQL server during the test",
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database, dropped after the test."""
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def restartable_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty database for a test that stops PostgreSQL; the server runs again afterwards."""
    yield postgres_url
    start_postgresql()


@pytest.fixture
def fast_receiver() -> Iterator[FastReceiver]:
    receiver = FastReceiver().start()
    yield receiver
    receiver.stop()
