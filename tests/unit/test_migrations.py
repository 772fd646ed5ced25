"""The Alembic history has one head, and the migrated schema matches the table definitions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from wp_llm.server.db.engine import MIGRATIONS_DIR, create_db_engine, migrate
from wp_llm.server.db.schema import metadata


def test_migration_history_has_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_migrated_schema_matches_tables(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []
