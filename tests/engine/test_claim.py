"""The claim queries on a real database: per-webhook quotas, skipped webhooks, and probes."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, update

from wp_llm.server import ids
from wp_llm.server.crypto import SecretBox
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import attempts, deliveries, webhooks
from wp_llm.server.store import accounts
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import webhooks as webhook_store

LEASE_MS = 30_000
BOX = SecretBox(Fernet.generate_key())


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def add_webhook(engine: Engine, account_id: str, events: list[str], **settings: object) -> str:
    row = webhook_store.create_webhook(
        engine,
        BOX,
        account_id=account_id,
        url="https://example.com/hook",
        events=events,
        description=None,
        secret="secret-for-tests",
        delivery_settings=settings,
    )
    return str(row["id"])


def publish(engine: Engine, account_id: str, event_type: str, count: int) -> None:
    for index in range(count):
        event_store.publish(engine, account_id, event_type, {"index": index})


def claim(engine: Engine, **options: object) -> list[delivery_store.ClaimedDelivery]:
    arguments = {"owner": "worker-a", "limit": 100, "lease_ms": LEASE_MS, "now": ids.now_ms()}
    return delivery_store.claim_due(engine, **{**arguments, **options})  # type: ignore[arg-type]


def per_webhook(claimed: list[delivery_store.ClaimedDelivery]) -> Counter[str]:
    return Counter(delivery.webhook_id for delivery in claimed)


def set_webhook(engine: Engine, webhook_id: str, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))


@pytest.fixture
def account_id(engine: Engine) -> str:
    return accounts.ensure_account(engine, "claims")


def test_claim_caps_each_webhook_at_default_quota(engine: Engine, account_id: str) -> None:
    backlog = add_webhook(engine, account_id, ["analysis.*"])
    publish(engine, account_id, "analysis.completed", 50)
    newer = add_webhook(engine, account_id, ["generation.*"])
    publish(engine, account_id, "generation.completed", 3)

    counts = per_webhook(claim(engine, default_quota=4))
    assert counts[backlog] == 4
    assert counts[newer] == 3


def test_claim_uses_webhook_max_concurrency(engine: Engine, account_id: str) -> None:
    limited = add_webhook(engine, account_id, ["*"], max_concurrency=2)
    publish(engine, account_id, "generation.completed", 10)
    assert per_webhook(claim(engine, default_quota=8))[limited] == 2


def test_claim_quota_overrides_webhook_limit(engine: Engine, account_id: str) -> None:
    limited = add_webhook(engine, account_id, ["*"], max_concurrency=5)
    publish(engine, account_id, "generation.completed", 10)
    assert per_webhook(claim(engine, quotas={limited: 1}))[limited] == 1


def test_claim_reaches_past_excluded_backlog(engine: Engine, account_id: str) -> None:
    backlog = add_webhook(engine, account_id, ["analysis.*"])
    publish(engine, account_id, "analysis.completed", 500)
    newer = add_webhook(engine, account_id, ["generation.*"])
    publish(engine, account_id, "generation.completed", 1)

    counts = per_webhook(claim(engine, limit=10, exclude_webhooks=[backlog], default_quota=16))
    assert counts == Counter({newer: 1})


def set_due_times(engine: Engine, due: dict[str, int]) -> None:
    with engine.begin() as connection:
        for delivery_id, at in due.items():
            connection.execute(
                update(deliveries).where(deliveries.c.id == delivery_id).values(next_attempt_at=at)
            )


def test_claim_orders_oldest_within_quotas(engine: Engine, account_id: str) -> None:
    first = add_webhook(engine, account_id, ["analysis.*"])
    second = add_webhook(engine, account_id, ["generation.*"], max_concurrency=1)
    third = add_webhook(engine, account_id, ["training.*"])
    publish(engine, account_id, "analysis.completed", 6)
    publish(engine, account_id, "generation.completed", 6)
    publish(engine, account_id, "training.completed", 6)
    with engine.connect() as connection:
        rows = connection.execute(
            select(deliveries.c.id, deliveries.c.webhook_id).order_by(deliveries.c.id)
        ).all()
    # Due in turns, one of each webhook at a time: first, second, third, first, ...
    by_webhook = {
        webhook_id: [row.id for row in rows if row.webhook_id == webhook_id]
        for webhook_id in (first, second, third)
    }
    turns = [ids_[turn] for turn in range(6) for ids_ in by_webhook.values()]
    now = ids.now_ms()
    set_due_times(
        engine, {delivery_id: now - 1_000 + index for index, delivery_id in enumerate(turns)}
    )

    # Quotas: first 2 as asked, second its max_concurrency times the factor (2), third
    # the default (3). The limit of 7 leaves room for all of them.
    claimed = claim(
        engine, now=now, limit=7, quotas={first: 2}, default_quota=3, concurrency_factor=2
    )

    f, s, t = by_webhook[first], by_webhook[second], by_webhook[third]
    expected = [f[0], s[0], t[0], f[1], s[1], t[1], t[2]]
    assert [delivery.id for delivery in claimed] == expected
    with engine.connect() as connection:
        leased = connection.execute(
            select(deliveries.c.id).where(deliveries.c.lease_owner == "worker-a")
        ).scalars()
        assert set(leased) == set(expected)


def test_claim_carries_each_event_body(engine: Engine, account_id: str) -> None:
    add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 3)
    claimed = claim(engine, default_quota=8)
    assert sorted(json.loads(delivery.body)["data"]["index"] for delivery in claimed) == [0, 1, 2]
    assert len({delivery.event_id for delivery in claimed}) == 3


def test_fan_out_claim_shares_body(engine: Engine, account_id: str) -> None:
    for _ in range(3):
        add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 1)
    claimed = claim(engine, default_quota=8)
    assert len(claimed) == 3
    assert len({delivery.webhook_id for delivery in claimed}) == 3
    assert {json.loads(delivery.body)["data"]["index"] for delivery in claimed} == {0}


def test_claim_leaves_pooled_connection_transactional(database_url: str) -> None:
    # PostgreSQL claims outside a transaction: the connection must go back to the pool
    # with transactions on, or a later rollback would undo nothing.
    engine = create_db_engine(database_url, pool_size=1)
    try:
        migrate(engine)
        account_id = accounts.ensure_account(engine, "pool")
        add_webhook(engine, account_id, ["*"])
        publish(engine, account_id, "generation.completed", 2)
        assert len(claim(engine, default_quota=8)) == 2

        with pytest.raises(RuntimeError), engine.begin() as connection:
            connection.execute(update(deliveries).values(status="failed"))
            raise RuntimeError("roll back")

        with engine.connect() as connection:
            statuses = connection.execute(select(deliveries.c.status)).scalars().all()
        assert statuses == ["pending", "pending"]
    finally:
        engine.dispose()


def test_claim_skips_open_circuit(engine: Engine, account_id: str) -> None:
    failing = add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 3)
    set_webhook(engine, failing, circuit_state="open", circuit_retry_at=ids.now_ms() + 60_000)
    assert claim(engine, default_quota=8) == []


def test_claim_skips_paused_webhook_until_pause_ends(engine: Engine, account_id: str) -> None:
    paused = add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 2)
    now = ids.now_ms()
    set_webhook(engine, paused, paused_until=now + 5_000)
    assert claim(engine, now=now, default_quota=8) == []
    assert len(claim(engine, now=now + 5_000, default_quota=8)) == 2


def test_claim_carries_endpoint_settings(engine: Engine, account_id: str) -> None:
    add_webhook(engine, account_id, ["*"], rate_limit=2.5, timeout=4.0, retry_schedule=[1, 30])
    publish(engine, account_id, "generation.completed", 1)
    [claimed] = claim(engine, default_quota=8)
    assert claimed.endpoint.rate_limit == 2.5
    assert claimed.endpoint.timeout == 4.0
    assert claimed.endpoint.retry_schedule == (1, 30)
    assert claimed.endpoint.healthy


def test_probe_claims_one_delivery_per_open_circuit(engine: Engine, account_id: str) -> None:
    failing = add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 5)
    now = ids.now_ms()
    set_webhook(engine, failing, circuit_state="open", circuit_retry_at=now, consecutive_failures=9)

    first = delivery_store.claim_probes(
        engine, owner="a", lease_ms=LEASE_MS, now=now, hold_ms=10_000
    )
    second = delivery_store.claim_probes(
        engine, owner="b", lease_ms=LEASE_MS, now=now, hold_ms=10_000
    )
    assert [probe.probe for probe in first] == [True]
    assert not first[0].endpoint.healthy
    assert second == []


def test_probe_waits_for_hold_to_pass(engine: Engine, account_id: str) -> None:
    failing = add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 5)
    now = ids.now_ms()
    set_webhook(engine, failing, circuit_state="open", circuit_retry_at=now)
    delivery_store.claim_probes(engine, owner="a", lease_ms=LEASE_MS, now=now, hold_ms=10_000)

    later = delivery_store.claim_probes(
        engine, owner="a", lease_ms=LEASE_MS, now=now + 10_000, hold_ms=10_000
    )
    assert len(later) == 1


def test_probe_skips_circuit_without_due_delivery(engine: Engine, account_id: str) -> None:
    failing = add_webhook(engine, account_id, ["*"])
    now = ids.now_ms()
    set_webhook(engine, failing, circuit_state="open", circuit_retry_at=now)
    assert (
        delivery_store.claim_probes(engine, owner="a", lease_ms=LEASE_MS, now=now, hold_ms=1) == []
    )
    with engine.connect() as connection:
        retry_at = connection.execute(
            select(webhooks.c.circuit_retry_at).where(webhooks.c.id == failing)
        ).scalar_one()
    assert retry_at == now


def test_failed_probe_leaves_attempt_count(engine: Engine, account_id: str) -> None:
    add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 1)
    [claimed] = claim(engine, default_quota=8)
    now = ids.now_ms()
    record = delivery_store.AttemptRecord(
        delivery_id=claimed.id,
        webhook_id=claimed.webhook_id,
        account_id=claimed.account_id,
        attempted_at=now,
        latency_ms=5,
        status_code=503,
        error="endpoint answered 503",
        response_body="",
        response_truncated=False,
        succeeded=False,
        next_status="pending",
        next_attempt_at=now,
        spends_attempt=False,
    )
    delivery_store.record_attempts(engine, owner="worker-a", records=[record])
    with engine.connect() as connection:
        row = (
            connection.execute(select(deliveries).where(deliveries.c.id == claimed.id))
            .mappings()
            .one()
        )
    assert row["attempt_count"] == 0
    assert row["status"] == "pending"
    assert row["last_status_code"] == 503


def test_record_written_twice_counts_once(engine: Engine, account_id: str) -> None:
    # A worker writes a batch again when it cannot tell whether the first write
    # committed. Only PostgreSQL, where the write runs outside a transaction, leaves that
    # unknown, so the batch goes twice there.
    add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 2)
    cancelled, retried = claim(engine, default_quota=8)
    with engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id == cancelled.id)
            .values(status="cancelled", lease_owner=None, lease_until=None, next_attempt_at=None)
        )
    records = [
        attempt(cancelled, 204, "succeeded", None),
        attempt(retried, 500, "pending", ids.now_ms() + 60_000),
    ]
    delivery_store.record_attempts(engine, owner="worker-a", records=records)
    if engine.dialect.name == "postgresql":
        delivery_store.record_attempts(engine, owner="worker-a", records=records)

    rows = delivery_rows(engine)
    assert rows[cancelled.id]["attempt_count"] == 1
    assert rows[retried.id]["attempt_count"] == 1
    with engine.connect() as connection:
        logged = connection.execute(select(attempts.c.id)).scalars().all()
    assert sorted(logged) == sorted(record.attempt_id for record in records)


def test_custom_schedule_is_stored_as_json(engine: Engine, account_id: str) -> None:
    webhook_id = add_webhook(engine, account_id, ["*"], retry_schedule=[0.5, 2])
    with engine.connect() as connection:
        stored = connection.execute(
            select(webhooks.c.retry_schedule).where(webhooks.c.id == webhook_id)
        ).scalar_one()
    assert json.loads(stored) == [0.5, 2]


def attempt(
    claimed: delivery_store.ClaimedDelivery,
    status_code: int,
    next_status: delivery_store.DeliveryStatus,
    next_attempt_at: int | None,
) -> delivery_store.AttemptRecord:
    return delivery_store.AttemptRecord(
        delivery_id=claimed.id,
        webhook_id=claimed.webhook_id,
        account_id=claimed.account_id,
        attempted_at=ids.now_ms(),
        latency_ms=3,
        status_code=status_code,
        error=None if status_code < 300 else f"endpoint answered {status_code}",
        response_body="",
        response_truncated=False,
        succeeded=status_code < 300,
        next_status=next_status,
        next_attempt_at=next_attempt_at,
    )


def delivery_rows(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as connection:
        rows = connection.execute(select(deliveries)).mappings()
        return {row["id"]: dict(row) for row in rows}


def test_record_moves_a_batch_of_deliveries_on(engine: Engine, account_id: str) -> None:
    add_webhook(engine, account_id, ["*"])
    publish(engine, account_id, "generation.completed", 5)
    done, retried, failed, cancelled, reclaimed = claim(engine, default_quota=8)
    retry_at = ids.now_ms() + 60_000
    with engine.begin() as connection:
        # The webhook was deleted while `cancelled` was in flight.
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id == cancelled.id)
            .values(status="cancelled", lease_owner=None, lease_until=None, next_attempt_at=None)
        )
        # `reclaimed`'s lease ran out and another worker claimed it.
        connection.execute(
            update(deliveries).where(deliveries.c.id == reclaimed.id).values(lease_owner="worker-b")
        )

    records = [
        attempt(done, 204, "succeeded", None),
        attempt(retried, 500, "pending", retry_at),
        attempt(failed, 410, "failed", None),
        attempt(cancelled, 204, "succeeded", None),
        attempt(reclaimed, 204, "succeeded", None),
    ]
    delivery_store.record_attempts(engine, owner="worker-a", records=records)

    rows = delivery_rows(engine)
    assert (rows[done.id]["status"], rows[done.id]["attempt_count"]) == ("succeeded", 1)
    assert rows[retried.id]["status"] == "pending"
    assert rows[retried.id]["next_attempt_at"] == retry_at
    assert rows[retried.id]["last_status_code"] == 500
    assert rows[retried.id]["last_error"] == "endpoint answered 500"
    assert rows[failed.id]["status"] == "failed"
    # The endpoint accepted the attempt that was in flight, so the delivery succeeded.
    assert (rows[cancelled.id]["status"], rows[cancelled.id]["attempt_count"]) == ("succeeded", 1)
    assert rows[cancelled.id]["next_attempt_at"] is None
    assert rows[reclaimed.id]["lease_owner"] == "worker-b"
    assert rows[reclaimed.id]["attempt_count"] == 0
    assert all(rows[d.id]["lease_owner"] is None for d in (done, retried, failed, cancelled))
    with engine.connect() as connection:
        logged = connection.execute(select(attempts.c.delivery_id)).scalars().all()
    assert sorted(logged) == sorted(record.delivery_id for record in records)


def test_claim_multiplies_webhook_max_concurrency(engine: Engine, account_id: str) -> None:
    limited = add_webhook(engine, account_id, ["*"], max_concurrency=2)
    publish(engine, account_id, "generation.completed", 10)
    assert per_webhook(claim(engine, default_quota=8, concurrency_factor=3))[limited] == 6


def test_lease_renewal_returns_leases_still_owned(engine: Engine, account_id: str) -> None:
    add_webhook(engine, account_id, ["*"], max_concurrency=10)
    publish(engine, account_id, "system.maintenance", 3)
    first, second, third = claim(engine)
    # The lease on `second` ran out and another worker claimed it.
    with engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id == second.id)
            .values(lease_owner="worker-b", lease_until=ids.now_ms() + LEASE_MS)
        )
    until = ids.now_ms() + 2 * LEASE_MS
    still_leased = delivery_store.extend_leases(
        engine, owner="worker-a", delivery_ids=[first.id, second.id, third.id], until=until
    )
    assert still_leased == {first.id, third.id}
    with engine.connect() as connection:
        leases = dict(connection.execute(select(deliveries.c.id, deliveries.c.lease_until)).all())
    assert leases[first.id] == until
    assert leases[second.id] != until
    assert delivery_store.extend_leases(engine, owner="worker-a", delivery_ids=[], until=0) == set()
