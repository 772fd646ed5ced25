"""Commands that run the service or touch its database directly."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Iterator
from pathlib import Path

import typer

from wp_llm.cli._app import app, fail, keys_app

HOST_OPTION = typer.Option(
    None, "--host", envvar="WP_LLM_HOST", help="Address to listen on (default: 127.0.0.1)."
)
PORT_OPTION = typer.Option(
    None,
    "--port",
    envvar="WP_LLM_PORT",
    min=1,
    max=65535,
    help="TCP port to listen on (default: 8080).",
)
DATABASE_OPTION = typer.Option(
    None,
    "--database",
    envvar="WP_LLM_DATABASE_URL",
    help=(
        "Database URL: sqlite:///path.db or postgresql://user@host/db "
        "(default: a SQLite file in the data dir)."
    ),
)
DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    envvar="WP_LLM_DATA_DIR",
    help="Folder for the SQLite file and the secret key file (default: ./var).",
)
PRIVATE_OPTION = typer.Option(
    None,
    "--allow-private-networks/--deny-private-networks",
    envvar="WP_LLM_ALLOW_PRIVATE_NETWORKS",
    help="Let deliveries reach loopback and private addresses (for local testing only).",
)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    try:
        from wp_llm.server.config import ConfigError, load_settings
    except ImportError:
        fail("the service needs the server extra: pip install 'wp-llm[server]'")
    try:
        return load_settings(overrides=overrides)
    except ConfigError as error:
        fail(str(error))


@contextlib.contextmanager
def _startup_errors(database_url: str) -> Iterator[None]:
    """Turn failures to open the database into an error message that names the fix."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from wp_llm.server.crypto import SecretKeyError

    try:
        yield
    except (ArgumentError, NoSuchModuleError):
        fail(
            f"{database_url!r} is not a database URL; use sqlite:///path/to/file.db "
            "or postgresql://user@host:5432/database (--database or WP_LLM_DATABASE_URL)"
        )
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
        fail(f"cannot open the database {database_url!r}: {reason}; check that it is running")
    except SecretKeyError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot use the data folder: {error}; check --data-dir or WP_LLM_DATA_DIR")


def _check_database_exists(settings) -> None:  # type: ignore[no-untyped-def]
    """Refuse to create a new SQLite file for commands that only make sense on an existing one."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        fail(
            f"no database at {url.database}; check --data-dir or --database "
            "(start the service once, or run `wp-llm migrate`, to create it)"
        )


def _engine(database: str | None, data_dir: Path | None, *, must_exist: bool = False):  # type: ignore[no-untyped-def]
    from wp_llm.server.db.engine import create_db_engine, migrate

    settings = _settings(database_url=database, data_dir=data_dir)
    if must_exist:
        _check_database_exists(settings)
    with _startup_errors(settings.resolved_database_url):
        engine = create_db_engine(settings.resolved_database_url)
        migrate(engine)
    return engine


def _context(settings):  # type: ignore[no-untyped-def]
    """Open and migrate the database and load the secret key, before any server starts."""
    from wp_llm.server.api.app import build_context

    with _startup_errors(settings.resolved_database_url):
        return build_context(settings)


def _event_loop_runner() -> asyncio.Runner:
    """Run on uvloop where it is installed, as `serve` does through uvicorn."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _configure_logging(level: str) -> None:
    from wp_llm.server.logs import configure_logging

    if level.lower() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    configure_logging(level)


@app.command()
def serve(
    host: str = HOST_OPTION,
    port: int = PORT_OPTION,
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    allow_private_networks: bool = PRIVATE_OPTION,
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Run the delivery engine in this process."
    ),
    log_level: str = typer.Option("info", "--log-level", envvar="WP_LLM_LOG_LEVEL"),
) -> None:
    """Run the API, and the delivery engine unless --no-worker; migrates the database first."""
    import uvicorn

    from wp_llm.server.api.app import create_app

    settings = _settings(
        host=host,
        port=port,
        database_url=database,
        data_dir=data_dir,
        allow_private_networks=allow_private_networks,
        run_worker=worker,
    )
    _configure_logging(log_level)
    uvicorn.run(
        create_app(settings, _context(settings), tune_gc=True),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_timeout)),
    )


@app.command("worker")
def run_worker(
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    allow_private_networks: bool = PRIVATE_OPTION,
    log_level: str = typer.Option("info", "--log-level", envvar="WP_LLM_LOG_LEVEL"),
) -> None:
    """Run only the delivery engine; start as many as you need against one database."""
    from wp_llm.server.engine.worker import DeliveryWorker
    from wp_llm.server.gc_tuning import freeze_startup_objects

    settings = _settings(
        database_url=database, data_dir=data_dir, allow_private_networks=allow_private_networks
    )
    _configure_logging(log_level)

    context = _context(settings)

    async def run() -> None:
        worker = DeliveryWorker(context.engine, context.box, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        freeze_startup_objects()
        await worker.run()

    with _event_loop_runner() as runner:
        runner.run(run())


@app.command()
def migrate(database: str = DATABASE_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Create or upgrade the database schema, then exit."""
    from alembic.runtime.migration import MigrationContext

    from wp_llm.server.db.engine import create_db_engine
    from wp_llm.server.db.engine import migrate as upgrade

    def revision() -> str | None:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    settings = _settings(database_url=database, data_dir=data_dir)
    with _startup_errors(settings.resolved_database_url):
        engine = create_db_engine(settings.resolved_database_url)
        before = revision()
        upgrade(engine)
        after = revision()
    engine.dispose()
    if before == after:
        typer.echo(f"database schema already at the newest revision, {after}", err=True)
    elif before is None:
        typer.echo(f"database schema created at revision {after}", err=True)
    else:
        typer.echo(f"database schema upgraded from revision {before} to {after}", err=True)


@keys_app.command("create")
def create_key(
    account: str = typer.Option(
        None, "--account", help="Account name; created if it does not exist."
    ),
    service: str = typer.Option(
        None, "--service", help="Create a platform service key with this name."
    ),
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Print a new API key alone on stdout; it is stored hashed and never shown again."""
    from wp_llm.server.store import accounts

    if bool(account) == bool(service):
        fail("pass exactly one of --account NAME or --service NAME")
    engine = _engine(database, data_dir)
    if account:
        created = accounts.create_key(
            engine, account_id=accounts.ensure_account(engine, account), name=account
        )
    else:
        created = accounts.create_key(engine, account_id=None, kind="service", name=service)
    typer.echo(created.token)


@keys_app.command("revoke")
def revoke_key(
    key_id: str = typer.Argument(..., help="The key id (key_…), not the key itself."),
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Revoke an API key at once."""
    from wp_llm.server.store import accounts

    if not accounts.revoke_key(_engine(database, data_dir), key_id):
        fail(f"no live key with id {key_id!r}")
    typer.echo(f"revoked {key_id}", err=True)
