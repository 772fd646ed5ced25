"""PostgreSQL's pipelined publish, and webhooks deleted while a publish runs."""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from tests.engine.test_claim import LEASE_MS, add_webhook, claim
from tests.support.service import create_postgres_database, drop_postgres_database
from wp_llm.server.db import engine as db_engine
from wp_llm.server.db.engine import create_db_engine, libpq_url, migrate
from wp_llm.server.db.pipeline import pipelined_transaction
from wp_llm.server.db.schema import deliveries, events, usage_periods
from wp_llm.server.errors import QuotaExceeded
from wp_llm.server.store import accounts, health
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.usage import GroupedPublish, MeteredBatch

EVENT_TYPE = "generation.completed"
OWNER = "local-worker"


@pytest.fixture
def engine() -> Iterator[Engine]:
    url = create_postgres_database()
    created = create_db_engine(url, pool_size=4)
    migrate(created)
    yield created
    created.dispose()
    drop_postgres_database(url)


def request(account_id: str, count: int) -> GroupedPublish:
    return GroupedPublish(account_id, [(EVENT_TYPE, {"index": index}) for index in range(count)])


def publish_group(
    engine: Engine,
    *group: GroupedPublish,
    quota: int = 0,
    hand_off: delivery_store.HandOff | None = None,
) -> list[MeteredBatch | Exception]:
    return usage_store.publish_metered_group(
        engine, list(group), default_quota=quota, thresholds=(), now=time.time(), hand_off=hand_off
    )


def offer(room: int) -> delivery_store.HandOff:
    return delivery_store.HandOff(
        owner=OWNER,
        lease_ms=LEASE_MS,
        room=room,
        quotas={},
        default_quota=8,
        concurrency_factor=4,
    )


def count_rows(engine: Engine, table: object, *where: object) -> int:
    query = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def delivery_rows(engine: Engine) -> dict[str, Any]:
    query = select(
        deliveries.c.id, deliveries.c.webhook_id, deliveries.c.lease_owner, deliveries.c.status
    )
    with engine.connect() as connection:
        return {row.id: row for row in connection.execute(query)}


def pooled_state(engine: Engine) -> tuple[int, bool, psycopg.pq.TransactionStatus]:
    """Return the backend, autocommit flag and transaction status of the pooled connection."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        state = (driver.info.backend_pid, driver.autocommit, driver.info.transaction_status)
        connection.rollback()
    return state


def test_group_stores_and_leases(engine: Engine) -> None:
    first = accounts.ensure_account(engine, "first")
    second = accounts.ensure_account(engine, "second")
    first_hooks = [add_webhook(engine, first, ["*"]) for _ in range(3)]
    second_hook = add_webhook(engine, second, [EVENT_TYPE])
    add_webhook(engine, second, ["analysis.*"])

    results = publish_group(engine, request(second, 2), request(first, 1), hand_off=offer(2))

    second_batch, first_batch = results
    assert isinstance(first_batch, MeteredBatch)
    assert isinstance(second_batch, MeteredBatch)
    assert [len(event.delivery_ids) for event in second_batch.events] == [1, 1]
    assert len(first_batch.events[0].delivery_ids) == 3
    # The hand-off had room for two of the five deliveries.
    leased = [*first_batch.leased, *second_batch.leased]
    assert len(leased) == 2
    stored = delivery_rows(engine)
    assert len(stored) == 5
    assert {stored[delivery.id].lease_owner for delivery in leased} == {OWNER}
    assert {row.webhook_id for row in stored.values()} == {*first_hooks, second_hook}
    assert count_rows(engine, events) == 3
    # The connection went back to the pool as the pool expects it.
    _, autocommit, status = pooled_state(engine)
    assert autocommit is False
    assert status == psycopg.pq.TransactionStatus.IDLE
    # Deliveries left unleased are claimable.
    assert len(claim(engine, owner="worker-b", default_quota=8)) == 3


def test_full_quota_takes_common_path(engine: Engine) -> None:
    limited = accounts.ensure_account(engine, "limited")
    add_webhook(engine, limited, ["*"])
    backend_before = pooled_state(engine)[0]

    results = publish_group(engine, request(limited, 3), quota=2)

    assert isinstance(results[0], QuotaExceeded)
    assert count_rows(engine, events) == 0
    assert count_rows(engine, deliveries) == 0
    assert count_rows(engine, usage_periods, usage_periods.c.event_count > 0) == 0
    # The rollback kept the connection: the same backend serves the next publish.
    backend_after, autocommit, status = pooled_state(engine)
    assert (backend_after, autocommit, status) == (
        backend_before,
        False,
        psycopg.pq.TransactionStatus.IDLE,
    )


def test_pinged_connection_publishes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The pool's test of an idle connection leaves no transaction for the pipeline."""
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    account_id = accounts.ensure_account(engine, "pinged")
    add_webhook(engine, account_id, ["*"])

    with caplog.at_level(logging.DEBUG, logger=usage_store.__name__):
        for _ in range(2):
            publish_group(engine, request(account_id, 1))

    assert count_rows(engine, events) == 2
    assert count_rows(engine, deliveries) == 2
    # Had the pipelined transaction failed, the common path would have stored them.
    assert not [record for record in caplog.records if "rolled back" in record.getMessage()]


