"""How error responses become `wp_llm.exceptions`: the mapping, then the service's own."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

import wp_llm
from tests.sdk.conftest import EXAMPLE_URL
from tests.support.service import ServiceProcess
from wp_llm import catalog, exceptions
from wp_llm._client._responses import error_from_response
from wp_llm.server.db.engine import create_db_engine
from wp_llm.server.store import accounts


def error_response(
    status_code: int, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1:8080/v1/webhooks")
    return httpx.Response(status_code, content=body, headers=headers, request=request)


def envelope(error_type: str, code: str = "some_code", **fields: object) -> bytes:
    error = {
        "type": error_type,
        "code": code,
        "message": "it failed",
        "details": {"field": "url"},
        "request_id": "req_1",
        "timestamp": 0,
        **fields,
    }
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("status_code", "error_type", "expected"),
    [
        (401, "authentication_error", exceptions.AuthenticationError),
        (403, "authorization_error", exceptions.AuthorizationError),
        (400, "validation_error", exceptions.ValidationError),
        (422, "validation_error", exceptions.ValidationError),
        (404, "resource_error", exceptions.NotFoundError),
        (409, "resource_error", exceptions.ConflictError),
        (429, "rate_limit_error", exceptions.RateLimitError),
        (429, "quota_error", exceptions.QuotaError),
        (500, "server_error", exceptions.ServerError),
        (503, "server_error", exceptions.ServerError),
        # The type wins over the status: the service reports 405 as a validation error.
        (405, "validation_error", exceptions.ValidationError),
        # A type this client does not know falls back to the status code.
        (404, "brand_new_error", exceptions.NotFoundError),
        (418, "brand_new_error", exceptions.APIError),
        # A resource error with an unusual status is still an APIError.
        (410, "resource_error", exceptions.APIError),
    ],
)
def test_error_class_follows_type_then_status(
    status_code: int, error_type: str, expected: type[exceptions.APIError]
) -> None:
    error = error_from_response(error_response(status_code, envelope(error_type)))

    assert type(error) is expected
    assert error.status_code == status_code


def test_error_fields_come_from_envelope() -> None:
    error = error_from_response(error_response(400, envelope("validation_error", "invalid_url")))

    assert error.type == "validation_error"
    assert error.code == "invalid_url"
    assert error.message == "it failed"
    assert error.details == {"field": "url"}
    assert error.request_id == "req_1"
    assert str(error) == "400 validation_error invalid_url: it failed (request req_1)"


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [
        (502, exceptions.ServerError),
        (404, exceptions.NotFoundError),
        (429, exceptions.RateLimitError),
        (418, exceptions.APIError),
    ],
)
def test_error_without_envelope_maps_by_status(
    status_code: int, expected: type[exceptions.APIError]
) -> None:
    body = b"<html>Bad Gateway from a proxy</html>"

    error = error_from_response(error_response(status_code, body, {"Content-Type": "text/html"}))

    assert type(error) is expected
    assert error.body == body
    assert error.code is None
    assert "without an error envelope" in error.message
    assert "Bad Gateway" not in str(error)


@pytest.mark.parametrize(
    "body", [b"", b"null", b"[1, 2]", b'{"error": "flat string"}', b"\xff\xfe"]
)
def test_error_with_odd_body_still_maps(body: bytes) -> None:
    error = error_from_response(error_response(500, body))

    assert isinstance(error, exceptions.ServerError)


def test_rate_limit_error_carries_retry_after() -> None:
    response = error_response(
        429, envelope("rate_limit_error"), {"Retry-After": "7", "X-RateLimit-Limit": "10"}
    )

    error = error_from_response(response)

    assert isinstance(error, exceptions.RateLimitError)
    assert error.retry_after == 7.0
    assert error.headers["x-ratelimit-limit"] == "10"


def test_error_request_id_falls_back_to_header() -> None:
    error = error_from_response(error_response(502, b"", {"X-Request-Id": "req_from_header"}))

    assert error.request_id == "req_from_header"


def test_exception_tree_has_one_root() -> None:
    leaves = [
        exceptions.AuthenticationError,
        exceptions.AuthorizationError,
        exceptions.ValidationError,
        exceptions.NotFoundError,
        exceptions.ConflictError,
        exceptions.RateLimitError,
        exceptions.QuotaError,
        exceptions.ServerError,
    ]

    assert all(issubclass(leaf, exceptions.APIError) for leaf in leaves)
    assert issubclass(exceptions.TimeoutError, exceptions.ConnectionError)
    assert issubclass(exceptions.ConnectionError, exceptions.WPLLMError)
    assert issubclass(exceptions.APIError, exceptions.WPLLMError)


def test_service_validation_error_names_the_field(client: wp_llm.Client) -> None:
    with pytest.raises(exceptions.ValidationError) as caught:
        client.webhooks.create(url="ftp://example.com/hooks", events=["*"])

    assert caught.value.status_code == 400
    assert caught.value.details["field"] == "url"
    assert caught.value.code == "invalid_url_scheme"


def test_service_unknown_event_type_names_the_index(client: wp_llm.Client) -> None:
    with pytest.raises(exceptions.ValidationError) as caught:
        client.webhooks.create(url=EXAMPLE_URL, events=["*", "nope.never"])

    assert caught.value.details["field"] == "events[1]"


def test_service_key_managing_webhooks_raises_authorization_error(service: ServiceProcess) -> None:
    engine = create_db_engine(service.database_url)
    try:
        token = accounts.create_key(
            engine, account_id=None, kind="service", name=f"svc-{uuid.uuid4().hex[:6]}"
        ).token
    finally:
        engine.dispose()

    client = wp_llm.Client(token, base_url=service.base_url)
    with client, pytest.raises(exceptions.AuthorizationError) as caught:
        client.webhooks.list()

    assert caught.value.status_code == 403
    assert caught.value.code == "account_key_required"


def test_service_cancelled_delivery_retry_raises_conflict(client: wp_llm.Client) -> None:
    webhook = client.webhooks.create(url=EXAMPLE_URL, events=["usage.warning"])
    event = client.events.create(
        type="usage.warning", data=catalog.EVENT_TYPES["usage.warning"].example
    )
    [delivery] = client.deliveries.list(event_id=event.id)
    client.webhooks.delete(webhook.id)

    with pytest.raises(exceptions.ConflictError) as caught:
        client.deliveries.retry(delivery.id)

    assert caught.value.code == "delivery_cancelled"


def test_unencodable_body_raises_before_sending() -> None:
    from wp_llm import Client
    from wp_llm.exceptions import RequestEncodingError

    with (
        Client(api_key="wpllm_sk_unused", base_url="http://127.0.0.1:9") as client,
        pytest.raises(RequestEncodingError, match="cannot be sent as JSON"),
    ):
        client.events.create(type="generation.started", data={"prompt": "\ud83d"})
