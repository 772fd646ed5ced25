"""Transactions of the SQLite engine: one writer at a time, and a failed one frees the lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from wp_llm.server.db.engine import create_db_engine

THREADS = 8
INCREMENTS_PER_THREAD = 50
# Far below the 30 s busy timeout, so a lock left held fails the test instead of stalling it.
JOIN_TIMEOUT_SECONDS = 20.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (value INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter (value) VALUES (0)"))
    yield engine
    engine.dispose()


def read_counter(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT value FROM counter")).scalar_one())


def increment(engine: Engine) -> None:
    # A read followed by a write: without a write lock from the start, concurrent
    # transactions would lose updates or fail on the upgrade.
    with engine.begin() as connection:
        value = connection.execute(text("SELECT value FROM counter")).scalar_one()
        connection.execute(text("UPDATE counter SET value = :value"), {"value": value + 1})


def run_in_threads(target, count: int) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the test's assert
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a transaction never finished"
    return errors


def test_concurrent_increments_lose_nothing(engine: Engine) -> None:
    def work() -> None:
        for _ in range(INCREMENTS_PER_THREAD):
            increment(engine)

    errors = run_in_threads(work, THREADS)
    assert errors == []
    assert read_counter(engine) == THREADS * INCREMENTS_PER_THREAD


def test_failed_transaction_frees_lock(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("UPDATE counter SET value = 100"))
        raise RuntimeError("abort the transaction")

    errors = run_in_threads(lambda: increment(engine), 2)
    assert errors == []
    assert read_counter(engine) == 2


def test_failed_statement_frees_lock(engine: Engine) -> None:
    with pytest.raises(Exception, match="no such table"), engine.begin() as connection:
        connection.execute(text("UPDATE missing_table SET value = 1"))

    errors = run_in_threads(lambda: increment(engine), 2)
    assert errors == []
    assert read_counter(engine) == 2
