"""Find out whether a publish committed after its connection was lost during COMMIT.

A client whose connection breaks after it sent COMMIT cannot tell whether the server
committed: the reply may be all that was lost. Storing the events again then could store
them twice, each counted against the quota and each delivered. So a publish checks with
the database first, on a new connection.

The server may still be running the lost transaction, because a backend notices a closed
socket only when it next reads or writes. So the check waits for that transaction to end
before it looks. Every publish counts its events on the account's row in `usage_periods`
before it sends COMMIT, and holds that row's lock until it ends. The check runs an upsert
on that row, which waits both for a row that the transaction updated and for one it
inserted. Then it looks for one of the transaction's event ids and rolls back. A
transaction's rows commit together, so one id is enough.

SQLite needs no check: its COMMIT runs in this process, and an error means it did not
commit.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from wp_llm.server.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS, libpq_url
from wp_llm.server.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# The maximum time the check waits for the lost transaction's lock on the account's counter.
# A publish holds it for milliseconds. A backend whose client vanished without closing
# its socket can hold it until TCP keepalive ends the session, by default after two
# hours on Linux, so the check gives up after this and the requests fail instead. The
# process's next group waits for the check meanwhile.
CHECK_LOCK_TIMEOUT_MS = 5_000

# Waits for the counter row's lock, as the counting upsert of `usage` does. ON CONFLICT
# DO UPDATE locks the existing row, and an insert waits for a transaction that inserted
# the same key to end. The check rolls back, so the row is left as it was.
_WAIT_FOR_COUNTER = """
    INSERT INTO usage_periods (account_id, period_start, event_count)
    VALUES (%(account_id)s, %(period_start)s, 0)
    ON CONFLICT (account_id, period_start)
    DO UPDATE SET event_count = usage_periods.event_count
"""
_FIND_EVENT = "SELECT 1 FROM events WHERE id = %(event_id)s"
_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(milliseconds)s, true)"


class CommitCheckFailed(ServiceUnavailable):
    """The check could not find out whether a transaction whose COMMIT reply was lost committed.

    The API responds 503 without `Retry-After`, and the SDKs do not retry it on their own,
    because a blind retry stores the events a second time if the lost COMMIT went through.
    """

    default_code = "commit_outcome_unknown"


def lost_during_commit(error: DBAPIError) -> bool:
    """Return whether a COMMIT failed by losing its PostgreSQL connection: outcome unknown.

    An error that the server reported while the connection stayed usable means that the
    transaction rolled back.
    """
    return error.connection_invalidated and isinstance(error.orig, psycopg.Error)


def committed(engine: Engine, account_id: str, period_start: int, event_id: str) -> bool:
    """Return whether the transaction that stored `event_id` committed, once it has ended.

    That transaction must have counted events on the account's counter for the period
    that starts at `period_start`. Raise CommitCheckFailed when the database cannot be
    reached, or the lock is not granted within `CHECK_LOCK_TIMEOUT_MS`.
    """
    ids = {"account_id": account_id, "event_id": event_id}
    try:
        # A new connection, not a pooled one: those may have broken with the lost one.
        with psycopg.connect(
            libpq_url(engine), connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS
        ) as connection:
            connection.execute(_SET_LOCK_TIMEOUT, {"milliseconds": str(CHECK_LOCK_TIMEOUT_MS)})
            connection.execute(_WAIT_FOR_COUNTER, {**ids, "period_start": period_start})
            found = connection.execute(_FIND_EVENT, ids).fetchone() is not None
            connection.rollback()
    except psycopg.Error as error:
        logger.error("commit check failed", extra={**ids, "error": str(error)[:200]})
        raise CommitCheckFailed(
            "The connection to the database was lost while this request's events were "
            "committed, and the database could not be reached to check whether they were "
            "stored. Look for them with GET /v1/events before you publish them again.",
            details={"event_id": event_id},
        ) from error
    logger.warning("connection lost during commit", extra={**ids, "committed": found})
    return found
