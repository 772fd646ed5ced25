"""Database engines, schema migrations, and the retry delay after a database error."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_POOL_SIZE = 10
# SQLite connections kept open: the API's thread pool (40 threads in AnyIO) plus the
# delivery engine's threads. Transactions still run one at a time.
SQLITE_POOL_SIZE = 48
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# A pooled PostgreSQL connection is tested with a round trip before use only once it has
# sat unused this long. Testing it at every checkout (`pool_pre_ping`) cost the delivery
# worker a round trip per query, and about 9 % of its throughput.
PING_AFTER_IDLE_SECONDS = 1.0
# Key in a pooled connection's record info: when the connection was last returned.
_IDLE_SINCE = "wp_llm_idle_since"

# Any fixed number: processes that migrate at the same moment take turns on this lock.
MIGRATION_LOCK_KEY = 0x77706C6C6D

# Waits between retries while the database is unreachable: doubling from the first
# to the cap, so a restart is noticed within seconds and an outage costs few queries.
DATABASE_RETRY_FIRST_SECONDS = 0.25
DATABASE_RETRY_MAX_SECONDS = 5.0


def normalize_url(url: str) -> str:
    """Map `postgresql://` and `postgres://` to the psycopg 3 driver that the service ships with."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def libpq_url(engine: Engine) -> str:
    """Return the engine's URL without the driver suffix, as psycopg.connect() takes it."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def database_retry_delay(failures: int) -> float:
    """Seconds to wait after `failures` consecutive database errors before trying again."""
    exponent = min(max(failures - 1, 0), 16)
    return float(min(DATABASE_RETRY_FIRST_SECONDS * 2**exponent, DATABASE_RETRY_MAX_SECONDS))


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while the engine writes; NORMAL sync stays durable across
    # process crashes (only an OS crash can lose the last commits).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _TransactionGate:
    """Queues the SQLite transactions of one process on a lock, in front of SQLite's own.

    SQLite makes a waiting writer poll with sleeps of up to 100 ms, so under concurrent
    requests the write lock often sat free while every waiter slept. Threads of one
    process wait here instead and get the lock as soon as it is released. Other
    processes still queue on busy_timeout.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The DBAPI connection whose transaction holds the lock; None while it is free.
        self._holder: object | None = None

    def begin(self, connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock when the transaction starts, so two
        # writers queue instead of failing with "database is locked" on upgrade.
        # NOTE: read-only transactions take the lock too, because SQLAlchemy begins
        # `engine.connect()` and `engine.begin()` transactions the same way.
        if not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked")
        try:
            connection.dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        self._holder = connection.dbapi_connection

    def commit(self, connection: Any) -> None:
        try:
            connection.dbapi_connection.commit()
        finally:
            self._release(connection)

    def rollback(self, connection: Any) -> None:
        # SQLAlchemy also rolls back every connection it returns to the pool, so this
        # runs for connections that hold no transaction.
        try:
            connection.dbapi_connection.rollback()
        finally:
            self._release(connection)

    def close(self, dbapi_connection: Any) -> None:
        # An invalidated connection is closed without a rollback.
        try:
            dbapi_connection.close()
        finally:
            self._release_held_by(dbapi_connection)

    def _release(self, connection: Any) -> None:
        self._release_held_by(connection.dbapi_connection)

    def _release_held_by(self, dbapi_connection: object) -> None:
        if self._holder is not None and self._holder is dbapi_connection:
            self._holder = None
            self._lock.release()


def create_db_engine(url: str, *, pool_size: int = POSTGRES_POOL_SIZE) -> Engine:
    """Create an engine; a SQLite file's folder is created if missing.

    A PostgreSQL engine opens at most `pool_size` connections, and twice as many more
    under bursts. A connection that sat idle is tested before use, so one that a server
    restart closed is replaced instead of failing a query.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, parsed.database)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2 * pool_size,
        # The most recently returned connection goes out first, so under moderate load a
        # few connections stay busy and skip the idle ping, and the rest stay idle.
        pool_use_lifo=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        # Errors and logs must not carry statement parameters: they hold URLs with
        # credentials and encrypted secrets.
        hide_parameters=True,
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Test a pooled connection before use if it sat idle for `PING_AFTER_IDLE_SECONDS`.

    A failed test invalidates the pool, as `pool_pre_ping` does: a restart closed every
    connection opened before it. A connection that dies while in steady use fails one
    query, which callers retry like any other database error.
    """

    def connected(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info.pop(_IDLE_SINCE, None)

    def checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError(str(error)) from error
            raise

    event.listen(engine.pool, "connect", connected)
    event.listen(engine.pool, "checkin", checked_in)
    event.listen(engine.pool, "checkout", checked_out)


def _create_sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "isolation_level": None},
        hide_parameters=True,
        # Enough kept connections for every thread that may use one at once: beyond the
        # pool size, each returned connection was closed and the next one reopened.
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE // 2,
    )
    # The dialect's own steps and a pool event take the place of Engine events, because a
    # single Engine event listener makes SQLAlchemy dispatch events on every connection
    # and statement, which doubled the CPU time of a short transaction. SQLAlchemy wraps
    # errors of `do_begin` as it wraps those of statements, so a busy lock still raises
    # its OperationalError.
    event.listen(engine.pool, "connect", _configure_sqlite)
    gate = _TransactionGate()
    engine.dialect.do_begin = gate.begin  # type: ignore[method-assign, assignment]
    engine.dialect.do_commit = gate.commit  # type: ignore[method-assign, assignment]
    engine.dialect.do_rollback = gate.rollback  # type: ignore[method-assign, assignment]
    engine.dialect.do_close = gate.close  # type: ignore[method-assign, assignment]
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if is_postgresql(engine):
            # Processes that start together would otherwise create the same tables at
            # once, and all but one fail; the lock ends with this transaction.
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
    logger.info("database migrated", extra={"dialect": engine.dialect.name})