def test_rollback_stores_nothing(engine: Engine) -> None:
    account_id = accounts.ensure_account(engine, "rolled-back")
    with engine.connect() as connection, pipelined_transaction(connection) as transaction:
        transaction.execute(
            "INSERT INTO usage_periods (account_id, period_start, event_count) "
            "VALUES (%(account)s, 0, 5)",
            {"account": account_id},
        )
        transaction.rollback()
    assert count_rows(engine, usage_periods) == 0


def test_failed_statement_keeps_connection(engine: Engine) -> None:
    backend_before = pooled_state(engine)[0]
    with (
        pytest.raises(psycopg.errors.UndefinedTable),
        engine.connect() as connection,
        pipelined_transaction(connection) as transaction,
    ):
        transaction.execute("SELECT * FROM no_such_table", {}).fetchall()
    # The failed transaction was rolled back, and the same backend serves the next use.
    assert pooled_state(engine) == (backend_before, False, psycopg.pq.TransactionStatus.IDLE)


def test_lost_connection_discarded(engine: Engine) -> None:
    backend_before = pooled_state(engine)[0]
    with (
        pytest.raises(psycopg.OperationalError),
        engine.connect() as connection,
        pipelined_transaction(connection) as transaction,
    ):
        transaction.execute("SELECT pg_terminate_backend(pg_backend_pid())", {}).fetchall()
    backend_after, autocommit, status = pooled_state(engine)
    assert backend_after != backend_before
    assert autocommit is False
    assert status == psycopg.pq.TransactionStatus.IDLE


def test_health_update_does_not_block_publish(engine: Engine) -> None:
    """The engine locks webhooks for a health update in a mode that publishes do not wait for."""
    account_id = accounts.ensure_account(engine, "failing-endpoint")
    webhook_id = add_webhook(engine, account_id, ["*"])
    with engine.begin() as connection:
        health._read(connection, [webhook_id], lock=True)
        publisher, published = in_thread(lambda: publish_group(engine, request(account_id, 1))[0])
        publisher.join(10)
        # Still inside the health update's transaction: the publish did not wait for it.
        assert not publisher.is_alive()
    assert isinstance(published[0], MeteredBatch)
    assert len(published[0].events[0].delivery_ids) == 1


class TurnCountingProxy:
    """A TCP relay to PostgreSQL that counts the client's turns to speak.

    A turn starts when the client sends after the server last spoke. PostgreSQL responds
    to a pipeline only when asked to, so the turns of a transaction are its round trips.
    """

    def __init__(self, port: int) -> None:
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.turns = 0
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        client_spoke_last = False
        with client, server, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while not self._stopped.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client and not client_spoke_last:
                        self.turns += 1
                    client_spoke_last = source is client
                    key.data.sendall(data)

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()


