"""Retries: the backoff policy alone, then the clients against a scripted loopback server."""

from __future__ import annotations

import email.utils
import socket
import time

import httpx
import pytest

import wp_llm
from tests.sdk.scripted import CannedResponse, ScriptedServer
from wp_llm import exceptions
from wp_llm._client._retry import RetryPolicy, is_retryable_status, parse_retry_after

WEBHOOK = {
    "id": "webhook_1",
    "object": "webhook",
    "url": "https://example.com/hooks",
    "description": None,
    "events": ["*"],
    "enabled": True,
    "status": "enabled",
    "disabled_reason": None,
    "created": 1,
    "updated": 1,
}
EMPTY_LIST = {"object": "list", "data": [], "has_more": False}
KEY = "wpllm_sk_scripted"


def unavailable() -> CannedResponse:
    # Retry-After 0 keeps the test fast while exercising the header path.
    return CannedResponse.error(503, "server_error", "service_unavailable", {"Retry-After": "0"})


def make_client(server: ScriptedServer, **options: object) -> wp_llm.Client:
    return wp_llm.Client(KEY, base_url=server.base_url, **options)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("status_code", "code", "expected"),
    [
        (429, None, True),
        (500, None, True),
        (502, None, True),
        (503, None, True),
        (504, None, True),
        # The writes may be stored already: the caller checks before it sends them again.
        (503, "commit_outcome_unknown", False),
        (501, None, False),
        (400, None, False),
        (404, None, False),
        (409, "idempotency_key_reused", False),
        # The first request with the key still runs, and a later try gets its stored response.
        (409, "idempotency_request_in_progress", True),
    ],
)
def test_retryable_status_table(status_code: int, code: str | None, expected: bool) -> None:
    assert is_retryable_status(status_code, code) is expected


def test_retry_policy_backoff_is_full_jitter_and_capped() -> None:
    bounds: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    delays = [RetryPolicy(max_retries=10, uniform=highest).delay(retry) for retry in range(6)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(low == 0.0 for low, _ in bounds)


def test_retry_policy_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2)

    assert policy.delay(1) is not None
    assert policy.delay(2) is None


def test_retry_policy_zero_retries_disables() -> None:
    assert RetryPolicy(max_retries=0).delay(0) is None


def test_retry_policy_prefers_retry_after_within_cap() -> None:
    policy = RetryPolicy(max_retries=2)

    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=3600.0) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


def test_client_retries_server_errors_with_one_idempotency_key(scripted: ScriptedServer) -> None:
    scripted.script(unavailable(), unavailable(), CannedResponse.json(201, WEBHOOK))

    with make_client(scripted) as client:
        webhook = client.webhooks.create(url="https://example.com/hooks", events=["*"])

    assert webhook.id == "webhook_1"
    keys = {request.headers["idempotency-key"] for request in scripted.requests}
    assert len(scripted.requests) == 3
    assert len(keys) == 1


def test_client_sends_new_idempotency_key_per_call(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.json(201, WEBHOOK), CannedResponse.json(201, WEBHOOK))

    with make_client(scripted) as client:
        client.webhooks.create(url="https://example.com/hooks", events=["*"])
        client.webhooks.create(url="https://example.com/hooks", events=["*"])

    first, second = (request.headers["idempotency-key"] for request in scripted.requests)
    assert first != second


def test_client_sends_caller_idempotency_key(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.json(201, WEBHOOK))

    with make_client(scripted) as client:
        client.webhooks.create(
            url="https://example.com/hooks", events=["*"], idempotency_key="order-42"
        )

    assert scripted.requests[0].headers["idempotency-key"] == "order-42"


def test_client_get_carries_no_idempotency_key(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.json(200, EMPTY_LIST))

    with make_client(scripted) as client:
        client.webhooks.list()

    assert "idempotency-key" not in scripted.requests[0].headers
    assert scripted.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_client_gives_up_after_max_retries(scripted: ScriptedServer) -> None:
    scripted.script(*[unavailable()] * 5)

    with (
        make_client(scripted, max_retries=3) as client,
        pytest.raises(exceptions.ServerError) as caught,
    ):
        client.webhooks.list()

    assert len(scripted.requests) == 4
    assert caught.value.status_code == 503


