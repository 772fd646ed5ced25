"""Rejects requests the API should not parse: oversized bodies, non-JSON bodies, NUL in URLs.

A pure ASGI middleware, so requests that pass pay only for a few header checks and,
for bodies, one buffering step bounded by the size limit.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wp_llm.server.api.errors import error_document

logger = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH"}


class _BodyCutOff(Exception):
    """The client disconnected before it sent the whole body."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def is_json(content_type: str) -> bool:
    """Return whether a Content-Type is one that FastAPI parses as JSON.

    That is `application/json` or `application/<anything>+json`, with any parameters.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    main_type, slash, subtype = media_type.partition("/")
    if main_type != "application" or not slash or "/" in subtype:
        return False
    return subtype == "json" or subtype.endswith("+json")


def first_header(scope: Scope, name: bytes) -> str | None:
    """Return the first value of a header, as FastAPI reads it, or None without one."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestGuardMiddleware:
    """Rejects bad requests with 413, 415 or 400 and the error envelope before any route runs."""

    def __init__(self, app: ASGIApp, max_request_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        problem = self._url_problem(scope)
        if problem is not None:
            await self._reject(scope, send, 400, "invalid_request", *problem)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return

        declared = first_header(scope, b"content-length") or ""
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._too_large(scope, send)
            return
        try:
            body = await self._read_body(receive)
        except _BodyCutOff as cut_off:
            # No client is left to respond to, and a partial body must not be handled as the
            # request: it could be stored, or spoil the request's idempotency key.
            logger.info(
                "client disconnected before sending the whole body; request dropped",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "received_bytes": cut_off.received,
                },
            )
            return
        if body is None:
            await self._too_large(scope, send)
            return
        if body and not is_json(first_header(scope, b"content-type") or ""):
            message = "Send the body as JSON with 'Content-Type: application/json'."
            await self._reject(scope, send, 415, "unsupported_media_type", "Content-Type", message)
            return
        await self.app(scope, replay_body(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """Read the whole body, or return None as soon as it passes the limit.

        Raise _BodyCutOff if the client disconnects first.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BodyCutOff(size)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _url_problem(scope: Scope) -> tuple[str, str] | None:
        path = unquote(scope.get("raw_path", b"").decode("latin-1") or scope["path"])
        if "\x00" in path:
            return "path", "The URL path contains a NUL character."
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in value or "\x00" in name:
                return name.replace(
                    "\x00", ""
                ), f"The query parameter {name!r} contains a NUL character."
        return None

    async def _too_large(self, scope: Scope, send: Send) -> None:
        message = f"The request body is larger than {self.max_request_bytes} bytes."
        await self._reject(scope, send, 413, "request_too_large", "body", message)

    @staticmethod
    async def _reject(
        scope: Scope, send: Send, status: int, code: str, field: str, message: str
    ) -> None:
        request_id = scope.get("state", {}).get("request_id", "")
        document = error_document(
            request_id,
            error_type="validation_error",
            code=code,
            message=message,
            details={"field": field},
        )
        body = json.dumps(document).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def replay_body(body: bytes, original: Receive) -> Receive:
    """Hand the buffered body to the app, then pass on the client's real disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive
