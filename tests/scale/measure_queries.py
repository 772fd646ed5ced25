"""Measure the engine's and the API's queries on a PostgreSQL database of millions of rows.

    python -m tests.scale.measure_queries [--events 1000000] [--database-url URL] [--keep]

It fills a fresh database with generated rows, using SQL generate_series in a few
statements. It runs the real store functions once to capture the SQL they send. Then
it runs each captured statement under EXPLAIN (ANALYZE, BUFFERS) in a transaction
that is rolled back, and prints the median execution time and the plan. Numbers and the
indexes chosen from them are in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import OperationalError

from tests.support.service import POSTGRES_ADMIN_URL
from wp_llm.server import ids
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import retention

DAY_MS = 86_400_000
HISTORY_DAYS = 60
RETENTION_DAYS = 30
EXPLAIN_RUNS = 3
STEP_ATTEMPTS = 5

# Crockford base32 of a millisecond timestamp: the first 10 characters of a ULID, so
# generated ids sort by time exactly as the service's ids do.
ULID_TIME = """
CREATE FUNCTION ulid_time(ms bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
                           ((ms >> (5 * (9 - k))) & 31)::int + 1, 1), '' ORDER BY k)
  FROM generate_series(0, 9) AS k
$$
"""

# One large account with half of all events over 5 webhooks, and 100 small accounts
# with 2 webhooks each. Every event has 2 deliveries. Among the events of the last
# 5% of the time span, one delivery in 20 is pending, and half of those are due now.
# One delivery in 100 failed for good after 3 attempts, and one in 4 took 2 attempts.
GENERATE = [
    """INSERT INTO accounts (id, name, created)
       SELECT 'acct_big', 'big', 0
       UNION ALL
       SELECT 'acct_' || lpad(a::text, 3, '0'), 'small ' || a, 0 FROM generate_series(0, 99) a""",
    """INSERT INTO webhooks (id, account_id, url, events, secrets, created, updated)
       SELECT 'webhook_big_' || w, 'acct_big', 'https://example.com/' || w, '["*"]', '[]', 0, 0
       FROM generate_series(0, 4) w
       UNION ALL
       SELECT 'webhook_' || lpad(a::text, 3, '0') || '_' || w, 'acct_' || lpad(a::text, 3, '0'),
              'https://example.com/' || a || '/' || w, '["*"]', '[]', 0, 0
       FROM generate_series(0, 99) a, generate_series(0, 1) w""",
    """INSERT INTO events (id, account_id, type, created, body)
       SELECT 'evt_' || ulid_time(t) || lpad(i::text, 16, '0'),
              CASE WHEN i % 2 = 0 THEN 'acct_big'
                   ELSE 'acct_' || lpad(((i / 2) % 100)::text, 3, '0') END,
              CASE WHEN i % 50 = 0 THEN 'usage.warning' ELSE 'generation.completed' END,
              t / 1000,
              convert_to(repeat('x', 300), 'UTF8')
       FROM (SELECT i, :start + i::bigint * :step AS t FROM generate_series(1, :events) i) s""",
    """INSERT INTO deliveries (id, account_id, event_id, webhook_id, event_type, status,
                               attempt_count, next_attempt_at, created, updated)
       SELECT 'dlv_' || substr(e.id, 5, 10) || lpad((2 * n + j)::text, 16, '0'),
              e.account_id, e.id,
              CASE WHEN e.account_id = 'acct_big' THEN 'webhook_big_' || ((n + j) % 5)
                   ELSE 'webhook_' || substr(e.account_id, 6) || '_' || j END,
              e.type,
              CASE WHEN n > :recent AND (2 * n + j) % 20 = 0 THEN 'pending'
                   WHEN (2 * n + j) % 100 = 1 THEN 'failed' ELSE 'succeeded' END,
              1,
              CASE WHEN n > :recent AND (2 * n + j) % 20 = 0
                   THEN CASE WHEN (2 * n + j) % 40 = 0 THEN :now - 1000 ELSE :now + 3600000 END END,
              e.created, e.created * 1000
       FROM (SELECT id, account_id, type, created, substr(id, 15)::bigint AS n FROM events) e,
            generate_series(0, 1) j""",
    """INSERT INTO attempts (id, delivery_id, webhook_id, account_id, attempted_at, outcome,
                             status_code, latency_ms, response_body)
       SELECT 'att_' || ulid_time(d.updated + g) || substr(d.id, 15) || g,
              d.id, d.webhook_id, d.account_id, d.updated + g * 1000,
              CASE WHEN d.status = 'succeeded' AND g = k THEN 'succeeded' ELSE 'failed' END,
              CASE WHEN d.status = 'succeeded' AND g = k THEN 204 ELSE 500 END,
              40 + g, 'ok'
       FROM (SELECT *, CASE WHEN status = 'failed' THEN 3
                            WHEN substr(id, 15)::bigint % 4 = 0 THEN 2 ELSE 1 END AS k
             FROM deliveries) d,
            LATERAL generate_series(1, d.k) g""",
]


@dataclass
class Measurement:
    """One captured statement and what EXPLAIN ANALYZE reported for it."""

    name: str
    statement: str
    median_ms: float
    plan: str


def create_database() -> str:
    name = "wpllm_measure_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def generate(engine: Engine, event_count: int) -> None:
    now = ids.now_ms()
    start = now - HISTORY_DAYS * DAY_MS
    values = {
        "start": start,
        "step": HISTORY_DAYS * DAY_MS // event_count,
        "events": event_count,
        "recent": int(event_count * 0.95),
        "now": now,
    }
    with engine.begin() as connection:
        connection.execute(text(ULID_TIME))
    for statement in GENERATE:
        used = {key: value for key, value in values.items() if f":{key}" in statement}
        run_step(engine, statement, used)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def run_step(engine: Engine, statement: str, values: dict[str, int]) -> None:
    """Run one generating statement; retry it if the server restarts meanwhile."""
    for attempt in range(1, STEP_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement), values)
        except OperationalError as error:
            print(f"-- attempt {attempt} failed: {str(error.orig)[:100]}")
            time.sleep(5)
            continue
        print(f"-- inserted {result.rowcount} rows in {time.monotonic() - started:.0f}s")
        return
    raise RuntimeError(f"a generating statement failed {STEP_ATTEMPTS} times")


class RolledBackEngine:
    """Stands in for an Engine: every transaction that a store function begins is rolled back.

    NOTE: statements that run outside a transaction still commit, as the claim does on
    PostgreSQL, so the first run of the claim leases the rows it measures.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.dialect = engine.dialect

    def connect(self) -> Connection:
        return self._engine.connect()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
            finally:
                transaction.rollback()


