"""WebhookReceiver: responses, duplicates, dispatch by pattern and handler failures."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from wp_llm.webhooks import (
    Event,
    GenerationCompletedEvent,
    MemoryDeduplicator,
    ReceiverResponse,
    Webhook,
    WebhookReceiver,
)

from .samples import EVENT_ID, NOW, SECRET, event_body

BODY = event_body()
SLOW_HANDLER_TIMEOUT_SECONDS = 10


@pytest.fixture
def webhook_receiver(webhook: Webhook) -> WebhookReceiver:
    return WebhookReceiver(webhook, deduplicator=MemoryDeduplicator())


def signed(body: bytes = BODY) -> dict[str, str]:
    return Webhook(SECRET).sign(body, timestamp=NOW)


class FailingDeduplicator(MemoryDeduplicator):
    """A deduplicator whose chosen methods raise, as a store that went down would."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)

    def claim(self, event_id: str) -> bool:
        if "claim" in self.failing:
            raise ConnectionError("store unavailable")
        return super().claim(event_id)

    def complete(self, event_id: str) -> None:
        if "complete" in self.failing:
            raise ConnectionError("store unavailable")
        super().complete(event_id)


def test_receiver_handled_event_answers_200(webhook_receiver: WebhookReceiver) -> None:
    received: list[Event[Any]] = []
    webhook_receiver.on("generation.completed")(received.append)

    response = webhook_receiver.handle(BODY, signed())

    assert response.status_code == 200
    assert response.body == {
        "received": True,
        "id": EVENT_ID,
        "type": "generation.completed",
        "handled": True,
    }
    assert isinstance(received[0], GenerationCompletedEvent)


def test_receiver_without_handler_answers_200_and_says_so(
    webhook_receiver: WebhookReceiver,
) -> None:
    response = webhook_receiver.handle(BODY, signed())

    assert response.status_code == 200
    assert response.body["handled"] is False
    assert "no handler" in response.body["note"]


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({}, 400, "missing_header"),
        ({"X-WP-LLM-Signature": "0" * 64}, 401, "signature_mismatch"),
        ({"X-WP-LLM-Signature": "sha256=abc"}, 401, "malformed_signature"),
        (signed() | {"webhook-timestamp": "tomorrow"}, 400, "malformed_timestamp"),
        (signed() | {"webhook-timestamp": str(NOW - 3_600)}, 401, "signature_mismatch"),
        (signed() | {"webhook-id": "evt with space"}, 400, "malformed_header"),
    ],
)
def test_receiver_rejected_request_answers_error(
    webhook_receiver: WebhookReceiver, headers: dict[str, str], status: int, error_type: str
) -> None:
    response = webhook_receiver.handle(BODY, headers)

    assert response.status_code == status
    assert response.body["error"]["type"] == error_type
    assert response.body["error"]["message"]


def test_receiver_stale_timestamp_answers_401(webhook_receiver: WebhookReceiver) -> None:
    headers = Webhook(SECRET).sign(BODY, timestamp=NOW - 3_600)

    response = webhook_receiver.handle(BODY, headers)

    assert response.status_code == 401
    assert response.body["error"]["type"] == "timestamp_outside_tolerance"


def test_receiver_signed_invalid_body_answers_400(webhook_receiver: WebhookReceiver) -> None:
    body = b"not json"

    headers = Webhook(SECRET).sign(body, timestamp=NOW, event_id="evt_1")

    response = webhook_receiver.handle(body, headers)

    assert response.status_code == 400
    assert response.body["error"]["type"] == "invalid_payload"


