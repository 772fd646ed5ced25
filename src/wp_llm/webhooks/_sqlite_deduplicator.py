"""`SQLiteDeduplicator`: duplicate detection shared by the processes of one host."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

from wp_llm.webhooks._deduplication import (
    DEFAULT_PROCESSING_TIMEOUT,
    DEFAULT_TTL,
    duration_seconds,
)

__all__ = ["SQLiteDeduplicator"]

logger = logging.getLogger(__name__)

# How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_SECONDS = 5.0
# Expired rows are deleted at most this often, by whichever call comes next.
PURGE_INTERVAL_SECONDS = 60.0

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS wp_llm_received_events (
    event_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('processing', 'completed')),
    expires_at REAL NOT NULL  -- Unix seconds
) WITHOUT ROWID
"""
_CREATE_INDEX = """
CREATE INDEX IF NOT EXISTS wp_llm_received_events_expires_at
    ON wp_llm_received_events (expires_at)
"""
# Claim an event id: insert it, or take over a row whose claim has expired. One
# statement, so two processes racing on the same id cannot both change a row.
_CLAIM = """
INSERT INTO wp_llm_received_events (event_id, state, expires_at)
VALUES (:event_id, 'processing', :expires_at)
ON CONFLICT (event_id) DO UPDATE
    SET state = 'processing', expires_at = excluded.expires_at
    WHERE wp_llm_received_events.expires_at <= :now
"""
# Mark a claimed event id as handled, keeping it for the TTL.
_COMPLETE = """
INSERT INTO wp_llm_received_events (event_id, state, expires_at)
VALUES (:event_id, 'completed', :expires_at)
ON CONFLICT (event_id) DO UPDATE SET state = 'completed', expires_at = excluded.expires_at
"""
_RELEASE = "DELETE FROM wp_llm_received_events WHERE event_id = :event_id"
_IS_COMPLETED = """
SELECT 1 FROM wp_llm_received_events
WHERE event_id = :event_id AND state = 'completed' AND expires_at > :now
"""
_PURGE = "DELETE FROM wp_llm_received_events WHERE expires_at <= :now"


class SQLiteDeduplicator:
    """A deduplicator in an SQLite file, shared by every process that opens the same path.

    The table `wp_llm_received_events` is created if missing, so the file may be the
    application's own database. Rows expire after `ttl` and are purged as calls come in.
    Call `close()`, or use the object as a context manager, to close the connection.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: timedelta | float = DEFAULT_TTL,
        processing_timeout: timedelta | float = DEFAULT_PROCESSING_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if os.fspath(path) in ("", ":memory:"):
            raise ValueError(
                "SQLiteDeduplicator needs a file path; an in-memory database is private to "
                "one connection, so use MemoryDeduplicator instead"
            )
        self._ttl = duration_seconds(ttl, "ttl")
        self._processing_timeout = duration_seconds(processing_timeout, "processing_timeout")
        self._clock = clock
        self._next_purge_at = 0.0
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._set_up()

    def _set_up(self) -> None:
        with self._lock:
            # WAL lets readers in other processes proceed while one process writes.
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute(_CREATE_TABLE)
            self._connection.execute(_CREATE_INDEX)

    def claim(self, event_id: str) -> bool:
        now = self._clock()
        parameters = {
            "event_id": event_id,
            "expires_at": now + self._processing_timeout,
            "now": now,
        }
        with self._lock:
            self._purge_if_due(now)
            return self._connection.execute(_CLAIM, parameters).rowcount == 1

    def complete(self, event_id: str) -> None:
        parameters = {"event_id": event_id, "expires_at": self._clock() + self._ttl}
        with self._lock:
            self._connection.execute(_COMPLETE, parameters)

    def release(self, event_id: str) -> None:
        with self._lock:
            self._connection.execute(_RELEASE, {"event_id": event_id})

    def is_completed(self, event_id: str) -> bool:
        parameters = {"event_id": event_id, "now": self._clock()}
        with self._lock:
            return self._connection.execute(_IS_COMPLETED, parameters).fetchone() is not None

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> SQLiteDeduplicator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _purge_if_due(self, now: float) -> None:
        if now < self._next_purge_at:
            return
        self._next_purge_at = now + PURGE_INTERVAL_SECONDS
        purged = self._connection.execute(_PURGE, {"now": now}).rowcount
        if purged:
            logger.debug("purged %d expired event ids", purged)
