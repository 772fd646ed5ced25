"""Grouped publishing: several requests' events counted and stored in one transaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import Account
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import events, usage_periods
from wp_llm.server.errors import QuotaExceeded
from wp_llm.server.store import accounts
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.usage import GroupedPublish, MeteredBatch
from wp_llm.server.usage.quota import month_period

NOTICE = "system.update"
NOW = time.time()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_db_engine(database_url)
    migrate(created)
    yield created
    created.dispose()


def request(account_id: str, count: int) -> GroupedPublish:
    return GroupedPublish(account_id, [(NOTICE, {"message": f"m{n}"}) for n in range(count)])


def publish_group(engine: Engine, *group: GroupedPublish) -> list[MeteredBatch | Exception]:
    return usage_store.publish_metered_group(
        engine, list(group), default_quota=0, thresholds=(80,), now=NOW
    )


def stored_count(engine: Engine, account_id: str) -> int:
    query = select(func.count()).select_from(events).where(events.c.account_id == account_id)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def counted(engine: Engine, account_id: str) -> int:
    """Return the account's event count in the period of NOW."""
    query = select(usage_periods.c.event_count).where(
        usage_periods.c.account_id == account_id,
        usage_periods.c.period_start == month_period(NOW).start,
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def test_group_returns_results_in_order(engine: Engine) -> None:
    first = accounts.ensure_account(engine, "first")
    second = accounts.ensure_account(engine, "second")

    results = publish_group(engine, request(second, 2), request(first, 1), request(second, 3))

    batches = [result for result in results if isinstance(result, MeteredBatch)]
    assert len(batches) == 3
    assert [len(batch.events) for batch in batches] == [2, 1, 3]
    assert stored_count(engine, first) == 1
    assert stored_count(engine, second) == 5
    assert counted(engine, second) == 5
    ids = [
        event.id
        for result in results
        if isinstance(result, MeteredBatch)
        for event in result.events
    ]
    assert len(set(ids)) == 6


def test_group_keeps_others_when_one_quota_is_full(engine: Engine) -> None:
    limited = accounts.ensure_account(engine, "limited")
    free = accounts.ensure_account(engine, "free")
    usage_store.set_account_limits(engine, limited, {"event_quota": 2})

    results = publish_group(engine, request(free, 1), request(limited, 3), request(free, 2))

    assert isinstance(results[0], MeteredBatch)
    assert isinstance(results[1], QuotaExceeded)
    assert isinstance(results[2], MeteredBatch)
    assert stored_count(engine, free) == 3
    # The request over quota stored nothing, not even the events that would have fit.
    assert stored_count(engine, limited) == 0
    assert counted(engine, limited) == 0


def test_group_of_one_account_splits_its_batch(engine: Engine) -> None:
    account_id = accounts.ensure_account(engine, "one")
    usage_store.set_account_limits(engine, account_id, {"event_quota": 10})

    results = publish_group(engine, request(account_id, 5), request(account_id, 4))

    batches = [result for result in results if isinstance(result, MeteredBatch)]
    assert [len(batch.events) for batch in batches] == [5, 4]
    # 9 of 10 crossed the 80% threshold once: its warning goes with the first request only.
    assert [len(batch.notices) for batch in batches] == [1, 0]
    assert counted(engine, account_id) == 9


def test_concurrent_single_publishes_all_stored(account: Account) -> None:
    """Many requests in flight at once share transactions, and each gets its own event."""
    url = account.service.base_url + "/v1/events"
    headers = {"Authorization": f"Bearer {account.key}"}

    async def publish_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(url, json={"type": NOTICE, "data": {"message": f"n{n}"}})
                    for n in range(60)
                )
            )

    responses = asyncio.run(publish_all())

    assert [response.status_code for response in responses] == [201] * 60
    messages = [response.json()["data"]["message"] for response in responses]
    assert messages == [f"n{n}" for n in range(60)]
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 60
    listed = account.client.get("/v1/events", params={"limit": 100}).json()["data"]
    assert {event["id"] for event in listed} == ids
