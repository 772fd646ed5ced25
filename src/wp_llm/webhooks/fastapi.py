"""FastAPI (or any Starlette) endpoint for a `WebhookReceiver`.

    app.add_api_route("/webhooks/wp-llm", create_endpoint(receiver), methods=["POST"])

Starlette is imported when `create_endpoint` runs, so `wp_llm.webhooks` works without it.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint's
# `request: Request` annotation at runtime, and Request is imported inside a function.

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wp_llm.webhooks._receiver import WebhookReceiver

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["create_endpoint"]


def create_endpoint(receiver: WebhookReceiver) -> "Callable[[Request], Awaitable[Response]]":
    """Create an async endpoint that passes each request's raw body and headers to `receiver`.

    Async handlers are awaited; plain handlers run in a worker thread.
    """
    try:
        from starlette.requests import Request
        from starlette.responses import Response
    except ImportError:
        raise ImportError(
            "wp_llm.webhooks.fastapi needs FastAPI or Starlette; install fastapi"
        ) from None

    async def wp_llm_webhook(request: Request) -> Response:
        # request.body() returns the bytes as received; request.json() would parse them.
        result = await receiver.handle_async(await request.body(), request.headers)
        return Response(
            result.json_bytes(), status_code=result.status_code, media_type="application/json"
        )

    return wp_llm_webhook
