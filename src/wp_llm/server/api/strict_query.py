"""A route class that rejects query parameters its route does not declare.

FastAPI ignores a query parameter that no route parameter names, and for a parameter that
takes one value it keeps the last of several. So `?limt=5` would list the default page
size, and `?limit=5&limit=50` fifty objects, without a word. Routes of this class reject
both with 400 `validation_error`, as request bodies reject unknown fields. The check runs
before authentication, because the request's shape alone is wrong:

- `unknown_parameter` for a name the route does not declare, listing those it does;
- `duplicate_parameter` for a repeated parameter that takes one value;
- `empty_parameter` for a parameter without a value, such as `?webhook_id=`, which
  would otherwise filter on the empty string and list nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi._compat import ModelField, field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams

from wp_llm.server.api.errors import ErrorEnvelope
from wp_llm.server.errors import InvalidRequest

# Longer names are cut in messages, so a client cannot fill a response with its own text.
MAX_NAME_SHOWN = 100
INVALID_REQUEST_RESPONSE: dict[str, Any] = {
    "model": ErrorEnvelope,
    "description": "A query parameter or body field is unknown, repeated or invalid.",
}
# Declaring these also keeps FastAPI from listing its own 422 body, which this API never
# sends: its validation errors are 400, and event data that breaks its schema is a 422
# in the same envelope.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: INVALID_REQUEST_RESPONSE,
    "4XX": {
        "model": ErrorEnvelope,
        "description": "Another client error: authentication, access, a missing object, "
        "a conflict, a rate limit or quota, or event data that breaks its schema.",
    },
    "5XX": {
        "model": ErrorEnvelope,
        "description": "The service cannot complete the request now; 503 with Retry-After "
        "may be retried.",
    },
}


@dataclass(frozen=True)
class QuerySignature:
    """The query parameters of one route, in the order the route declares them."""

    route: str
    names: tuple[str, ...]
    # Parameters typed as lists, which FastAPI reads from every repeat, such as `?a=1&a=2`.
    repeatable: frozenset[str]

    def check(self, query: QueryParams) -> None:
        """Raise InvalidRequest for the first parameter that is unknown, repeated or empty."""
        seen: set[str] = set()
        for name, value in query.multi_items():
            if name not in self.names:
                raise self._unknown(name)
            if name in seen and name not in self.repeatable:
                raise self._duplicate(name, len(query.getlist(name)))
            if not value:
                raise self._empty(name)
            seen.add(name)

    def _unknown(self, name: str) -> InvalidRequest:
        shown_name = name[:MAX_NAME_SHOWN]
        if self.names:
            accepted = f"accepts only {', '.join(self.names)}"
        else:
            accepted = "accepts no query parameters"
        return InvalidRequest(
            f"Unknown query parameter {shown_name!r}. {self.route} {accepted}.",
            code="unknown_parameter",
            details={"field": shown_name, "valid": list(self.names)},
        )

    def _duplicate(self, name: str, count: int) -> InvalidRequest:
        return InvalidRequest(
            f"The query parameter {name!r} appears {count} times, but {self.route} "
            "takes one value for it. Send it once.",
            code="duplicate_parameter",
            details={"field": name, "count": count},
        )

    def _empty(self, name: str) -> InvalidRequest:
        return InvalidRequest(
            f"The query parameter {name!r} is empty. Give it a value, or leave it out of "
            f"the query string of {self.route}.",
            code="empty_parameter",
            details={"field": name},
        )


def query_signature(route: str, dependant: Dependant) -> QuerySignature:
    """Collect the query parameters of a route and of every dependency it declares."""
    names: dict[str, None] = {}
    repeatable = set()
    for field in _query_fields(dependant):
        names[field.alias] = None
        # The test FastAPI itself uses to read a parameter with getlist() instead of get().
        if field_annotation_is_sequence(field.field_info.annotation):
            repeatable.add(field.alias)
    return QuerySignature(route, tuple(names), frozenset(repeatable))


def _query_fields(dependant: Dependant) -> Iterator[ModelField]:
    yield from dependant.query_params
    for dependency in dependant.dependencies:
        yield from _query_fields(dependency)


class StrictQueryRoute(APIRoute):
    """An API route that rejects the query parameters it does not declare with 400."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        responses = options.get("responses") or {}
        options["responses"] = {**ERROR_RESPONSES, **responses}
        super().__init__(path, endpoint, **options)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        methods = "|".join(sorted(self.methods or ()))
        signature = query_signature(f"{methods} {self.path}", self.dependant)

        async def handle_checked(request: Request) -> Response:
            if request.scope.get("query_string"):
                signature.check(request.query_params)
            return await handle(request)

        return handle_checked
