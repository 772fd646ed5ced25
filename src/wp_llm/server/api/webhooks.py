"""`/v1/webhooks`: register, list, read, update, delete and test endpoints."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from wp_llm import catalog
from wp_llm._signing import standard_secret
from wp_llm.server import ids
from wp_llm.server.api.context import ServiceContext, get_context, require_account
from wp_llm.server.api.models import WebhookCreate, WebhookTest, WebhookUpdate
from wp_llm.server.api.params import PageParams, page_params
from wp_llm.server.api.resources import delivery_object, list_object, webhook_object
from wp_llm.server.engine.netguard import BlockedURLError, check_url
from wp_llm.server.engine.sender import Sender, delivery_headers
from wp_llm.server.errors import InvalidRequest
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.accounts import Principal

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def checked_url(url: str, context: ServiceContext) -> str:
    try:
        return check_url(url, context.address_policy)
    except BlockedURLError as error:
        raise InvalidRequest(str(error), code=error.code, details={"field": "url"}) from None


def checked_patterns(patterns: list[str]) -> list[str]:
    """Reject unknown types, listing the valid ones; drop repeats but keep the order."""
    for index, pattern in enumerate(patterns):
        if not catalog.is_valid_pattern(pattern):
            valid = list(catalog.EVENT_TYPES)
            raise InvalidRequest(
                f"Unknown event type {pattern[:100]!r}: use one of the catalog types, "
                "a prefix wildcard such as 'generation.*', or '*'.",
                code="unknown_event_type",
                details={"field": f"events[{index}]", "value": pattern[:100], "valid": valid},
            )
    return list(dict.fromkeys(patterns))


@router.post("", status_code=201, summary="Create a webhook")
def create_webhook(
    body: WebhookCreate,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    secret = body.secret or ids.new_webhook_secret()
    row = webhook_store.create_webhook(
        context.engine,
        context.box,
        account_id=principal.account_id or "",
        url=checked_url(body.url, context),
        events=checked_patterns(body.events),
        description=body.description,
        secret=secret,
    )
    if not body.enabled:
        row = webhook_store.update_webhook(context.engine, row["account_id"], row["id"], {"enabled": False})
    # The secret is returned here and by rotation only; it is never readable again.
    return {**webhook_object(row), "secret": secret, "standard_webhooks_secret": standard_secret(secret)}


@router.get("", summary="List webhooks")
def list_webhooks(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    result = webhook_store.list_webhooks(
        context.engine,
        principal.account_id or "",
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return list_object([webhook_object(r) for r in result.rows], result)


@router.get("/{webhook_id}", summary="Retrieve a webhook")
def retrieve_webhook(
    webhook_id: str,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    return webhook_object(webhook_store.get_webhook(context.engine, principal.account_id or "", webhook_id))


def _update(webhook_id: str, body: WebhookUpdate, principal: Principal, context: ServiceContext) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "enabled"):
        if name in changes and changes[name] is None:
            raise InvalidRequest(f"{name} cannot be null.", details={"field": name})
    if "url" in changes:
        changes["url"] = checked_url(changes["url"], context)
    if "events" in changes:
        changes["events"] = checked_patterns(changes["events"])
    row = webhook_store.update_webhook(context.engine, principal.account_id or "", webhook_id, changes)
    if changes.get("enabled"):
        context.notify_workers()
    return webhook_object(row)


@router.post("/{webhook_id}", summary="Update a webhook")
def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    return _update(webhook_id, body, principal, context)


@router.patch("/{webhook_id}", summary="Update a webhook")
def patch_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    return _update(webhook_id, body, principal, context)


@router.delete("/{webhook_id}", summary="Delete a webhook and cancel its pending deliveries")
def delete_webhook(
    webhook_id: str,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    webhook_store.delete_webhook(context.engine, principal.account_id or "", webhook_id)
    return {"id": webhook_id, "object": "webhook", "deleted": True}


@router.get("/{webhook_id}/deliveries", summary="List a webhook's deliveries")
def list_webhook_deliveries(
    webhook_id: str,
    status: delivery_store.DeliveryStatus | None = None,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    account_id = principal.account_id or ""
    webhook_store.get_webhook(context.engine, account_id, webhook_id)
    result = delivery_store.list_deliveries(
        context.engine,
        account_id,
        webhook_id=webhook_id,
        status=status,
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return list_object([delivery_object(r) for r in result.rows], result)


@router.post("/{webhook_id}/test", summary="Send a test event now and return the outcome")
async def test_webhook(
    webhook_id: str,
    body: WebhookTest | None = None,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    request = body or WebhookTest()
    event_type = request.type
    if event_type not in catalog.EVENT_TYPES:
        checked_patterns([event_type])
        raise InvalidRequest(f"A test needs an exact event type, got {event_type!r}.",
                             code="unknown_event_type", details={"field": "type"})
    data = request.data if request.data is not None else catalog.EVENT_TYPES[event_type].example

    row = await run_in_threadpool(webhook_store.get_webhook, context.engine, principal.account_id or "", webhook_id)
    event_id = ids.new_id(ids.EVENT)
    body_bytes = event_store.build_envelope(event_id, int(time.time()), event_type, data)
    secrets = webhook_store.active_secrets(context.box, row, ids.now_ms())
    headers = delivery_headers(
        event_id=event_id, event_type=event_type, delivery_id=ids.new_id(ids.DELIVERY),
        secrets=secrets, body=body_bytes, timestamp=int(time.time()),
    )
    settings = context.settings
    async with Sender(context.address_policy, timeout=settings.request_timeout,
                      body_limit=settings.response_body_limit) as sender:
        result = await sender.send(row["url"], body_bytes, headers)
    return {
        "object": "webhook_test",
        "webhook_id": webhook_id,
        "success": result.succeeded,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "response_body": result.response_body,
        "response_truncated": result.response_truncated,
        "error": result.error,
        "event": event_store.event_object({"body": body_bytes}),
    }
