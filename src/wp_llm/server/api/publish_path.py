"""A direct path for `POST /v1/events`, the busiest route of the API.

For a single event, FastAPI's routing, dependency solving and body validation took more of
the API's CPU time than storing the event. This middleware handles a well-formed publish
request itself: it authenticates the key, takes a rate-limit token and runs the same checks
and the same grouped publish as the route. Its response bytes and headers match the route's.

Any body the route's model could reject goes on to the route instead, untouched: invalid JSON,
fields of the wrong type, unknown fields, or values the service cannot store. So validation
errors keep coming from one place and read the same whichever path a request takes. Bodies
over MAX_DIRECT_BYTES go to the route too, and so do bodies whose Content-Type the route
would not read as JSON. Requests with a query string go to the route as well, which
rejects the parameters it does not declare. The decision is made before authentication,
so a request never takes two rate-limit tokens.

It runs inside the request-id, request-guard and idempotency middleware, so request ids,
size limits and idempotency keys apply as to every other route.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wp_llm.server.api.context import ServiceContext, authenticate
from wp_llm.server.api.errors import database_unavailable_response, service_error_response
from wp_llm.server.api.events import checked_event, publish_grouped, resolved_account
from wp_llm.server.api.payload_checks import UnstorableValueError, check_value
from wp_llm.server.api.request_guard import first_header, is_json, replay_body
from wp_llm.server.errors import ServiceError

PATH = "/v1/events"
# Larger bodies go to the route: a body the route then rejects would be parsed twice,
# and checking every value of a large body before authentication would cost an
# unauthenticated client more of the event loop than the route does.
MAX_DIRECT_BYTES = 64 * 1024
_FIELDS = frozenset({"type", "data", "account"})
_RESPONSE_HEADERS = [(b"content-type", b"application/json")]


def simple_event(body: bytes) -> tuple[str, dict[str, Any], str | None] | None:
    """Return (type, data, account) when the route's model would accept `body` as it is.

    Return None for anything the model might reject, so that the route handles it.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # The route reports the same failure as invalid JSON or an unreadable body.
        return None
    if type(document) is not dict or not document.keys() <= _FIELDS:
        return None
    event_type = document.get("type")
    data = document.get("data")
    account = document.get("account")
    if type(event_type) is not str or type(data) is not dict:
        return None
    if account is not None and type(account) is not str:
        return None
    try:
        check_value(event_type, "type")
        check_value(data, "data")
        check_value(account, "account")
    except UnstorableValueError:
        return None
    return event_type, data, account


class PublishPathMiddleware:
    """Middleware that publishes well-formed `POST /v1/events` requests without FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # The request guard has read the whole body already and hands it over in one message.
        message = await receive()
        body = message.get("body", b"")
        event = None
        if _takes_direct_path(scope, message, body):
            event = simple_event(body)
        if event is None:
            await self.app(scope, replay_body(body, receive), send)
            return
        state = scope.setdefault("state", {})
        context: ServiceContext = scope["app"].state.context
        try:
            content = await _publish(context, first_header(scope, b"authorization"), state, *event)
        except ServiceError as error:
            await service_error_response(state.get("request_id", ""), error)(scope, receive, send)
            return
        except (OperationalError, PoolTimeoutError) as error:
            response = database_unavailable_response(state.get("request_id", ""), error)
            await response(scope, receive, send)
            return
        headers = [(b"content-length", str(len(content)).encode("ascii")), *_RESPONSE_HEADERS]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _publish(
    context: ServiceContext,
    authorization: str | None,
    state: dict[str, Any],
    event_type: str,
    data: dict[str, Any],
    account: str | None,
) -> bytes:
    """Run the route's steps in the route's order and return the stored envelope."""
    principal = await authenticate(context, authorization, state)
    account_id = await resolved_account(principal, account, context)
    checked_event(event_type, data)
    published = await publish_grouped(context, account_id, [(event_type, data)], "data")
    return published.events[0].body


def _takes_direct_path(scope: Scope, message: Message, body: bytes) -> bool:
    """Return whether the request has no query string and a whole, small JSON body."""
    if scope["query_string"] or message.get("more_body", False) or len(body) > MAX_DIRECT_BYTES:
        return False
    return is_json(first_header(scope, b"content-type") or "")
