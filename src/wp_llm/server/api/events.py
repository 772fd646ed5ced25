"""`/v1/events`: publish an event and read published events."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Response

from wp_llm import catalog
from wp_llm.server.api.context import ServiceContext, get_context, get_principal, require_account
from wp_llm.server.api.models import EventBatchCreate, EventCreate
from wp_llm.server.api.params import PageParams, page_params
from wp_llm.server.api.resources import list_object
from wp_llm.server.api.strict_query import StrictQueryRoute
from wp_llm.server.errors import InvalidRequest, PermissionDenied, UnprocessableData
from wp_llm.server.store import accounts
from wp_llm.server.store import events as event_store
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.accounts import Principal
from wp_llm.server.validation import validate_event_data

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=StrictQueryRoute)


def names_own_account(principal: Principal, requested: str, context: ServiceContext) -> bool:
    """Return whether `requested` is the id or the name of the key's own account."""
    if requested == principal.account_id:
        return True
    found = accounts.find_account(context.engine, requested)
    return found is not None and found["id"] == principal.account_id


def target_account(principal: Principal, requested: str | None, context: ServiceContext) -> str:
    """Account keys publish to their own account; service keys name the account."""
    if principal.kind != "service":
        if requested is not None and not names_own_account(principal, requested, context):
            raise PermissionDenied(
                "Account keys publish only to their own account; omit 'account'.",
                code="cross_account_publish",
                details={"field": "account"},
            )
        return principal.account_id or ""
    if not requested:
        raise InvalidRequest(
            "Service keys must name the account to publish to in 'account'.",
            code="account_required",
            details={"field": "account"},
        )
    found = accounts.find_account(context.engine, requested)
    if found is None:
        raise InvalidRequest(
            f"No account with id or name {requested[:100]!r}.",
            code="account_not_found",
            details={"field": "account", "value": requested[:100]},
        )
    return str(found["id"])


def checked_event(event_type: str, data: dict[str, Any], prefix: str = "") -> None:
    """Raise the API error for an unknown type or data that does not fit the type's schema.

    `prefix` goes before each field name, such as `events[2].` for an event of a batch.
    """
    if event_type not in catalog.EVENT_TYPES:
        raise InvalidRequest(
            f"Unknown event type {event_type[:100]!r}" + (f" at {prefix}type." if prefix else "."),
            code="unknown_event_type",
            details={
                "field": f"{prefix}type",
                "value": event_type[:100],
                "valid": list(catalog.EVENT_TYPES),
            },
        )
    problems = validate_event_data(event_type, data)
    if problems:
        first = problems[0]
        raise UnprocessableData(
            f"Invalid {prefix}{first.field}: {first.message}",
            details={
                "field": f"{prefix}{first.field}",
                "errors": [{"field": f"{prefix}{p.field}", "message": p.message} for p in problems],
            },
        )


@router.post("", status_code=201, summary="Publish an event to every subscribed webhook")
async def create_event(
    body: EventCreate,
    principal: Principal = Depends(get_principal),
    context: ServiceContext = Depends(get_context),
) -> Response:
    account_id = await resolved_account(principal, body.account, context)
    checked_event(body.type, body.data)
    published = await publish_grouped(context, account_id, [(body.type, body.data)], "data")
    # The stored envelope is the response: the same bytes every delivery sends.
    return Response(published.events[0].body, status_code=201, media_type="application/json")


@router.post(
    "/batch",
    status_code=201,
    summary="Publish up to 100 events in one request, all of them or none",
)
async def create_event_batch(
    body: EventBatchCreate,
    principal: Principal = Depends(get_principal),
    context: ServiceContext = Depends(get_context),
) -> Response:
    account_id = await resolved_account(principal, body.account, context)
    for index, item in enumerate(body.events):
        checked_event(item.type, item.data, prefix=f"events[{index}].")
    items = [(item.type, item.data) for item in body.events]
    published = await publish_grouped(context, account_id, items, "events")
    # The stored envelopes, in the order of the request, as a list object.
    envelopes = b",".join(event.body for event in published.events)
    content = b'{"object":"list","data":[' + envelopes + b'],"has_more":false}'
    return Response(content, status_code=201, media_type="application/json")


async def resolved_account(
    principal: Principal, requested: str | None, context: ServiceContext
) -> str:
    """Return the account to publish to, looking it up in the thread pool only if needed."""
    if principal.kind != "service" and requested is None:
        return principal.account_id or ""
    return await anyio.to_thread.run_sync(target_account, principal, requested, context)


async def publish_grouped(
    context: ServiceContext, account_id: str, items: list[tuple[str, Any]], field: str
) -> usage_store.MeteredBatch:
    """Count and store one request's events in the process's next grouped transaction.

    The group commit hands new deliveries to this process's worker, or wakes it to claim them.
    """
    try:
        published = await context.publishes.publish(account_id, items)
    except ValueError as error:
        raise UnprocessableData(f"Invalid data: {error}", details={"field": field}) from None
    return published


def types_matching_filter(pattern: str | None) -> list[str] | None:
    """Expand a `type` filter into the catalog types it selects; None selects every type.

    The filter takes what subscriptions take: a catalog type, a prefix wildcard such as
    `generation.*`, or `*`. Raise InvalidRequest for anything else, which could match
    no event, because events are published only with catalog types.
    """
    if pattern is None or pattern == "*":
        return None
    if not catalog.is_valid_pattern(pattern):
        raise InvalidRequest(
            f"Unknown event type {pattern[:100]!r} in the type filter. Use a catalog type, "
            "a prefix wildcard such as 'generation.*', or '*'. GET /v1/event_types lists "
            "the catalog types, and so does details.valid.",
            code="unknown_event_type",
            details={"field": "type", "value": pattern[:100], "valid": list(catalog.EVENT_TYPES)},
        )
    return [name for name in catalog.EVENT_TYPES if catalog.matches(pattern, name)]


@router.get("", summary="List events")
def list_events(
    type: str | None = Query(
        None,
        description=(
            "Only events of this type: a catalog type, a prefix wildcard such as "
            "`generation.*`, or `*`."
        ),
    ),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    result = event_store.list_events(
        context.engine,
        principal.account_id or "",
        event_types=types_matching_filter(type),
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return list_object([event_store.event_object(r) for r in result.rows], result)


@router.get("/{event_id}", summary="Retrieve an event")
def retrieve_event(
    event_id: str,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> Response:
    row = event_store.get_event(context.engine, principal.account_id or "", event_id)
    return Response(bytes(row["body"]), media_type="application/json")