def test_receiver_duplicate_after_success_is_skipped(webhook_receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    webhook_receiver.on("generation.completed")(lambda event: calls.append(event.id))
    webhook_receiver.handle(BODY, signed())

    response = webhook_receiver.handle(BODY, signed())

    assert response.status_code == 200
    assert response.body["duplicate"] is True
    assert "already handled" in response.body["note"]
    assert calls == [EVENT_ID]


def test_receiver_without_deduplicator_runs_every_copy(webhook: Webhook) -> None:
    receiver = WebhookReceiver(webhook, deduplicator=None)
    calls: list[str] = []
    receiver.on("generation.completed")(lambda event: calls.append(event.id))

    receiver.handle(BODY, signed())
    receiver.handle(BODY, signed())

    assert calls == [EVENT_ID, EVENT_ID]


def test_receiver_failing_handler_answers_500_and_releases(
    webhook_receiver: WebhookReceiver,
) -> None:
    attempts: list[int] = []

    @webhook_receiver.on("generation.completed")
    def flaky(event: GenerationCompletedEvent) -> None:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise RuntimeError("database down")

    first = webhook_receiver.handle(BODY, signed())
    retry = webhook_receiver.handle(BODY, signed())

    assert first.status_code == 500
    assert first.body["error"]["type"] == "handler_failed"
    assert "database down" not in first.json_bytes().decode()
    assert retry.status_code == 200
    assert retry.body["handled"] is True
    assert attempts == [0, 1]


def test_receiver_failing_handler_is_logged_with_event_id(
    webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    @webhook_receiver.on("*")
    def broken(event: Event[Any]) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="wp_llm.webhooks"):
        webhook_receiver.handle(BODY, signed())

    record = caplog.records[-1]
    assert EVENT_ID in record.getMessage()
    assert record.exc_info is not None
    assert SECRET not in caplog.text


def test_receiver_rejection_log_never_contains_secret_or_signature(
    webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    headers = signed()
    forged = Webhook("forged").sign(BODY, timestamp=NOW)

    with caplog.at_level(logging.DEBUG, logger="wp_llm.webhooks"):
        webhook_receiver.handle(BODY, forged)

    assert "signature_mismatch" in caplog.text
    assert SECRET not in caplog.text
    assert headers["webhook-signature"][3:] not in caplog.text
    assert forged["webhook-signature"][3:] not in caplog.text


def test_receiver_concurrent_copies_run_handler_once(webhook_receiver: WebhookReceiver) -> None:
    entered, finish = threading.Event(), threading.Event()
    calls: list[str] = []

    @webhook_receiver.on("generation.completed")
    def slow(event: GenerationCompletedEvent) -> None:
        calls.append(event.id)
        entered.set()
        finish.wait(SLOW_HANDLER_TIMEOUT_SECONDS)

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(webhook_receiver.handle, BODY, signed())
        assert entered.wait(SLOW_HANDLER_TIMEOUT_SECONDS)
        second = webhook_receiver.handle(BODY, signed())
        finish.set()
        first_response = first.result(timeout=SLOW_HANDLER_TIMEOUT_SECONDS)

    # The copy that arrives mid-handling must be retried later, not acknowledged:
    # if the first handler then failed, a 200 here would lose the event.
    assert second.status_code == 409
    assert second.body["error"]["type"] == "duplicate_in_progress"
    assert first_response.status_code == 200
    assert calls == [EVENT_ID]


def test_receiver_claim_failure_answers_503(webhook: Webhook) -> None:
    receiver = WebhookReceiver(webhook, deduplicator=FailingDeduplicator("claim"))
    receiver.on("*")(lambda event: None)

    response = receiver.handle(BODY, signed())

    assert response.status_code == 503
    assert response.body["error"]["type"] == "deduplication_failed"


def test_receiver_complete_failure_still_answers_200(webhook: Webhook) -> None:
    # The handler ran; a 5xx would make the service deliver it again.
    receiver = WebhookReceiver(webhook, deduplicator=FailingDeduplicator("complete"))
    receiver.on("*")(lambda event: None)

    response = receiver.handle(BODY, signed())

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("pattern", "runs"),
    [
        ("generation.completed", True),
        ("generation.*", True),
        ("*", True),
        ("generation.failed", False),
        ("analysis.*", False),
    ],
)
def test_receiver_dispatches_by_pattern(
    webhook_receiver: WebhookReceiver, pattern: str, runs: bool
) -> None:
    calls: list[str] = []
    webhook_receiver.on(pattern)(lambda event: calls.append(event.type))

    webhook_receiver.handle(BODY, signed())

    assert calls == (["generation.completed"] if runs else [])


def test_receiver_prefix_wildcard_covers_deeper_types(webhook_receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    webhook_receiver.on("model.*")(lambda event: calls.append(event.type))
    body = event_body("model.training.started")

    webhook_receiver.handle(body, signed(body))

    assert calls == ["model.training.started"]


def test_receiver_runs_every_matching_handler_in_order(webhook_receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    webhook_receiver.on("*")(lambda event: calls.append("all"))
    webhook_receiver.on("generation.completed")(lambda event: calls.append("exact"))
    webhook_receiver.on("generation.*")(lambda event: calls.append("prefix"))

    webhook_receiver.handle(BODY, signed())

    assert calls == ["all", "exact", "prefix"]


def test_receiver_unknown_type_reaches_wildcard_handler(webhook_receiver: WebhookReceiver) -> None:
    calls: list[Event[Any]] = []
    webhook_receiver.on("*")(calls.append)
    body = BODY.replace(b"generation.completed", b"generation.paused")

    response = webhook_receiver.handle(body, signed(body))

    assert response.status_code == 200
    assert calls[0].type == "generation.paused"


@pytest.mark.parametrize(
    ("pattern", "phrase"),
    [
        ("", "invalid event type pattern"),
        ("generation*", "invalid event type pattern"),
        ("*.completed", "invalid event type pattern"),
        ("Generation.Completed", "invalid event type pattern"),
        ("generation.completd", "did you mean 'generation.completed'"),
        ("billing.*", "matches no event type"),
    ],
)
def test_receiver_on_rejects_bad_pattern(
    webhook_receiver: WebhookReceiver, pattern: str, phrase: str
) -> None:
    with pytest.raises(ValueError, match=phrase):
        webhook_receiver.on(pattern)


def test_receiver_on_allows_unknown_type_when_asked(webhook_receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    webhook_receiver.on("generation.paused", allow_unknown_type=True)(
        lambda e: calls.append(e.type)
    )
    body = BODY.replace(b"generation.completed", b"generation.paused")

    webhook_receiver.handle(body, signed(body))

    assert calls == ["generation.paused"]


def test_receiver_needs_webhook_instance() -> None:
    with pytest.raises(TypeError, match="Webhook"):
        WebhookReceiver(SECRET, deduplicator=None)  # type: ignore[arg-type]


def test_receiver_needs_explicit_deduplicator(webhook: Webhook) -> None:
    with pytest.raises(TypeError):
        WebhookReceiver(webhook)  # type: ignore[call-arg]


def test_receiver_sync_handle_rejects_async_handler(webhook: Webhook) -> None:
    deduplicator = MemoryDeduplicator()
    receiver = WebhookReceiver(webhook, deduplicator=deduplicator)

    @receiver.on("generation.completed")
    async def handler(event: GenerationCompletedEvent) -> None:
        return None

    response = receiver.handle(BODY, signed())

    assert response.status_code == 500
    assert deduplicator.claim(EVENT_ID) is True


async def test_receiver_handle_async_awaits_async_handler(
    webhook_receiver: WebhookReceiver,
) -> None:
    calls: list[str] = []

    @webhook_receiver.on("generation.completed")
    async def handler(event: GenerationCompletedEvent) -> None:
        await asyncio.sleep(0)
        calls.append(event.id)

    response = await webhook_receiver.handle_async(BODY, signed())

    assert response.status_code == 200
    assert calls == [EVENT_ID]


async def test_receiver_handle_async_runs_sync_handler_in_thread(
    webhook_receiver: WebhookReceiver,
) -> None:
    threads: list[int] = []
    webhook_receiver.on("*")(lambda event: threads.append(threading.get_ident()))

    response = await webhook_receiver.handle_async(BODY, signed())

    assert response.status_code == 200
    assert threads != [threading.get_ident()]


async def test_receiver_handle_async_failure_releases_claim(webhook: Webhook) -> None:
    deduplicator = MemoryDeduplicator()
    receiver = WebhookReceiver(webhook, deduplicator=deduplicator)

    @receiver.on("*")
    async def handler(event: Event[Any]) -> None:
        raise RuntimeError("boom")

    response = await receiver.handle_async(BODY, signed())

    assert response.status_code == 500
    assert deduplicator.claim(EVENT_ID) is True


async def test_receiver_cancelled_handler_releases_claim(webhook: Webhook) -> None:
    deduplicator = MemoryDeduplicator()
    receiver = WebhookReceiver(webhook, deduplicator=deduplicator)
    started = asyncio.Event()

    @receiver.on("*")
    async def handler(event: Event[Any]) -> None:
        started.set()
        await asyncio.sleep(SLOW_HANDLER_TIMEOUT_SECONDS)

    task = asyncio.create_task(receiver.handle_async(BODY, signed()))
    await asyncio.wait_for(started.wait(), SLOW_HANDLER_TIMEOUT_SECONDS)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert deduplicator.claim(EVENT_ID) is True


def test_receiver_response_json_keeps_non_ascii() -> None:
    response = ReceiverResponse(200, {"note": "été"})

    assert response.json_bytes() == '{"note":"été"}'.encode()
