"""`wp_llm.Client` against the real service, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

import wp_llm
from tests.conftest import Account
from tests.sdk.conftest import EXAMPLE_URL, GENERATION_STARTED
from tests.support.receiver import Receiver, Reply
from wp_llm import catalog, exceptions
from wp_llm.webhooks import Webhook


def test_webhook_create_returns_secret_once(client: wp_llm.Client) -> None:
    created = client.webhooks.create(url=EXAMPLE_URL, events=["generation.*"], description="orders")

    assert created.id.startswith("webhook_")
    assert created.secret
    assert created.standard_webhooks_secret is not None
    assert created.standard_webhooks_secret.startswith("whsec_")
    assert created.description == "orders"
    assert client.webhooks.retrieve(created.id).secret is None


def test_webhook_create_sends_chosen_secret_and_state(client: wp_llm.Client) -> None:
    created = client.webhooks.create(
        url=EXAMPLE_URL, events=("usage.*",), secret="my-own-secret-123", enabled=False
    )

    assert created.secret == "my-own-secret-123"
    assert created.enabled is False
    assert created.events == ["usage.*"]


def test_webhook_update_changes_only_passed_fields(client: wp_llm.Client) -> None:
    created = client.webhooks.create(url=EXAMPLE_URL, events=["*"], description="first")

    updated = client.webhooks.update(created.id, events=["analysis.completed"], enabled=False)

    assert updated.events == ["analysis.completed"]
    assert updated.enabled is False
    assert updated.description == "first"
    assert updated.url == created.url


def test_webhook_update_none_clears_description(client: wp_llm.Client) -> None:
    created = client.webhooks.create(url=EXAMPLE_URL, events=["*"], description="first")

    assert client.webhooks.update(created.id, description=None).description is None


def test_webhook_delete_then_retrieve_raises_not_found(client: wp_llm.Client) -> None:
    created = client.webhooks.create(url=EXAMPLE_URL, events=["*"])

    deleted = client.webhooks.delete(created.id)

    assert deleted.deleted is True
    assert deleted.id == created.id
    with pytest.raises(exceptions.NotFoundError) as caught:
        client.webhooks.retrieve(created.id)
    assert caught.value.status_code == 404
    assert caught.value.type == "resource_error"
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_")


def test_webhook_list_iterates_all_pages_newest_first(client: wp_llm.Client) -> None:
    created = [client.webhooks.create(url=f"{EXAMPLE_URL}/{n}", events=["*"]).id for n in range(5)]

    page = client.webhooks.list(limit=2)

    assert [webhook.id for webhook in page.data] == created[::-1][:2]
    assert page.has_more is True
    assert [webhook.id for webhook in page] == created[::-1]


def test_webhook_list_pages_backwards_with_ending_before(client: wp_llm.Client) -> None:
    created = [client.webhooks.create(url=f"{EXAMPLE_URL}/{n}", events=["*"]).id for n in range(5)]

    page = client.webhooks.list(limit=2, ending_before=created[0])

    assert [webhook.id for webhook in page.data] == [created[2], created[1]]
    assert sorted(webhook.id for webhook in page) == sorted(created[1:])


def test_webhook_list_next_page_is_none_at_the_end(client: wp_llm.Client) -> None:
    client.webhooks.create(url=EXAMPLE_URL, events=["*"])

    page = client.webhooks.list()

    assert page.has_more is False
    assert page.next_page() is None


def test_webhook_test_reports_endpoint_response(client: wp_llm.Client, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=202, body=b"thanks"))
    created = client.webhooks.create(url=receiver.url, events=["*"])

    result = client.webhooks.test(created.id, type="usage.warning")

    assert result.success is True
    assert result.status_code == 202
    assert result.response_body == "thanks"
    assert result.event.type == "usage.warning"
    [request] = receiver.wait_for(1)
    assert request.headers["x-wp-llm-event"] == "usage.warning"


def test_event_create_list_and_retrieve(client: wp_llm.Client) -> None:
    published = client.events.create(type="generation.started", data=GENERATION_STARTED)
    client.events.create(type="usage.warning", data=catalog.EVENT_TYPES["usage.warning"].example)

    assert published.id.startswith("evt_")
    assert published.data == GENERATION_STARTED
    assert [event.id for event in client.events.list(type="generation.started")] == [published.id]
    assert client.events.retrieve(published.id) == published


def test_event_create_batch_returns_events_in_order(client: wp_llm.Client) -> None:
    warning = catalog.EVENT_TYPES["usage.warning"].example
    events = [
        {"type": "generation.started", "data": GENERATION_STARTED},
        {"type": "usage.warning", "data": warning},
    ]

    published = client.events.create_batch(events)

    assert [event.type for event in published] == ["generation.started", "usage.warning"]
    assert [event.data for event in published] == [GENERATION_STARTED, warning]
    assert client.events.retrieve(published[1].id) == published[1]


def test_event_create_batch_invalid_item_names_its_position(client: wp_llm.Client) -> None:
    events = [
        {"type": "generation.started", "data": GENERATION_STARTED},
        {"type": "generation.started", "data": {"id": 1}},
    ]
    with pytest.raises(exceptions.ValidationError) as caught:
        client.events.create_batch(events)

    assert caught.value.details["field"].startswith("events[1].data")
    assert list(client.events.list(type="generation.started")) == []


def test_event_batch_item_without_data(client: wp_llm.Client) -> None:
    with pytest.raises(ValueError, match="missing \\['data'\\]"):
        client.events.create_batch([{"type": "generation.started"}])


def test_event_create_invalid_data_raises_validation_error(client: wp_llm.Client) -> None:
    with pytest.raises(exceptions.ValidationError) as caught:
        client.events.create(type="generation.started", data={"id": 1})

    assert caught.value.status_code == 422
    assert caught.value.details["field"].startswith("data")


def test_delivery_list_retrieve_and_retry(client: wp_llm.Client, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=500))
    webhook = client.webhooks.create(url=receiver.url, events=["generation.*"])
    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)

    [delivery] = client.deliveries.list(event_id=event.id)
    retried = client.deliveries.retry(delivery.id)
    receiver.wait_for(2)
    detailed = client.deliveries.retrieve(delivery.id)

    assert delivery.webhook_id == webhook.id
    assert retried.status == "pending"
    assert detailed.attempts is not None
    assert detailed.attempts[0].status_code == 500
    assert [d.id for d in client.deliveries.list(webhook_id=webhook.id)] == [delivery.id]


def test_event_types_list_holds_the_catalog(client: wp_llm.Client) -> None:
    types = {entry.type: entry for entry in client.event_types.list()}

    assert "generation.completed" in types
    assert types["generation.completed"].json_schema["type"] == "object"
    assert "usage" in types["generation.completed"].example


def test_models_keep_fields_unknown_to_the_client(client: wp_llm.Client) -> None:
    created = client.webhooks.create(url=EXAMPLE_URL, events=["*"])
    response = {**created.to_dict(), "added_in_a_later_version": {"nested": True}}

    parsed = wp_llm.Webhook.model_validate(response)

    assert parsed.to_dict()["added_in_a_later_version"] == {"nested": True}
    assert parsed.id == created.id


def test_client_reads_key_and_url_from_environment(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WP_LLM_API_KEY", account.key)
    monkeypatch.setenv("WP_LLM_BASE_URL", account.service.base_url)

    with wp_llm.Client() as client:
        assert client.base_url == account.service.base_url
        assert client.webhooks.list().data == []


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
def test_client_base_url_with_version_path(account: Account, suffix: str) -> None:
    with wp_llm.Client(account.key, base_url=account.service.base_url + suffix) as client:
        assert client.base_url == account.service.base_url
        assert client.webhooks.list().data == []


def test_client_delivery_filter_naming_nothing(client: wp_llm.Client) -> None:
    with pytest.raises(exceptions.ValidationError) as caught:
        client.deliveries.list(webhook_id="webhook_missing")

    assert caught.value.status_code == 400
    assert caught.value.code == "filter_not_found"
    assert caught.value.details["field"] == "webhook_id"


def test_client_event_type_filter_pattern(client: wp_llm.Client) -> None:
    published = client.events.create(type="generation.started", data=GENERATION_STARTED)
    client.events.create(type="system.update", data=catalog.EVENT_TYPES["system.update"].example)

    listed = client.events.list(type="generation.*")

    assert [event.id for event in listed.data] == [published.id]


def test_client_arguments_win_over_environment(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WP_LLM_API_KEY", "wpllm_sk_wrong")
    monkeypatch.setenv("WP_LLM_BASE_URL", "http://127.0.0.1:9")

    with wp_llm.Client(account.key, base_url=account.service.base_url) as client:
        assert client.webhooks.list().data == []


def test_client_without_key_raises_authentication_error() -> None:
    with pytest.raises(exceptions.AuthenticationError) as caught:
        wp_llm.Client(base_url="http://127.0.0.1:9")

    assert caught.value.status_code is None
    assert caught.value.code == "missing_api_key"
    assert "WP_LLM_API_KEY" in str(caught.value)


def test_client_with_revoked_or_wrong_key_raises_authentication_error(account: Account) -> None:
    client = wp_llm.Client("wpllm_sk_not-a-key", base_url=account.service.base_url)
    with client, pytest.raises(exceptions.AuthenticationError) as caught:
        client.webhooks.list()

    assert caught.value.status_code == 401
    assert "wpllm_sk_not-a-key" not in str(caught.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://127.0.0.1",
        "127.0.0.1:8080",  # no scheme: urlsplit reads "127.0.0.1" as the scheme
        "http://127.0.0.1:99999",
        "http://",
    ],
)
def test_client_rejects_malformed_base_url(base_url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        wp_llm.Client("wpllm_sk_x", base_url=base_url)


def test_client_rejects_negative_max_retries() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        wp_llm.Client("wpllm_sk_x", max_retries=-1)


@pytest.mark.parametrize("object_id", ["", "  ", ".", ".."])
def test_client_rejects_unusable_object_id(client: wp_llm.Client, object_id: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        client.webhooks.retrieve(object_id)


def test_client_escapes_object_id_in_path(client: wp_llm.Client) -> None:
    # Unescaped, "../events" would turn the path into GET /v1/events, a list.
    with pytest.raises(exceptions.NotFoundError):
        client.webhooks.retrieve("../events")


def test_webhook_settings_round_trip(client: wp_llm.Client) -> None:
    created = client.webhooks.create(
        url=EXAMPLE_URL,
        events=["*"],
        rate_limit=5,
        max_concurrency=2,
        timeout=3,
        retry_schedule=[1, 60],
    )

    updated = client.webhooks.update(created.id, timeout=None, retry_schedule=(5,))

    assert created.rate_limit == 5
    assert created.max_concurrency == 2
    assert created.timeout == 3
    assert created.retry_schedule == [1, 60]
    assert updated.timeout is None
    assert updated.retry_schedule == [5]
    assert updated.rate_limit == 5


def test_webhook_events_as_string_raises_type_error(client: wp_llm.Client) -> None:
    with pytest.raises(TypeError, match="events must be a list"):
        client.webhooks.create(url=EXAMPLE_URL, events="generation.*")


def test_webhook_rotate_secret_signs_with_both(client: wp_llm.Client, receiver: Receiver) -> None:
    created = client.webhooks.create(url=receiver.url, events=["*"], secret="first-secret-123")

    rotated = client.webhooks.rotate_secret(created.id, secret="second-secret-456", grace_period=60)
    client.webhooks.test(created.id)
    [request] = receiver.wait_for(1)

    assert rotated.secret == "second-secret-456"
    assert rotated.standard_webhooks_secret is not None
    assert rotated.previous_secrets_expire_at is not None
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in ("first-secret-123", "second-secret-456"):
        assert Webhook(secret).verify(request.body, request.headers).type == "generation.completed"


def test_webhook_replay_requeues_failed_deliveries(
    client: wp_llm.Client, receiver: Receiver
) -> None:
    receiver.reply_with(Reply(status=500))
    webhook = client.webhooks.create(url=receiver.url, events=["*"], retry_schedule=[])
    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)
    [delivery] = client.deliveries.list(event_id=event.id)
    wait_for_status(client, delivery.id, "failed")

    counted = client.webhooks.replay(webhook.id, since=0, dry_run=True)
    replayed = client.webhooks.replay(
        webhook.id, since=0, status=["failed"], event_types=["generation.*"]
    )
    receiver.wait_for(2)

    assert counted.dry_run is True
    assert counted.count == 1
    assert replayed.count == 1
    assert replayed.webhook_id == webhook.id


def test_stats_counts_attempts(client: wp_llm.Client, receiver: Receiver) -> None:
    webhook = client.webhooks.create(url=receiver.url, events=["*"])
    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)
    [delivery] = client.deliveries.list(event_id=event.id, webhook_id=webhook.id)
    wait_for_status(client, delivery.id, "succeeded")

    stats = client.stats.retrieve(hours=2)

    assert stats.window_hours == 2
    assert stats.attempts == 1
    assert stats.success_rate == 1.0
    assert len(stats.buckets) == 2


def wait_for_status(
    client: wp_llm.Client, delivery_id: str, status: str, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while client.deliveries.retrieve(delivery_id).status != status:
        assert time.monotonic() < deadline, f"delivery {delivery_id} never became {status}"
        time.sleep(0.1)
