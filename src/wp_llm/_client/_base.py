"""Parts shared by both clients: the request model, the retry decision and the error boundary."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from wp_llm import exceptions
from wp_llm._client._config import ClientConfig
from wp_llm._client._responses import error_fields, error_from_response, error_from_transport
from wp_llm._client._retry import (
    RetryPolicy,
    is_retryable_error,
    is_retryable_status,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

HTTPMethod = Literal["GET", "POST", "PATCH", "DELETE"]
Params = dict[str, str | int]
Outcome = httpx.Response | httpx.RequestError


@dataclass(frozen=True)
class APIRequest:
    """One logical call; every retry sends it unchanged, `Idempotency-Key` included."""

    method: HTTPMethod
    path: str
    params: Params | None = None
    body: Mapping[str, Any] | None = None
    idempotency_key: str | None = None


def post(path: str, body: Mapping[str, Any] | None, idempotency_key: str | None) -> APIRequest:
    """Build a POST; without a caller's key it gets a fresh UUID4 that its retries reuse."""
    if idempotency_key is not None and not idempotency_key.strip():
        raise ValueError("idempotency_key must be a non-empty string or None")
    key = idempotency_key or str(uuid.uuid4())
    return APIRequest("POST", path, body=body, idempotency_key=key)


def object_path(collection: str, object_id: str, action: str = "") -> str:
    """Return `collection/<id>[/action]` with the id escaped, so it cannot change the path."""
    # Escaping keeps "/" out, but "." and ".." would still be read as path segments.
    if not isinstance(object_id, str) or object_id.strip() in {"", ".", ".."}:
        raise ValueError(f"an object id must be a non-empty string, got {object_id!r}")
    path = f"{collection}/{quote(object_id, safe='')}"
    return f"{path}/{action}" if action else path


class _Omit:
    """The default of an argument that was not passed, where an explicit None means null."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()


def drop_none(**fields: Any) -> dict[str, Any]:
    """Keep the arguments the caller set, so the service applies its defaults to the rest."""
    return {name: value for name, value in fields.items() if value is not None}


def batch_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Copy one event of a batch as the API takes it: its `type` and its `data`."""
    missing = [name for name in ("type", "data") if name not in item]
    if missing:
        raise ValueError(f"each event of a batch needs 'type' and 'data'; missing {missing}")
    return {"type": item["type"], "data": dict(item["data"])}


def drop_omitted(**fields: Any) -> dict[str, Any]:
    """Keep the arguments the caller passed, explicit None included."""
    return {name: value for name, value in fields.items() if value is not OMIT}


class BaseClient:
    """Settings, retry decisions and error translation, shared by Client and AsyncClient."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._retry_policy = RetryPolicy(max_retries=config.max_retries)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    def _request_arguments(self, request: APIRequest) -> dict[str, Any]:
        """Return the arguments of `httpx.Client.request`; they name the full URL, so an
        `http_client` passed by the caller needs no base URL of its own."""
        headers = self._config.headers
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        arguments: dict[str, Any] = {
            "method": request.method,
            "url": self._config.base_url + request.path,
            "params": request.params,
            "headers": headers,
            "timeout": self._config.timeout,
        }
        if request.body is not None:
            headers["Content-Type"] = "application/json"
            arguments["content"] = encode_body(request.body)
        return arguments

    def _retry_delay(
        self, request: APIRequest, retries_done: int, outcome: Outcome
    ) -> float | None:
        """Return how long to wait before sending `request` again, or None to stop."""
        if isinstance(outcome, httpx.RequestError):
            retryable = is_retryable_error(outcome)
            retry_after = None
            reason = type(outcome).__name__
        else:
            code = None if outcome.is_success else error_fields(outcome)["code"]
            retryable = not outcome.is_success and is_retryable_status(outcome.status_code, code)
            retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
            reason = str(outcome.status_code)
        if not retryable:
            return None

        delay = self._retry_policy.delay(retries_done, retry_after)
        if delay is not None:
            logger.info(
                "retrying request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "retry": retries_done + 1,
                    "delay_seconds": round(delay, 3),
                    "reason": reason,
                },
            )
        return delay

    def _unwrap(self, outcome: Outcome) -> httpx.Response:
        """Return a success response; raise the matching `wp_llm.exceptions` error otherwise."""
        if isinstance(outcome, httpx.RequestError):
            raise error_from_transport(outcome, self._config.base_url) from outcome
        if not outcome.is_success:
            raise error_from_response(outcome)
        return outcome


def encode_body(body: Any) -> bytes:
    """Encode a request body as UTF-8 JSON, or raise RequestEncodingError before sending."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        # UnicodeEncodeError is a ValueError: a lone surrogate is not UTF-8 text.
        raise exceptions.RequestEncodingError(
            f"the request body cannot be sent as JSON: {error}"
        ) from error