def test_client_max_retries_zero_sends_once(scripted: ScriptedServer) -> None:
    scripted.script(unavailable(), CannedResponse.json(200, EMPTY_LIST))

    with make_client(scripted, max_retries=0) as client, pytest.raises(exceptions.ServerError):
        client.webhooks.list()

    assert len(scripted.requests) == 1


def test_client_does_not_retry_not_implemented(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.error(501, "server_error", "not_implemented"))

    with make_client(scripted) as client, pytest.raises(exceptions.ServerError):
        client.webhooks.list()

    assert len(scripted.requests) == 1


def test_client_does_not_retry_client_errors(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.error(400, "validation_error", "invalid_request"))

    with make_client(scripted) as client, pytest.raises(exceptions.ValidationError):
        client.webhooks.list()

    assert len(scripted.requests) == 1


def test_client_waits_retry_after_on_rate_limit(scripted: ScriptedServer) -> None:
    scripted.script(
        CannedResponse.error(429, "rate_limit_error", "rate_limited", {"Retry-After": "1"}),
        CannedResponse.json(200, EMPTY_LIST),
    )

    with make_client(scripted) as client:
        client.webhooks.list()

    first, second = scripted.requests
    assert second.received_at - first.received_at >= 0.95


def test_client_raises_long_retry_after_at_once(scripted: ScriptedServer) -> None:
    scripted.script(
        CannedResponse.error(429, "quota_error", "quota_exceeded", {"Retry-After": "3600"})
    )

    with make_client(scripted) as client, pytest.raises(exceptions.QuotaError) as caught:
        client.events.create(type="usage.warning", data={})

    assert caught.value.retry_after == 3600.0
    assert len(scripted.requests) == 1


def test_client_retries_dropped_connection(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse(drop=True), CannedResponse.json(200, EMPTY_LIST))

    with make_client(scripted) as client:
        assert client.webhooks.list().data == []

    assert len(scripted.requests) == 2


def test_client_connection_refused_raises_connection_error() -> None:
    client = wp_llm.Client(KEY, base_url=f"http://127.0.0.1:{closed_port()}", max_retries=1)

    with client, pytest.raises(exceptions.ConnectionError) as caught:
        client.webhooks.list()

    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "check that the service runs" in str(caught.value)


def test_client_read_timeout_raises_timeout_error(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse(delay=1.0))

    started = time.monotonic()
    with (
        make_client(scripted, timeout=0.2, max_retries=0) as client,
        pytest.raises(exceptions.TimeoutError) as caught,
    ):
        client.webhooks.list()

    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert isinstance(caught.value, exceptions.ConnectionError)
    assert time.monotonic() - started < 0.9


def test_client_uses_and_keeps_caller_http_client(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse.json(200, EMPTY_LIST))
    http_client = httpx.Client(headers={"X-Trace": "abc"})

    with wp_llm.Client(KEY, base_url=scripted.base_url, http_client=http_client) as client:
        client.webhooks.list()

    assert scripted.requests[0].headers["x-trace"] == "abc"
    assert http_client.is_closed is False
    http_client.close()


async def test_async_client_retries_with_one_idempotency_key(scripted: ScriptedServer) -> None:
    scripted.script(unavailable(), CannedResponse.json(201, WEBHOOK))

    async with wp_llm.AsyncClient(KEY, base_url=scripted.base_url) as client:
        webhook = await client.webhooks.create(url="https://example.com/hooks", events=["*"])

    assert webhook.id == "webhook_1"
    assert (
        scripted.requests[0].headers["idempotency-key"]
        == scripted.requests[1].headers["idempotency-key"]
    )


async def test_async_client_timeout_raises_timeout_error(scripted: ScriptedServer) -> None:
    scripted.script(CannedResponse(delay=1.0))

    async with wp_llm.AsyncClient(
        KEY, base_url=scripted.base_url, timeout=0.2, max_retries=0
    ) as client:
        with pytest.raises(exceptions.TimeoutError):
            await client.webhooks.list()
