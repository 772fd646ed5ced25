"""Commands that run the service or touch its database directly."""

from __future__ import annotations

import asyncio
import math
import signal
from pathlib import Path

import typer

from wp_llm.cli._app import app, fail, keys_app

HOST_OPTION = typer.Option(
    None, "--host", envvar="WP_LLM_HOST", help="Address to listen on [default: 127.0.0.1]."
)
PORT_OPTION = typer.Option(
    None, "--port", envvar="WP_LLM_PORT", help="TCP port to listen on [default: 8080]."
)
DATABASE_OPTION = typer.Option(
    None,
    "--database",
    envvar="WP_LLM_DATABASE_URL",
    help="Database URL: sqlite:///path.db or postgresql://user@host/db [default: sqlite file in the data dir].",
)
DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    envvar="WP_LLM_DATA_DIR",
    help="Folder for the SQLite file and the secret key file [default: ./var].",
)
PRIVATE_OPTION = typer.Option(
    None,
    "--allow-private-networks/--deny-private-networks",
    envvar="WP_LLM_ALLOW_PRIVATE_NETWORKS",
    help="Let deliveries reach loopback and private addresses (for local testing only).",
)


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    try:
        from wp_llm.server.config import ConfigError, load_settings
    except ImportError:
        fail("the service needs the server extra: pip install 'wp-llm[server]'")
    try:
        return load_settings().with_overrides(**overrides)
    except ConfigError as error:
        fail(str(error))


def _engine(database: str | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from wp_llm.server.db.engine import create_db_engine, migrate

    settings = _settings(database_url=database, data_dir=data_dir)
    engine = create_db_engine(settings.resolved_database_url)
    try:
        migrate(engine)
    except OperationalError as error:
        fail(f"cannot open the database {settings.resolved_database_url!r}: {error.orig}")
    return engine


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
    from wp_llm.server.logs import configure_logging

    configure_logging(log_level)
    settings = _settings(
        host=host,
        port=port,
        database_url=database,
        data_dir=data_dir,
        allow_private_networks=allow_private_networks,
        run_worker=worker,
    )
    uvicorn.run(
        create_app(settings),
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
    from wp_llm.server.api.app import build_context
    from wp_llm.server.engine.worker import DeliveryWorker
    from wp_llm.server.logs import configure_logging

    configure_logging(log_level)
    settings = _settings(
        database_url=database, data_dir=data_dir, allow_private_networks=allow_private_networks
    )

    async def run() -> None:
        context = await asyncio.to_thread(build_context, settings)
        worker = DeliveryWorker(context.engine, context.box, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(run())


@app.command()
def migrate(database: str = DATABASE_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Create or upgrade the database schema, then exit."""
    _engine(database, data_dir)
    typer.echo("database is up to date", err=True)


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
