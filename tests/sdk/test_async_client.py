"""`wp_llm.AsyncClient` against the real service, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

import wp_llm
from tests.sdk.conftest import EXAMPLE_URL, GENERATION_STARTED
from tests.support.receiver import Receiver, Reply
from wp_llm import exceptions


async def test_async_webhook_lifecycle(async_client: wp_llm.AsyncClient) -> None:
    created = await async_client.webhooks.create(url=EXAMPLE_URL, events=["generation.*"])
    updated = await async_client.webhooks.update(created.id, description="async")
    deleted = await async_client.webhooks.delete(created.id)

    assert created.secret
    assert updated.description == "async"
    assert deleted.deleted is True
    with pytest.raises(exceptions.NotFoundError):
        await async_client.webhooks.retrieve(created.id)


async def test_async_list_iterates_all_pages(async_client: wp_llm.AsyncClient) -> None:
    created = [
        (await async_client.webhooks.create(url=f"{EXAMPLE_URL}/{n}", events=["*"])).id
        for n in range(5)
    ]

    items = [webhook.id async for webhook in async_client.webhooks.list(limit=2)]

    assert items == created[::-1]


async def test_async_list_awaited_gives_first_page(async_client: wp_llm.AsyncClient) -> None:
    for n in range(3):
        await async_client.webhooks.create(url=f"{EXAMPLE_URL}/{n}", events=["*"])

    page = await async_client.webhooks.list(limit=2)
    following = await page.next_page()

    assert len(page.data) == 2
    assert page.has_more is True
    assert following is not None
    assert len(following.data) == 1
    assert [webhook.id async for webhook in page] == [w.id for w in page.data + following.data]


async def test_async_events_deliveries_and_types(
    async_client: wp_llm.AsyncClient, receiver: Receiver
) -> None:
    receiver.reply_with(Reply(status=200))
    webhook = await async_client.webhooks.create(url=receiver.url, events=["generation.started"])
    event = await async_client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)

    deliveries = [d async for d in async_client.deliveries.list(webhook_id=webhook.id)]
    retried = await async_client.deliveries.retry(deliveries[0].id)
    detailed = await async_client.deliveries.retrieve(deliveries[0].id)
    types = [entry.type async for entry in async_client.event_types.list()]

    assert (await async_client.events.retrieve(event.id)).id == event.id
    assert [d.event_id for d in deliveries] == [event.id]
    assert retried.id == deliveries[0].id
    assert detailed.attempts is not None
    assert "generation.started" in types


async def test_async_event_create_batch(async_client: wp_llm.AsyncClient) -> None:
    events = [{"type": "generation.started", "data": GENERATION_STARTED}] * 2

    published = await async_client.events.create_batch(events)

    assert len({event.id for event in published}) == 2
    assert all(event.data == GENERATION_STARTED for event in published)


async def test_async_webhook_test(async_client: wp_llm.AsyncClient, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=204))
    webhook = await async_client.webhooks.create(url=receiver.url, events=["*"])

    result = await async_client.webhooks.test(webhook.id)

    assert result.success is True
    assert result.status_code == 204


async def test_async_client_without_key_raises_authentication_error() -> None:
    with pytest.raises(exceptions.AuthenticationError):
        wp_llm.AsyncClient(base_url="http://127.0.0.1:9")


async def test_async_rotate_replay_and_stats(async_client: wp_llm.AsyncClient) -> None:
    webhook = await async_client.webhooks.create(url=EXAMPLE_URL, events=["*"])

    rotated = await async_client.webhooks.rotate_secret(webhook.id)
    replay = await async_client.webhooks.replay(webhook.id, since=0, dry_run=True)
    stats = await async_client.stats.retrieve()

    assert rotated.secret
    assert rotated.secret != webhook.secret
    assert replay.count == 0
    assert stats.window_hours == 24
