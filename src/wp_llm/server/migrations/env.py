"""Alembic environment: runs on the connection that `migrate()` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from wp_llm.server.db.engine import normalize_url
from wp_llm.server.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = normalize_url(config.get_main_option("sqlalchemy.url") or "")
    with create_engine(url).connect() as conn:
        _run(conn)
