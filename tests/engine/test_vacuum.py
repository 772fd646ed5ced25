"""The worker's vacuum of `deliveries` on a real PostgreSQL database."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from tests.support.service import create_postgres_database, drop_postgres_database
from wp_llm.server.db.engine import create_db_engine, libpq_url, migrate
from wp_llm.server.store import accounts
from wp_llm.server.store.vacuum import VACUUM_LOCK_KEY, vacuum_if_needed

DEAD_ROWS = 200
STATS_TIMEOUT_SECONDS = 10.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    url = create_postgres_database()
    database = create_db_engine(url)
    migrate(database)
    yield database
    database.dispose()
    drop_postgres_database(url)


def add_dead_rows(engine: Engine, count: int) -> None:
    """Insert `count` pending deliveries and finish them all, leaving `count` dead rows."""
    account_id = accounts.ensure_account(engine, "vacuumed")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (id, account_id, type, created, body) "
                "VALUES ('evt_1', :account_id, 'generation.completed', 0, '\\x7b7d')"
            ),
            {"account_id": account_id},
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (id, account_id, event_id, webhook_id, event_type, "
                "status, next_attempt_at, created, updated) "
                "SELECT 'dlv_' || n, :account_id, 'evt_1', 'webhook_1', 'generation.completed', "
                "'pending', 0, 0, 0 FROM generate_series(1, :count) AS n"
            ),
            {"count": count, "account_id": account_id},
        )
    with engine.begin() as connection:
        connection.execute(text("UPDATE deliveries SET status = 'succeeded'"))


def dead_rows(engine: Engine) -> int:
    query = text("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'deliveries'")
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def wait_for_dead_rows(engine: Engine, count: int) -> None:
    """Wait until the statistics, which lag behind commits, count the dead rows."""
    deadline = time.monotonic() + STATS_TIMEOUT_SECONDS
    while dead_rows(engine) < count:
        assert time.monotonic() < deadline, f"the statistics never showed {count} dead rows"
        time.sleep(0.1)


def last_vacuum(engine: Engine) -> object:
    query = text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'deliveries'")
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_vacuum_runs_past_threshold(engine: Engine) -> None:
    add_dead_rows(engine, DEAD_ROWS)
    wait_for_dead_rows(engine, DEAD_ROWS)

    vacuumed = vacuum_if_needed(engine, dead_rows=DEAD_ROWS)

    assert vacuumed is not None
    assert vacuumed >= DEAD_ROWS
    deadline = time.monotonic() + STATS_TIMEOUT_SECONDS
    while last_vacuum(engine) is None:
        assert time.monotonic() < deadline, "the vacuum never showed in the statistics"
        time.sleep(0.1)
    assert dead_rows(engine) < DEAD_ROWS


def test_vacuum_skipped_below_threshold(engine: Engine) -> None:
    add_dead_rows(engine, DEAD_ROWS)
    wait_for_dead_rows(engine, DEAD_ROWS)

    vacuumed = vacuum_if_needed(engine, dead_rows=DEAD_ROWS * 100)

    assert vacuumed is None
    assert last_vacuum(engine) is None


def test_vacuum_skipped_while_another_worker_vacuums(engine: Engine) -> None:
    add_dead_rows(engine, DEAD_ROWS)
    wait_for_dead_rows(engine, DEAD_ROWS)

    # Another worker's session holds the lock.
    with psycopg.connect(libpq_url(engine), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (VACUUM_LOCK_KEY,))
        vacuumed = vacuum_if_needed(engine, dead_rows=DEAD_ROWS)

    assert vacuumed is None
    assert last_vacuum(engine) is None