def test_pipelined_publish_makes_two_round_trips(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN goes with the first statements and COMMIT with the last ones."""
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    account_id = accounts.ensure_account(engine, "counted")
    add_webhook(engine, account_id, ["*"])
    proxy = TurnCountingProxy(engine.url.port or 5432)
    relayed = create_db_engine(
        engine.url.set(port=proxy.port).render_as_string(hide_password=False), pool_size=1
    )
    try:
        pooled_state(relayed)  # connects, so that the counts below are of the publishes only
        proxy.turns = 0
        publish_group(relayed, request(account_id, 2), request(account_id, 1))
        pipelined = proxy.turns
        proxy.turns = 0
        with relayed.begin() as connection:
            event_store.insert_events(connection, account_id, [(EVENT_TYPE, {})])
        unpipelined = proxy.turns
    finally:
        relayed.dispose()
        proxy.close()
    assert count_rows(engine, deliveries) == 4
    assert pipelined == 2
    # BEGIN, the webhooks, the insert and COMMIT, one at a time.
    assert unpipelined == 4


def hold_events_table(engine: Engine) -> psycopg.Connection:
    """Lock the events table against inserts until the returned connection commits."""
    holder = psycopg.connect(libpq_url(engine))
    holder.execute("LOCK TABLE events IN SHARE MODE")
    return holder


def waiting_for_lock(engine: Engine, query_start: str) -> bool:
    """Return whether a backend runs a statement starting with `query_start`, waiting on a lock."""
    with psycopg.connect(libpq_url(engine), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchall()
    return any(str(row[0]).lstrip().startswith(query_start) for row in rows)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target())
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("path", ["pipelined", "transaction"])
def test_delete_during_publish_cancels_its_deliveries(engine: Engine, path: str) -> None:
    """A webhook deleted after a publish read it, but before that publish commits."""
    account_id = accounts.ensure_account(engine, "deleted-mid-publish")
    webhook_id = add_webhook(engine, account_id, ["*"])

    def publish_one() -> object:
        if path == "pipelined":
            return publish_group(engine, request(account_id, 1))[0]
        with engine.begin() as connection:
            return event_store.insert_events(connection, account_id, [(EVENT_TYPE, {})])

    holder = hold_events_table(engine)
    try:
        # The publish reads the webhook, then waits to insert its event.
        publisher, published = in_thread(publish_one)
        wait_for(lambda: waiting_for_lock(engine, "WITH new_events"))
        deleter, deleted = in_thread(
            lambda: webhook_store.delete_webhook(engine, account_id, webhook_id)
        )
        # The delete waits for the publish, which holds a lock on the webhook's row.
        wait_for(lambda: waiting_for_lock(engine, "DELETE FROM webhooks"))
    finally:
        holder.commit()
        holder.close()
    publisher.join(10)
    deleter.join(10)
    assert deleted == [None]
    assert not isinstance(published[0], Exception), published
    assert count_rows(engine, events) == 1
    # The delivery that the publish stored was cancelled, not left pending for ever.
    assert [row.status for row in delivery_rows(engine).values()] == ["cancelled"]


def test_publish_after_delete_stores_no_delivery(engine: Engine) -> None:
    """A publish that waits on the account's counter reads the webhooks after the delete."""
    account_id = accounts.ensure_account(engine, "deleted-before-read")
    webhook_id = add_webhook(engine, account_id, ["*"])
    publish_group(engine, request(account_id, 1))
    holder = psycopg.connect(libpq_url(engine))
    holder.execute("SELECT 1 FROM usage_periods WHERE account_id = %s FOR UPDATE", (account_id,))
    try:
        publisher, published = in_thread(lambda: publish_group(engine, request(account_id, 1))[0])
        wait_for(lambda: waiting_for_lock(engine, "INSERT INTO usage_periods"))
        webhook_store.delete_webhook(engine, account_id, webhook_id)
    finally:
        holder.commit()
        holder.close()
    publisher.join(10)
    assert isinstance(published[0], MeteredBatch)
    assert published[0].events[0].delivery_ids == []
    with engine.connect() as connection:
        pending = connection.execute(
            text("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        ).scalar_one()
    assert pending == 0
