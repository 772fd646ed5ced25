"""`serve`, `worker` and `migrate` reject bad settings in one line, before opening the database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect
from typer.testing import CliRunner

from tests.sdk.test_cli import assert_clean_failure
from wp_llm.cli import (
    _server,  # noqa: F401 - registers the service commands
    app,
)
from wp_llm.server.db.engine import create_db_engine

STARTUP_COMMANDS = [["serve"], ["worker"], ["migrate"]]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the handlers that `serve` and `worker` install, which write to the runner's stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def database_tables(database_url: str) -> list[str]:
    sqlite_path = Path(database_url.removeprefix("sqlite:///"))
    if database_url.startswith("sqlite:///") and not sqlite_path.exists():
        return []
    engine = create_db_engine(database_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", STARTUP_COMMANDS)
@pytest.mark.parametrize(
    ("database_url", "shown"),
    [
        ("mysql://user:hunter2@db/app", "got a mysql:// URL"),
        ("postgresql+asyncpg://db/app", "got a postgresql+asyncpg:// URL"),
        ("sqlite://", "got a sqlite:// URL"),  # in memory: each connection opens a new database
        ("var/wp-llm.db", "got 'var/wp-llm.db'"),
    ],
)
def test_startup_unsupported_database_url(
    tmp_path: Path, command: list[str], database_url: str, shown: str
) -> None:
    env = {"WP_LLM_DATABASE_URL": database_url, "WP_LLM_DATA_DIR": str(tmp_path)}

    result = CliRunner().invoke(app, command, env=env)

    assert_clean_failure(
        result,
        2,
        "WP_LLM_DATABASE_URL (--database) must start with sqlite:/// or postgresql://",
        shown,
    )
    assert "hunter2" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2  # one message, wrapped at 80 columns


def test_startup_database_flag_checked_too() -> None:
    result = CliRunner().invoke(app, ["migrate", "--database", "mysql://db/app"])

    assert_clean_failure(result, 2, "WP_LLM_DATABASE_URL (--database)", "got a mysql:// URL")


@pytest.mark.parametrize("command", STARTUP_COMMANDS)
def test_startup_bad_secret_key_leaves_database_alone(
    database_url: str, tmp_path: Path, command: list[str]
) -> None:
    env = {
        "WP_LLM_DATABASE_URL": database_url,
        "WP_LLM_DATA_DIR": str(tmp_path / "data"),
        "WP_LLM_SECRET_KEY": "notakey",
    }

    result = CliRunner().invoke(app, command, env=env)

    assert_clean_failure(result, 2, "WP_LLM_SECRET_KEY must be a Fernet key")
    assert database_tables(database_url) == []
    assert not (tmp_path / "data").exists()


def test_startup_good_secret_key_migrates(database_url: str, tmp_path: Path) -> None:
    env = {
        "WP_LLM_DATABASE_URL": database_url,
        "WP_LLM_DATA_DIR": str(tmp_path),
        "WP_LLM_SECRET_KEY": Fernet.generate_key().decode(),
    }

    result = CliRunner().invoke(app, ["migrate"], env=env)

    assert result.exit_code == 0, result.output
    assert "webhooks" in database_tables(database_url)
