"""PostgreSQL's pipelined publish, webhooks deleted during a publish, and lost COMMIT replies."""

from __future__ import annotations

import asyncio
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from tests.engine.test_claim import LEASE_MS, add_webhook, claim
from tests.support.service import create_postgres_database, drop_postgres_database
from wp_llm.server.api.group_commit import GroupCommit
from wp_llm.server.db import engine as db_engine
from wp_llm.server.db.engine import create_db_engine, libpq_url, migrate
from wp_llm.server.db.pipeline import pipelined_transaction
from wp_llm.server.db.schema import deliveries, events, usage_periods
from wp_llm.server.errors import QuotaExceeded
from wp_llm.server.store import accounts, commit_check, health
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.commit_check import CommitCheckFailed
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
    thresholds: tuple[int, ...] = (),
    hand_off: delivery_store.HandOff | None = None,
) -> list[MeteredBatch | Exception]:
    return usage_store.publish_metered_group(
        engine,
        list(group),
        default_quota=quota,
        thresholds=thresholds,
        now=time.time(),
        hand_off=hand_off,
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


class PostgresRelay:
    """A TCP relay to PostgreSQL that counts the client's turns to speak, and breaks on request.

    A turn starts when the client sends after the server last spoke. PostgreSQL responds
    to a pipeline only when asked to, so the turns of a transaction are its round trips.
    """

    def __init__(self, port: int) -> None:
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.turns = 0
        self.commit_replies_lost = 0
        self._lock = threading.Lock()
        self._lose_next_commit_reply = False
        self._reply_wait_seconds = 0.0
        self._connections_to_close = 0
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_commit_reply(self, wait_seconds: float = 10.0) -> None:
        """Relay the next COMMIT to the server, but not the server's reply to the client.

        Both sides are closed as soon as that reply arrives, which shows that the server
        committed, or after `wait_seconds` if it does not arrive.
        """
        with self._lock:
            self._lose_next_commit_reply = True
            self._reply_wait_seconds = wait_seconds

    def close_new_connections(self, count: int) -> None:
        """Close the next `count` connections as soon as they are accepted."""
        with self._lock:
            self._connections_to_close = count

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                close = self._connections_to_close > 0
                self._connections_to_close -= int(close)
            if close:
                client.close()
                continue
            server = socket.create_connection(self._upstream)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _take_lost_reply(self, data: bytes) -> float | None:
        """Return how long to wait for the reply to this data if it is the COMMIT to lose."""
        with self._lock:
            if not self._lose_next_commit_reply or b"COMMIT" not in data:
                return None
            self._lose_next_commit_reply = False
            self.commit_replies_lost += 1
            return self._reply_wait_seconds

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        client_spoke_last = False
        # Once the COMMIT whose reply is lost was relayed: when to close without its reply.
        close_at: float | None = None
        with client, server, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while not self._stopped.is_set():
                if close_at is not None and time.monotonic() > close_at:
                    return
                for key, _ in selector.select(timeout=0.05):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is server and close_at is not None:
                        if b"COMMIT\x00" in data:
                            return  # The server committed, and its reply is dropped.
                        continue
                    if source is client and not client_spoke_last:
                        self.turns += 1
                    client_spoke_last = source is client
                    key.data.sendall(data)
                    wait_seconds = self._take_lost_reply(data) if source is client else None
                    if wait_seconds is not None:
                        close_at = time.monotonic() + wait_seconds

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()


@pytest.fixture
def proxy(engine: Engine) -> Iterator[PostgresRelay]:
    relay = PostgresRelay(engine.url.port or 5432)
    yield relay
    relay.close()


@pytest.fixture
def relayed(
    engine: Engine, proxy: PostgresRelay, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """An engine whose one pooled connection goes through `proxy`, already connected."""
    # No test of an idle connection, so that the relay carries only what the test sends.
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    created = create_db_engine(
        engine.url.set(port=proxy.port).render_as_string(hide_password=False), pool_size=1
    )
    pooled_state(created)
    yield created
    created.dispose()


def test_pipelined_publish_makes_two_round_trips(
    engine: Engine, proxy: PostgresRelay, relayed: Engine
) -> None:
    """BEGIN goes with the first statements and COMMIT with the last ones."""
    account_id = accounts.ensure_account(engine, "counted")
    add_webhook(engine, account_id, ["*"])
    proxy.turns = 0
    publish_group(relayed, request(account_id, 2), request(account_id, 1))
    pipelined = proxy.turns
    proxy.turns = 0
    with relayed.begin() as connection:
        event_store.insert_events(connection, account_id, [(EVENT_TYPE, {})])
    unpipelined = proxy.turns
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


# --- A lost COMMIT reply --------------------------------------------------------------

WARNING_TYPE = "usage.warning"

# (each request's account and event count, default quota, warning thresholds, warnings
# stored). The relay loses the reply to the first COMMIT, which each path sends itself.
LOST_REPLY_PATHS = {
    "pipelined": ([("first", 2), ("second", 1)], 0, (), 0),
    # The first account's count makes a warning due, so the group runs unpipelined.
    "grouped": ([("first", 3), ("second", 1)], 4, (50,), 1),
    # A group of one request runs in a transaction of its own after the pipelined one.
    "single": ([("first", 3)], 4, (50,), 1),
}


def subscribed_account(engine: Engine, name: str) -> str:
    account_id = accounts.ensure_account(engine, name)
    add_webhook(engine, account_id, ["*"])
    return account_id


def subscribed_pair(engine: Engine) -> tuple[str, str]:
    return subscribed_account(engine, "first"), subscribed_account(engine, "second")


def publish_pair(engine: Engine, first: str, second: str) -> list[MeteredBatch | Exception]:
    """Publish two events to the first account and one to the second, in one group."""
    return publish_group(engine, request(first, 2), request(second, 1))


def stored_event_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(events.c.id)).scalars())


