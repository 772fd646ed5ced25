"""Databases of one bench run: SQLite files in a temp dir, or PostgreSQL databases it creates."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg

POSTGRES_ADMIN_URL = os.environ.get(
    "WP_LLM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DATABASE_PREFIX = "wpllm_bench_"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / ('bench-' + uuid.uuid4().hex[:8] + '.db')}"


def create_postgres_database() -> str:
    """Create an empty database next to the admin database and return its URL."""
    name = DATABASE_PREFIX + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database this bench created; SQLite files go with their temp dir."""
    if not url.startswith("postgresql"):
        return
    name = url.rsplit("/", 1)[1]
    if not name.startswith(DATABASE_PREFIX):
        raise ValueError(
            f"not dropping {name!r}: the bench drops only databases named {DATABASE_PREFIX}*"
        )
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
