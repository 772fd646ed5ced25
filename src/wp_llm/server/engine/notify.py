"""Wake idle workers as soon as deliveries become due, through PostgreSQL LISTEN/NOTIFY.

A transaction that makes deliveries due calls `announce_deliveries`, which queues a
NOTIFY on the `wp_llm_deliveries` channel. PostgreSQL sends it to every listener when
that transaction commits, and never if it rolls back, so a worker never wakes before
the rows are visible. Each worker keeps one dedicated connection that LISTENs and sets
its wake event. Notifications are only a shortcut: workers still poll, so a lost
notification or a listener that is reconnecting delays work by one poll interval at most.
SQLite has no such channel; there the announcement does nothing and workers poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text

from wp_llm.server.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS, database_retry_delay

logger = logging.getLogger(__name__)

DELIVERY_CHANNEL = "wp_llm_deliveries"

# A connection that a firewall or a failover dropped without a reset looks idle forever.
# A query after this much silence detects it, and the listener reconnects.
LISTENER_CHECK_SECONDS = 30.0

_ANNOUNCE = text("SELECT pg_notify(:channel, '')")


def announce_deliveries(connection: Connection) -> None:
    """Tell listening workers, when this transaction commits, that deliveries are due."""
    if connection.dialect.name == "postgresql":
        connection.execute(_ANNOUNCE, {"channel": DELIVERY_CHANNEL})


class DeliveryListener:
    """Calls `on_notify` for every announcement; reconnects with backoff until cancelled."""

    def __init__(self, url: str, on_notify: Callable[[], None], *, worker: str = "") -> None:
        self._url = url
        self._on_notify = on_notify
        self._worker = worker
        self._failures = 0

    async def run(self) -> None:
        """Listen until the task is cancelled; connection errors never end the loop."""
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as error:
                self._failures += 1
                delay = database_retry_delay(self._failures)
                logger.warning(
                    "delivery listener lost its connection; will reconnect",
                    extra={"worker": self._worker, "retry_in_s": delay, "error": str(error)[:200]},
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS
        )
        async with connection:
            await connection.execute(f"LISTEN {DELIVERY_CHANNEL}")
            logger.info(
                "delivery listener connected",
                extra={"worker": self._worker, "after_failures": self._failures},
            )
            self._failures = 0

            # Announcements sent while no connection listened are lost; claim once now.
            self._on_notify()
            while True:
                async for _notification in connection.notifies(timeout=LISTENER_CHECK_SECONDS):
                    self._on_notify()
                await connection.execute("SELECT 1")
