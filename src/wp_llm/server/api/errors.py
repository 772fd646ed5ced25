"""Turns every failure into the error envelope; no stack trace ever reaches a client."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from wp_llm.server.api.payload_checks import MAX_DEPTH, UnstorableValueError
from wp_llm.server.errors import ServiceError, ServiceUnavailable

logger = logging.getLogger(__name__)

_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    401: ("authentication_error", "unauthorized"),
    403: ("authorization_error", "forbidden"),
    404: ("resource_error", "not_found"),
    405: ("validation_error", "method_not_allowed"),
    413: ("validation_error", "request_too_large"),
    415: ("validation_error", "unsupported_media_type"),
}


UNREADABLE_BODY_MESSAGE = (
    "The request body is not valid JSON: send UTF-8 text, with arrays and objects "
    f"nested at most {MAX_DEPTH} levels deep."
)


class ErrorObject(BaseModel):
    """An error's type, its stable code, a message, and `details` naming the offending field."""

    type: str
    code: str
    message: str
    details: dict[str, Any]
    request_id: str
    timestamp: int


class ErrorEnvelope(BaseModel):
    """The body of every error response: `{"error": {...}}`."""

    error: ErrorObject


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def envelope(
    request: Request,
    status_code: int,
    *,
    error_type: str,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_document(
        request_id_of(request), error_type=error_type, code=code, message=message, details=details
    )
    return JSONResponse(body, status_code=status_code, headers=headers)


def service_error_response(request_id: str, error: ServiceError) -> JSONResponse:
    """Return the envelope response for one of the service's own errors."""
    body = error_document(
        request_id,
        error_type=error.error_type,
        code=error.code,
        message=error.message,
        details=error.details,
    )
    return JSONResponse(body, status_code=error.status_code, headers=error.headers or None)


def database_unavailable_response(request_id: str, error: Exception) -> JSONResponse:
    """Log a database failure and return 503 with `Retry-After`, so the client tries again."""
    logger.warning(
        "database unavailable", extra={"request_id": request_id, "error": str(error)[:200]}
    )
    return service_error_response(
        request_id,
        ServiceUnavailable(
            "The database is unavailable; retry the request shortly.", headers={"Retry-After": "1"}
        ),
    )


def error_document(
    request_id: str,
    *,
    error_type: str,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the error envelope, `{"error": {type, code, message, details, ...}}`."""
    return {
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": request_id,
            "timestamp": int(time.time()),
        }
    }


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """Turn a pydantic location such as ('body', 'events', 0) into `events[0]`."""
    parts = list(location)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "body"


def _validation_details(error: RequestValidationError) -> tuple[str, dict[str, Any]]:
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            return "The request body is not valid JSON.", {
                "field": "body",
                "reason": item.get("msg"),
            }
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, UnstorableValueError):
            problems.append({"field": cause.field, "message": cause.reason})
            continue
        # Pydantic prefixes a validator's own message with "Value error, "; keep only ours.
        reason = str(cause) if item.get("type") == "value_error" and cause else item.get("msg", "")
        problems.append({"field": field_path(item.get("loc", ())), "message": reason})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    message = f"Invalid value for {first['field']}: {first['message']}"
    return message, {"field": first["field"], "errors": problems}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
        return service_error_response(request_id_of(request), error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message, details = _validation_details(error)
        return envelope(
            request,
            400,
            error_type="validation_error",
            code="invalid_request",
            message=message,
            details=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        error_type, code = _HTTP_ERRORS.get(
            error.status_code, ("validation_error", "invalid_request")
        )
        message = str(error.detail) if error.detail else "The request failed."
        details = None
        if error.status_code == 404:
            message = f"No route matches {request.method} {request.url.path}."
        elif error.status_code == 400:
            # FastAPI raises this when the body parser fails other than on JSON syntax.
            message = UNREADABLE_BODY_MESSAGE
            details = {"field": "body"}
        return envelope(
            request,
            error.status_code,
            error_type=error_type,
            code=code,
            message=message,
            details=details,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_down(request: Request, error: Exception) -> JSONResponse:
        return database_unavailable_response(request_id_of(request), error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"request_id": request_id_of(request)})
        return envelope(
            request,
            500,
            error_type="server_error",
            code="internal_error",
            message="The server failed to handle the request; it has been logged.",
        )
