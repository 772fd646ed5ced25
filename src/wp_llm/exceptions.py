"""Errors raised by `wp_llm.Client` and `wp_llm.AsyncClient`.

    WPLLMError
    ├── APIError                  the service responded with an error envelope
    │   ├── AuthenticationError   401, or no API key configured
    │   ├── AuthorizationError    403
    │   ├── ValidationError       400, 422
    │   ├── NotFoundError         404
    │   ├── ConflictError         409, such as a reused idempotency key
    │   ├── RateLimitError        429 rate_limit_error
    │   ├── QuotaError            429 quota_error
    │   └── ServerError           5xx
    ├── ConnectionError           the request got no response
    │   └── TimeoutError
    └── RequestEncodingError      the arguments cannot be sent as JSON; nothing was sent

`ConnectionError` and `TimeoutError` share their names with Python builtins but do not
derive from them; refer to them as `exceptions.ConnectionError` to keep both in reach.
Messages carry the service's message, status, code and request id, and never the API key
or a whole response body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "AuthorizationError",
    "ConflictError",
    "ConnectionError",
    "NotFoundError",
    "QuotaError",
    "RateLimitError",
    "RequestEncodingError",
    "ServerError",
    "TimeoutError",
    "ValidationError",
    "WPLLMError",
]


class WPLLMError(Exception):
    """Base of every error the WP LLM client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(WPLLMError):
    """The service rejected the request; the fields come from its error envelope.

    `body` is the raw response body, `headers` the response headers, and `retry_after`
    the seconds the service asked the client to wait (from `Retry-After`), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        type: str | None = None,  # noqa: A002 - the envelope's field name
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.code = code
        self.details: Mapping[str, Any] = details or {}
        self.request_id = request_id
        self.body = body
        self.headers: Mapping[str, str] = headers or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = "no request sent" if self.status_code is None else str(self.status_code)
        label = " ".join(part for part in (status, self.type, self.code) if part)
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{label}: {self.message}{suffix}"


class AuthenticationError(APIError):
    """The API key is invalid or revoked; or none was configured, and `status_code` is None."""


class AuthorizationError(APIError):
    """The API key is valid but may not perform this request."""


class ValidationError(APIError):
    """A parameter is missing or invalid; `details["field"]` names it."""


class NotFoundError(APIError):
    """No object with that id exists in the API key's account."""


class ConflictError(APIError):
    """The request conflicts with the current state, such as a reused idempotency key."""


class RateLimitError(APIError):
    """The API key sent too many requests; `retry_after` is the wait in seconds, if given."""


class QuotaError(APIError):
    """The account used up its quota; `retry_after` is the wait in seconds, if given."""


class ServerError(APIError):
    """The service failed to handle the request; a retry may succeed."""


class ConnectionError(WPLLMError):  # noqa: A001 - the public name the SDK documents
    """The request got no response: the connection failed or broke, or it timed out."""


class TimeoutError(ConnectionError):  # noqa: A001 - the public name the SDK documents
    """Connecting, sending or reading took longer than the configured timeout."""


class RequestEncodingError(WPLLMError, ValueError):
    """The request's arguments cannot be sent as JSON, such as a string with a lone surrogate.

    Nothing was sent to the service.
    """
