"""The PostgreSQL pool tests a connection before use only after it sat idle.

Each test closes its pooled connection from the server side, as a server restart
would, and then uses the engine again.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tests.support.service import create_postgres_database, drop_postgres_database
from wp_llm.server.db import engine as db_engine
from wp_llm.server.db.engine import create_db_engine, libpq_url


@pytest.fixture
def engine() -> Iterator[Engine]:
    url = create_postgres_database()
    created = create_db_engine(url, pool_size=1)
    yield created
    created.dispose()
    drop_postgres_database(url)


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def close_from_server(engine: Engine, pid: int) -> None:
    with psycopg.connect(libpq_url(engine), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_closed_idle_connection_replaced(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    closed = backend_pid(engine)
    close_from_server(engine, closed)
    # The pooled connection is closed, so the ping before use fails and the pool reconnects.
    assert backend_pid(engine) != closed


def test_closed_busy_connection_fails_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    closed = backend_pid(engine)
    close_from_server(engine, closed)
    with pytest.raises(OperationalError):
        backend_pid(engine)
    # The failure invalidated the connection, so the next query gets a new one.
    assert backend_pid(engine) != closed


def test_busy_connection_not_pinged(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def counted_ping(connection: object) -> bool:
        pings.append(connection)
        return real_ping(connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    for _ in range(5):
        backend_pid(engine)
    assert pings == []
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    backend_pid(engine)
    assert len(pings) == 1


def test_pool_reuses_last_returned_connection() -> None:
    url = create_postgres_database()
    engine = create_db_engine(url, pool_size=3)
    try:
        checked_out = [engine.connect() for _ in range(3)]
        for connection in checked_out:
            connection.close()
        # Last in, first out: the other connections stay idle, and the busy one is not pinged.
        assert len({backend_pid(engine) for _ in range(5)}) == 1
    finally:
        engine.dispose()
        drop_postgres_database(url)
