"""Grouped publishing: several requests' events counted and stored in one transaction."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import Account
from wp_llm.server.api.group_commit import GroupCommit
from wp_llm.server.db.schema import events, usage_periods
from wp_llm.server.errors import QuotaExceeded
from wp_llm.server.store import accounts
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.usage import GroupedPublish, MeteredBatch
from wp_llm.server.usage.quota import month_period

NOTICE = "system.update"
NOW = time.time()


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


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


def test_group_survives_one_full_quota(engine: Engine) -> None:
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


def test_quota_override_read_with_the_count(engine: Engine) -> None:
    unlimited = accounts.ensure_account(engine, "unlimited-override")
    limited = accounts.ensure_account(engine, "limited-override")
    defaulted = accounts.ensure_account(engine, "defaulted")
    usage_store.set_account_limits(engine, unlimited, {"event_quota": 0})
    usage_store.set_account_limits(engine, limited, {"event_quota": 3})
    # A limits row that overrides only the rate keeps the default quota.
    usage_store.set_account_limits(engine, defaulted, {"rate_limit": 5})

    def group_with_default_quota(*group: GroupedPublish) -> list[MeteredBatch | Exception]:
        return usage_store.publish_metered_group(
            engine, list(group), default_quota=4, thresholds=(50,), now=NOW
        )

    first = group_with_default_quota(
        request(unlimited, 5), request(limited, 3), request(defaulted, 4)
    )
    second = group_with_default_quota(
        request(unlimited, 5), request(limited, 1), request(defaulted, 1)
    )

    # An override of 0 lifts the default quota; 3 replaces it; no override keeps it.
    assert [type(result) for result in first] == [MeteredBatch] * 3
    assert isinstance(second[0], MeteredBatch)
    assert isinstance(second[1], QuotaExceeded)
    assert "quota of 3 events" in str(second[1])
    assert isinstance(second[2], QuotaExceeded)
    assert "quota of 4 events" in str(second[2])
    assert (counted(engine, unlimited), counted(engine, limited), counted(engine, defaulted)) == (
        10,
        3,
        4,
    )
    # The limited account crossed 50 % of its own quota of 3, so it was warned.
    first_limited = first[1]
    assert isinstance(first_limited, MeteredBatch)
    assert [event.type for event in first_limited.notices] == [
        "usage.warning",
        "usage.quota_exceeded",
    ]


def test_group_of_one_account_splits_its_batch(engine: Engine) -> None:
    account_id = accounts.ensure_account(engine, "one")
    usage_store.set_account_limits(engine, account_id, {"event_quota": 10})

    results = publish_group(engine, request(account_id, 5), request(account_id, 4))

    batches = [result for result in results if isinstance(result, MeteredBatch)]
    assert [len(batch.events) for batch in batches] == [5, 4]
    # 9 of 10 crossed the 80% threshold once: its warning goes with the first request only.
    assert [len(batch.notices) for batch in batches] == [1, 0]
    assert counted(engine, account_id) == 9


def test_concurrent_publishes_all_stored(account: Account) -> None:
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


def test_cancelled_request_is_not_stored(engine: Engine) -> None:
    """A request whose client went away before its group started stores nothing."""
    account_id = accounts.ensure_account(engine, "cancel")
    publishes = GroupCommit(engine, time.time, default_quota=0, thresholds=(80,))

    async def publish_three() -> list[MeteredBatch | BaseException]:
        first = asyncio.create_task(publishes.publish(account_id, [(NOTICE, {"message": "1"})]))
        await asyncio.sleep(0)
        # The first request's group is running, so these two wait for the next group.
        second = asyncio.create_task(publishes.publish(account_id, [(NOTICE, {"message": "2"})]))
        third = asyncio.create_task(publishes.publish(account_id, [(NOTICE, {"message": "3"})]))
        await asyncio.sleep(0)
        second.cancel()
        return list(await asyncio.gather(first, second, third, return_exceptions=True))

    first, second, third = asyncio.run(publish_three())

    assert isinstance(first, MeteredBatch)
    assert isinstance(second, asyncio.CancelledError)
    assert isinstance(third, MeteredBatch)
    assert stored_count(engine, account_id) == 2
    assert counted(engine, account_id) == 2
