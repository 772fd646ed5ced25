"""Database engines, schema migrations, and the retry delay after a database error."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_POOL_SIZE = 10
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5

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


def _begin_immediate(connection) -> None:  # type: ignore[no-untyped-def]
    # Take the write lock when the transaction starts, so two writers queue on
    # busy_timeout instead of failing with "database is locked" on upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, pool_size: int = POSTGRES_POOL_SIZE) -> Engine:
    """Create an engine; a SQLite file's folder is created if missing.

    A PostgreSQL engine opens at most `pool_size` connections, and twice as many more
    under bursts; `pool_pre_ping` replaces connections that a server restart closed.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, parsed.database)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2 * pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        # Errors and logs must not carry statement parameters: they hold URLs with
        # credentials and encrypted secrets.
        hide_parameters=True,
    )


def _create_sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "isolation_level": None},
        hide_parameters=True,
    )
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_immediate)
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
