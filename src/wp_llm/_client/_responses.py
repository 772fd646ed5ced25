"""The boundary where httpx responses and errors become JSON values or `wp_llm.exceptions`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
import pydantic

from wp_llm import exceptions
from wp_llm._client._retry import parse_retry_after

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

# The envelope's `type` decides the class; the status code decides when `type` is unknown.
_ERRORS_BY_TYPE: dict[str, type[exceptions.APIError]] = {
    "authentication_error": exceptions.AuthenticationError,
    "authorization_error": exceptions.AuthorizationError,
    "validation_error": exceptions.ValidationError,
    "rate_limit_error": exceptions.RateLimitError,
    "quota_error": exceptions.QuotaError,
    "server_error": exceptions.ServerError,
}
_ERRORS_BY_STATUS: dict[int, type[exceptions.APIError]] = {
    400: exceptions.ValidationError,
    401: exceptions.AuthenticationError,
    403: exceptions.AuthorizationError,
    404: exceptions.NotFoundError,
    409: exceptions.ConflictError,
    422: exceptions.ValidationError,
    429: exceptions.RateLimitError,
}


def error_class(status_code: int, error_type: str | None) -> type[exceptions.APIError]:
    """Choose the exception class for an error response."""
    if error_type in _ERRORS_BY_TYPE:
        return _ERRORS_BY_TYPE[error_type]
    if status_code >= 500:
        return exceptions.ServerError
    return _ERRORS_BY_STATUS.get(status_code, exceptions.APIError)


def error_fields(response: httpx.Response) -> dict[str, Any]:
    """Read the error envelope; every field is None when the body is not one."""
    try:
        envelope = response.json()
    except (ValueError, UnicodeDecodeError):
        envelope = None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(error, dict):
        return {"type": None, "code": None, "message": None, "details": None, "request_id": None}
    details = error.get("details")
    return {
        "type": _text(error.get("type")),
        "code": _text(error.get("code")),
        "message": _text(error.get("message")),
        "details": details if isinstance(details, dict) else None,
        "request_id": _text(error.get("request_id")),
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_from_response(response: httpx.Response) -> exceptions.APIError:
    """Build the exception for an error response, JSON envelope or not."""
    fields = error_fields(response)
    request = response.request
    message = fields.pop("message") or (
        f"{request.method} {request.url.path} returned {response.status_code} "
        "without an error envelope; check that the base URL points at a WP LLM service."
    )
    fields["request_id"] = fields["request_id"] or response.headers.get("X-Request-Id")
    cls = error_class(response.status_code, fields["type"])
    return cls(
        message,
        status_code=response.status_code,
        body=response.content,
        headers=dict(response.headers),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        **fields,
    )


def error_from_transport(error: httpx.RequestError, base_url: str) -> exceptions.ConnectionError:
    """Build the exception for a request that got no response; the caller chains it `from` error."""
    request = error.request
    target = f"{request.method} {request.url.path}"
    if isinstance(error, httpx.TimeoutException):
        return exceptions.TimeoutError(
            f"{target} timed out ({type(error).__name__}); the service at {base_url} is slow "
            "or unreachable, so retry later or raise the client's timeout."
        )
    return exceptions.ConnectionError(
        f"{target} failed: {error or type(error).__name__}; check that the service "
        f"runs at {base_url}."
    )


def _unexpected_response(response: httpx.Response, problem: str) -> exceptions.APIError:
    request = response.request
    return exceptions.APIError(
        f"{request.method} {request.url.path} returned {response.status_code} {problem}; "
        "check that the base URL points at a WP LLM service.",
        status_code=response.status_code,
        body=response.content,
        headers=dict(response.headers),
        request_id=response.headers.get("X-Request-Id"),
    )


def json_body(response: httpx.Response) -> Any:
    """Decode the JSON body of a success response."""
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        content_type = response.headers.get("Content-Type", "no content type")
        raise _unexpected_response(
            response, f"with a body that is not JSON ({content_type})"
        ) from None


def parse_model(model: type[ModelT], value: Any, response: httpx.Response) -> ModelT:
    """Validate a JSON object as `model`; a mismatch becomes an APIError naming the field."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "body"
        problem = f"a {model.__name__} with an invalid {location} ({first['msg']})"
        raise _unexpected_response(response, problem) from error


def parse_list(
    model: type[ModelT], value: Any, response: httpx.Response
) -> tuple[list[ModelT], bool]:
    """Validate a list object; return its items and `has_more`."""
    body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    items = body.get("data")
    if not isinstance(items, list):
        raise _unexpected_response(response, "a list object without a 'data' array")
    return [parse_model(model, item, response) for item in items], body.get("has_more") is True
