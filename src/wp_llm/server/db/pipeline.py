"""PostgreSQL transactions that send their statements without waiting for each result.

In psycopg's pipeline mode, statements are queued and sent together, and the client
waits only when it reads a result. A transaction that needs the results of its first
statements to build the next ones then costs two round trips, however many statements it
runs. The first sends BEGIN and the first statements and reads their results. The second
sends the rest with COMMIT.

Round trips cost more than their network time in a busy process: after each one, the
thread that waited needs the interpreter lock back, and it waits behind the event loop.

A connection lost after COMMIT was sent leaves the outcome unknown: the server may have
committed before the connection broke. That case raises CommitOutcomeUnknown, so that
the caller finds out before it stores anything again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import RowFactory
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.sql import ClauseElement


class CommitOutcomeUnknown(Exception):
    """The connection was lost after COMMIT was sent, so the transaction may have committed."""


class PipelinedTransaction:
    """Statements of one transaction, queued on a psycopg connection in pipeline mode."""

    def __init__(self, driver_connection: psycopg.Connection[Any]) -> None:
        self._connection = driver_connection
        self.rolled_back = False

    def execute(
        self,
        query: str,
        parameters: Mapping[str, Any] | tuple[Any, ...],
        row_factory: RowFactory[Any] | None = None,
    ) -> psycopg.Cursor[Any]:
        """Queue a statement. Reading its cursor sends the queue and waits for the results."""
        if row_factory is None:
            cursor = self._connection.cursor()
        else:
            cursor = self._connection.cursor(row_factory=row_factory)
        return cursor.execute(query, parameters)  # type: ignore[arg-type]

    def rollback(self) -> None:
        """End the transaction with ROLLBACK instead of COMMIT."""
        self.rolled_back = True


@contextmanager
def pipelined_transaction(connection: Connection) -> Iterator[PipelinedTransaction]:
    """Run a transaction on the PostgreSQL connection in pipeline mode.

    The connection must not be in a transaction. BEGIN is queued with the first statements
    and COMMIT (or ROLLBACK, if the body asked for it) with the last ones, where psycopg
    would send BEGIN in a round trip of its own. The driver connection is switched to
    autocommit for this, so that psycopg leaves the transaction to these statements, and
    back afterwards. When the database raises, the transaction is rolled back and the
    connection kept if it is still usable. On any other exception, or if the rollback
    fails, the connection is discarded rather than returned to the pool in an unknown
    state.

    Raise CommitOutcomeUnknown, from the driver's error, when the connection is lost
    once COMMIT is queued. A statement error, one of COMMIT's own included, leaves the
    connection usable and rolls the transaction back, because the server skips what was
    queued after the failed statement.
    """
    driver_connection = connection.connection.driver_connection
    assert isinstance(driver_connection, psycopg.Connection)
    driver_connection.autocommit = True
    commit_queued = False
    try:
        with driver_connection.pipeline():
            transaction = PipelinedTransaction(driver_connection)
            driver_connection.execute(b"BEGIN")
            yield transaction
            commit_queued = not transaction.rolled_back
            driver_connection.execute(b"ROLLBACK" if transaction.rolled_back else b"COMMIT")
        driver_connection.autocommit = False
    except psycopg.Error as error:
        connection_lost = driver_connection.broken
        _roll_back_or_discard(connection, driver_connection)
        if commit_queued and connection_lost:
            raise CommitOutcomeUnknown(f"connection lost during COMMIT: {error}") from error
        raise
    except BaseException:
        connection.invalidate()
        raise


def _roll_back_or_discard(
    connection: Connection, driver_connection: psycopg.Connection[Any]
) -> None:
    """Roll back the transaction that the database failed, and keep the connection if that works."""
    if driver_connection.closed or driver_connection.broken:
        connection.invalidate()
        return
    try:
        # In autocommit mode, psycopg sends ROLLBACK only when a transaction is open.
        driver_connection.rollback()
        driver_connection.autocommit = False
    except Exception:  # noqa: BLE001 - the caller raises the error that started this
        connection.invalidate()
    except BaseException:
        connection.invalidate()
        raise


@functools.cache
def postgresql_text(statement: ClauseElement) -> tuple[str, Mapping[str, Any]]:
    """Compile a SQLAlchemy statement for psycopg once: its SQL and its bound values.

    The values are those the statement carries, such as literals SQLAlchemy binds as
    parameters; a caller adds its own to a copy.
    """
    compiled = statement.compile(dialect=psycopg_dialect())
    return str(compiled), dict(compiled.params)