def counted(engine: Engine, account_id: str) -> int:
    """Return the events counted against the account's quota, in every period."""
    query = select(func.coalesce(func.sum(usage_periods.c.event_count), 0)).where(
        usage_periods.c.account_id == account_id
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def published_events(results: list[MeteredBatch | Exception]) -> list[event_store.PublishedEvent]:
    batches = [result for result in results if isinstance(result, MeteredBatch)]
    return [event for batch in batches for event in [*batch.events, *batch.notices]]


@pytest.mark.parametrize("path", list(LOST_REPLY_PATHS))
def test_lost_commit_reply_stores_once(
    engine: Engine, proxy: PostgresRelay, relayed: Engine, path: str
) -> None:
    """The server committed, but the client saw the connection break instead of the reply."""
    requested, quota, thresholds, warnings = LOST_REPLY_PATHS[path]
    account_ids = {name: subscribed_account(engine, name) for name, _ in requested}
    group = [request(account_ids[name], count) for name, count in requested]
    proxy.lose_commit_reply()

    results = publish_group(relayed, *group, quota=quota, thresholds=thresholds, hand_off=offer(8))

    assert proxy.commit_replies_lost == 1
    assert [type(result) for result in results] == [MeteredBatch] * len(group), results
    published = published_events(results)
    assert stored_event_ids(engine) == sorted(event.id for event in published)
    assert count_rows(engine, events, events.c.type == WARNING_TYPE) == warnings
    for name, count in requested:
        assert counted(engine, account_ids[name]) == count
    stored = delivery_rows(engine)
    assert sorted(stored) == sorted(id for event in published for id in event.delivery_ids)
    # The deliveries leased to the worker come back, so that the worker can start them.
    leased = [delivery.id for event in published for delivery in event.leased]
    assert leased
    assert {stored[delivery_id].lease_owner for delivery_id in leased} == {OWNER}


class RecordingWorker:
    """A stand-in for the process's delivery worker that keeps the deliveries handed over."""

    def __init__(self) -> None:
        self.accepted: list[delivery_store.ClaimedDelivery] = []

    def offer(self) -> delivery_store.HandOff:
        return offer(8)

    def accept(self, deliveries: list[delivery_store.ClaimedDelivery], leased_at: float) -> None:
        self.accepted.extend(deliveries)

    def rows_left(self, webhook_ids: Collection[str]) -> None:
        pass


def test_lost_commit_reply_hands_over_deliveries(
    engine: Engine, proxy: PostgresRelay, relayed: Engine
) -> None:
    account_id = subscribed_account(engine, "handed-over")
    add_webhook(engine, account_id, [EVENT_TYPE])
    publishes = GroupCommit(relayed, time.time, default_quota=0, thresholds=())
    worker = RecordingWorker()
    publishes.hand_off_to(worker)
    proxy.lose_commit_reply()

    batch = asyncio.run(publishes.publish(account_id, [(EVENT_TYPE, {"index": 0})]))

    assert proxy.commit_replies_lost == 1
    assert stored_event_ids(engine) == [batch.events[0].id]
    assert len(batch.events[0].delivery_ids) == 2
    assert sorted(delivery.id for delivery in worker.accepted) == sorted(
        batch.events[0].delivery_ids
    )


def test_lost_commit_check_waits_for_transaction(
    engine: Engine, proxy: PostgresRelay, relayed: Engine
) -> None:
    """The connection breaks while the server still runs the transaction, which then commits."""
    first, second = subscribed_pair(engine)
    proxy.lose_commit_reply(wait_seconds=0.2)

    holder = hold_events_table(engine)
    try:
        # The insert waits for the table, and the relay closes both sides meanwhile.
        publisher, published = in_thread(lambda: publish_pair(relayed, first, second))
        # The check waits for the lock on a counter that the transaction holds.
        wait_for(lambda: waiting_for_lock(engine, "INSERT INTO usage_periods"))
    finally:
        holder.commit()
        holder.close()
    publisher.join(10)

    assert proxy.commit_replies_lost == 1
    results = published[0]
    assert isinstance(results, list)
    assert [type(result) for result in results] == [MeteredBatch, MeteredBatch], results
    assert stored_event_ids(engine) == sorted(event.id for event in published_events(results))
    assert counted(engine, first) == 2
    assert counted(engine, second) == 1
    assert count_rows(engine, deliveries) == 3


def reject_first_event_insert(engine: Engine) -> None:
    """Make the database reject the first statement that inserts events, and no later one."""
    with engine.begin() as connection:
        connection.execute(text("CREATE SEQUENCE event_inserts"))
        connection.execute(
            text(
                "CREATE FUNCTION reject_first_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF nextval('event_inserts') = 1 THEN "
                "RAISE EXCEPTION 'first insert rejected'; END IF; RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER reject_first_insert BEFORE INSERT ON events "
                "FOR EACH STATEMENT EXECUTE FUNCTION reject_first_insert()"
            )
        )


def test_rolled_back_group_stored_again_once(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement error in the round trip with COMMIT rolls back for certain: no check."""
    first, second = subscribed_pair(engine)
    reject_first_event_insert(engine)

    with caplog.at_level(logging.DEBUG):
        results = publish_pair(engine, first, second)

    assert [type(result) for result in results] == [MeteredBatch, MeteredBatch], results
    assert stored_event_ids(engine) == sorted(event.id for event in published_events(results))
    assert counted(engine, first) == 2
    assert counted(engine, second) == 1
    assert count_rows(engine, deliveries) == 3
    messages = [record.getMessage() for record in caplog.records]
    assert "grouped publish rolled back; publishing its requests one by one" in messages
    assert "connection lost during commit" not in messages


def test_failed_commit_check_stores_nothing_again(
    engine: Engine, proxy: PostgresRelay, relayed: Engine
) -> None:
    """The check cannot connect, so the requests fail rather than risk a second copy."""
    first, second = subscribed_pair(engine)
    proxy.lose_commit_reply()
    # The check opens the next connection. Later ones, such as a retry's, would work.
    proxy.close_new_connections(1)

    results = publish_pair(relayed, first, second)

    assert proxy.commit_replies_lost == 1
    assert [type(result) for result in results] == [CommitCheckFailed] * 2, results
    # The lost transaction committed, and nothing stored its events a second time.
    assert count_rows(engine, events) == 3
    assert counted(engine, first) == 2
    assert counted(engine, second) == 1
    assert count_rows(engine, deliveries) == 3


def test_commit_check_gives_up_on_held_lock(
    engine: Engine, proxy: PostgresRelay, relayed: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost transaction outlasts the check's lock timeout, so the outcome stays unknown."""
    monkeypatch.setattr(commit_check, "CHECK_LOCK_TIMEOUT_MS", 200)
    first, second = subscribed_pair(engine)
    proxy.lose_commit_reply(wait_seconds=0.2)

    holder = hold_events_table(engine)
    try:
        publisher, published = in_thread(lambda: publish_pair(relayed, first, second))
        # A retry would wait for the counter's lock here, and store the events again.
        publisher.join(5)
        returned_while_held = not publisher.is_alive()
    finally:
        holder.commit()
        holder.close()
    publisher.join(10)

    assert returned_while_held
    results = published[0]
    assert isinstance(results, list)
    assert [type(result) for result in results] == [CommitCheckFailed] * 2, results
    # Released, the lost transaction commits, and nothing else stores its events.
    wait_for(lambda: count_rows(engine, events) == 3)
    assert counted(engine, first) == 2
    assert counted(engine, second) == 1