def capture(engine: Engine, run: Callable[[], Any]) -> list[tuple[str, Any]]:
    """Run a store function and return the statements it sent, with their parameters."""
    captured: list[tuple[str, Any]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [
        (s, p)
        for s, p in captured
        if not s.lstrip().upper().startswith(("BEGIN", "SELECT 1", "COMMIT"))
    ]


def explain(engine: Engine, statement: str, parameters: Any) -> tuple[float, str]:
    """Median execution time over EXPLAIN_RUNS runs, each rolled back, and the last plan."""
    times = []
    plan = ""
    connection = engine.raw_connection()
    try:
        for _ in range(EXPLAIN_RUNS):
            cursor = connection.cursor()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            connection.rollback()
            times.append(float(re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)))  # type: ignore[union-attr]
    finally:
        connection.close()
    return statistics.median(times), plan


def scenarios(engine: Engine) -> dict[str, Callable[[], Any]]:
    """The queries to measure, each run through the real store function."""
    now = ids.now_ms()
    with engine.connect() as connection:
        middle_delivery = connection.execute(
            text(
                "SELECT id FROM deliveries WHERE webhook_id = 'webhook_big_0' "
                "ORDER BY id OFFSET 100000 LIMIT 1"
            )
        ).scalar_one()
        failed_delivery = connection.execute(
            text(
                "SELECT id FROM deliveries "
                "WHERE status = 'failed' AND account_id = 'acct_big' LIMIT 1"
            )
        ).scalar_one()
    cutoff = now - RETENTION_DAYS * DAY_MS
    engine = RolledBackEngine(engine)  # type: ignore[assignment]
    return {
        "claim 200 due deliveries": lambda: delivery_store.claim_due(
            engine, owner="measure", limit=200, lease_ms=60_000, now=now
        ),
        "deliveries of a webhook, first page": lambda: delivery_store.list_deliveries(
            engine, "acct_big", webhook_id="webhook_big_0", limit=10
        ),
        "deliveries of a webhook, deep page": lambda: delivery_store.list_deliveries(
            engine, "acct_big", webhook_id="webhook_big_0", limit=10, starting_after=middle_delivery
        ),
        "deliveries of an account, first page": lambda: delivery_store.list_deliveries(
            engine, "acct_big", limit=10
        ),
        "failed deliveries of an account": lambda: delivery_store.list_deliveries(
            engine, "acct_big", status="failed", limit=10
        ),
        "failed deliveries of a webhook": lambda: delivery_store.list_deliveries(
            engine, "acct_big", webhook_id="webhook_big_0", status="failed", limit=10
        ),
        "one delivery with its attempts": lambda: delivery_store.get_delivery(
            engine, "acct_big", failed_delivery
        ),
        "events of an account by type": lambda: event_store.list_events(
            engine, "acct_big", event_types=["usage.warning"], limit=10
        ),
        "count pending deliveries": lambda: delivery_store.count_pending(engine),
        "purge one batch of 500 expired events": lambda: retention.purge_expired(
            engine, cutoff_ms=cutoff, max_batches=1
        ),
    }


def measure(engine: Engine) -> list[Measurement]:
    results = []
    for name, run in scenarios(engine).items():
        for index, (statement, parameters) in enumerate(capture(engine, run)):
            median, plan = explain(engine, statement, parameters)
            results.append(Measurement(f"{name} [{index + 1}]", statement, median, plan))
    return results


def table_sizes(engine: Engine) -> str:
    query = text("""
        SELECT relname, reltuples::bigint, pg_size_pretty(pg_total_relation_size(oid))
        FROM pg_class WHERE relname IN ('events', 'deliveries', 'attempts') ORDER BY relname""")
    with engine.connect() as connection:
        return "\n".join(
            f"-- {name}: {rows} rows, {size} with indexes"
            for name, rows, size in connection.execute(query)
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="Events to generate (2 deliveries each)."
    )
    parser.add_argument(
        "--database-url", help="Measure an existing generated database instead of a new one."
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the generated database afterwards."
    )
    options = parser.parse_args()

    url = options.database_url or create_database()
    engine = create_db_engine(url)
    try:
        if not options.database_url:
            migrate(engine)
            generate(engine, options.events)
        print(table_sizes(engine))
        for measurement in measure(engine):
            print(
                f"\n## {measurement.name}: {measurement.median_ms:.2f} ms\n"
                f"{measurement.statement}\n{measurement.plan}"
            )
    finally:
        engine.dispose()
        if not options.keep and not options.database_url:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
                connection.execute(
                    f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'
                )
    print(f"\n-- database: {url}")


if __name__ == "__main__":
    main()
