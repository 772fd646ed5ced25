"""Gives every request an id, returned in `X-Request-Id` and in error envelopes."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wp_llm.server.ids import new_id


class RequestIdMiddleware:
    """Stores the id in the request state and adds it, and any rate-limit headers, to the response.

    A pure ASGI middleware: Starlette's BaseHTTPMiddleware costs a task group and a
    stream per request, a large share of a cheap request's CPU time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = request_id = new_id("req")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = request_id
                rate_limit = state.get("rate_limit")
                if rate_limit is not None:
                    headers.update(rate_limit.headers())
            await send(message)

        await self.app(scope, receive, send_with_headers)
