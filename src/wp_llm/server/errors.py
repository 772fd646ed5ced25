"""Errors of the service, each mapped to one status code and error-envelope type.

ServiceError
├── AuthenticationFailed     401 authentication_error
├── PermissionDenied         403 authorization_error
├── InvalidRequest           400 validation_error
│   └── UnprocessableData    422 validation_error
├── ResourceNotFound         404 resource_error
├── ResourceConflict         409 resource_error
├── RateLimited              429 rate_limit_error
├── QuotaExceeded            429 quota_error
└── ServiceUnavailable       503 server_error
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of every error that the API turns into an error envelope."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}
        self.headers = headers or {}


class AuthenticationFailed(ServiceError):
    """The request has no valid API key."""

    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(ServiceError):
    """The API key is valid but may not do this."""

    status_code = 403
    error_type = "authorization_error"
    default_code = "forbidden"


class InvalidRequest(ServiceError):
    """A parameter is missing, malformed or not allowed."""

    status_code = 400
    error_type = "validation_error"
    default_code = "invalid_request"


class UnprocessableData(InvalidRequest):
    """The request is well formed, but event data breaks its type's schema."""

    status_code = 422
    default_code = "invalid_event_data"


class ResourceNotFound(ServiceError):
    """No object with that id exists in the caller's account."""

    status_code = 404
    error_type = "resource_error"
    default_code = "not_found"


class ResourceConflict(ServiceError):
    """The request conflicts with the current state, such as a reused idempotency key."""

    status_code = 409
    error_type = "resource_error"
    default_code = "conflict"


class RateLimited(ServiceError):
    """The API key sent more requests than its rate limit allows."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limited"


class QuotaExceeded(ServiceError):
    """The account used up its quota of published events for this period."""

    status_code = 429
    error_type = "quota_error"
    default_code = "quota_exceeded"


class ServiceUnavailable(ServiceError):
    """A dependency such as the database is unreachable; the request may be retried."""

    status_code = 503
    default_code = "service_unavailable"
