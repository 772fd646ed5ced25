"""`/v1/webhooks`: register, list, read, update, delete, test, rotate and replay endpoints."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from wp_llm import catalog
from wp_llm._signing import standard_secret
from wp_llm.server import ids
from wp_llm.server.api.context import ServiceContext, get_context, require_account
from wp_llm.server.api.models import (
    SecretRotation,
    WebhookCreate,
    WebhookReplay,
    WebhookTest,
    WebhookUpdate,
)
from wp_llm.server.api.params import PageParams, page_params
from wp_llm.server.api.resources import delivery_object, list_object, webhook_object
from wp_llm.server.api.strict_query import StrictQueryRoute
from wp_llm.server.config import Settings
from wp_llm.server.engine.netguard import BlockedURLError, check_url
from wp_llm.server.engine.sender import Sender, delivery_headers
from wp_llm.server.errors import InvalidRequest
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store import events as event_store
from wp_llm.server.store import webhooks as webhook_store
from wp_llm.server.store.accounts import Principal
from wp_llm.server.store.replay import ReplayFilter, replay_deliveries

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictQueryRoute)

DEFAULT_GRACE_PERIOD_SECONDS = 24 * 3600.0


def checked_url(url: str, context: ServiceContext) -> str:
    try:
        return check_url(url, context.address_policy)
    except BlockedURLError as error:
        raise InvalidRequest(str(error), code=error.code, details={"field": "url"}) from None


def checked_patterns(patterns: list[str], field: str = "events") -> list[str]:
    """Reject unknown types, listing the valid ones; drop repeats but keep the order."""
    for index, pattern in enumerate(patterns):
        if not catalog.is_valid_pattern(pattern):
            valid = list(catalog.EVENT_TYPES)
            raise InvalidRequest(
                f"Unknown event type {pattern[:100]!r}: use one of the catalog types, "
                "a prefix wildcard such as 'generation.*', or '*'.",
                code="unknown_event_type",
                details={"field": f"{field}[{index}]", "value": pattern[:100], "valid": valid},
            )
    return list(dict.fromkeys(patterns))


def _above_cap(field: str, value: float, cap: float, setting: str) -> InvalidRequest:
    return InvalidRequest(
        f"{field} is {value:g}, above this service's maximum of {cap:g}; "
        f"use at most {cap:g} (the operator sets the maximum with {setting}).",
        code="value_above_maximum",
        details={"field": field, "value": value, "maximum": cap},
    )


def checked_delivery_settings(changes: Mapping[str, Any], settings: Settings) -> None:
    """Reject per-endpoint settings beyond the operator's caps, naming the field and the cap."""
    caps = (
        ("rate_limit", settings.max_endpoint_rate_limit, "WP_LLM_MAX_ENDPOINT_RATE_LIMIT"),
        ("max_concurrency", settings.max_endpoint_concurrency, "WP_LLM_MAX_ENDPOINT_CONCURRENCY"),
        ("timeout", settings.max_endpoint_timeout, "WP_LLM_MAX_ENDPOINT_TIMEOUT"),
    )
    for field, cap, setting in caps:
        value = changes.get(field)
        if value is not None and value > cap:
            raise _above_cap(field, value, cap, setting)
    schedule = changes.get("retry_schedule")
    if schedule is not None:
        _check_schedule(list(schedule), settings)


def _check_schedule(schedule: list[float], settings: Settings) -> None:
    if len(schedule) > settings.max_retry_attempts:
        raise InvalidRequest(
            f"retry_schedule lists {len(schedule)} retries, above this service's maximum of "
            f"{settings.max_retry_attempts} (the operator sets it with WP_LLM_MAX_RETRY_ATTEMPTS).",
            code="value_above_maximum",
            details={"field": "retry_schedule", "maximum": settings.max_retry_attempts},
        )
    for index, delay in enumerate(schedule):
        if delay > settings.max_retry_delay:
            field = f"retry_schedule[{index}]"
            raise _above_cap(field, delay, settings.max_retry_delay, "WP_LLM_MAX_RETRY_DELAY")
    if sum(schedule) > settings.max_retry_window:
        total = sum(schedule)
        raise _above_cap(
            "retry_schedule", total, settings.max_retry_window, "WP_LLM_MAX_RETRY_WINDOW"
        )


@router.post("", status_code=201, summary="Create a webhook")
def create_webhook(
    body: WebhookCreate,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    secret = body.secret or ids.new_webhook_secret()
    delivery_settings = body.model_dump(include=set(webhook_store.DELIVERY_SETTINGS))
    checked_delivery_settings(delivery_settings, context.settings)
    row = webhook_store.create_webhook(
        context.engine,
        context.box,
        account_id=principal.account_id or "",
        url=checked_url(body.url, context),
        events=checked_patterns(body.events),
        description=body.description,
        secret=secret,
        delivery_settings=delivery_settings,
    )
    if not body.enabled:
        disabled = {"enabled": False}
        row = webhook_store.update_webhook(context.engine, row["account_id"], row["id"], disabled)
    # The secret is returned here and by rotation only; it is never readable again.
    return {
        **webhook_object(row),
        "secret": secret,
        "standard_webhooks_secret": standard_secret(secret),
    }


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
    row = webhook_store.get_webhook(context.engine, principal.account_id or "", webhook_id)
    return webhook_object(row)


def _update(
    webhook_id: str, body: WebhookUpdate, principal: Principal, context: ServiceContext
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "enabled"):
        if name in changes and changes[name] is None:
            raise InvalidRequest(f"{name} cannot be null.", details={"field": name})
    if "url" in changes:
        changes["url"] = checked_url(changes["url"], context)
    if "events" in changes:
        changes["events"] = checked_patterns(changes["events"])
    checked_delivery_settings(changes, context.settings)
    account_id = principal.account_id or ""
    row = webhook_store.update_webhook(context.engine, account_id, webhook_id, changes)
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
        raise InvalidRequest(
            f"A test needs an exact catalog event type, got {event_type[:100]!r}.",
            code="unknown_event_type",
            details={
                "field": "type",
                "value": event_type[:100],
                "valid": list(catalog.EVENT_TYPES),
            },
        )
    # Given fields win; the example fills the rest, so typed receivers can parse a test event.
    data = {**catalog.EVENT_TYPES[event_type].example, **(request.data or {})}

    account_id = principal.account_id or ""
    row = await run_in_threadpool(webhook_store.get_webhook, context.engine, account_id, webhook_id)
    event_id = ids.new_id(ids.EVENT)
    body_bytes = event_store.build_envelope(event_id, int(time.time()), event_type, data)
    secrets = webhook_store.active_secrets(context.box, row, ids.now_ms())
    headers = delivery_headers(
        event_id=event_id,
        event_type=event_type,
        delivery_id=ids.new_id(ids.DELIVERY),
        secrets=secrets,
        body=body_bytes,
        timestamp=int(time.time()),
    )
    settings = context.settings
    async with Sender(
        context.address_policy,
        timeout=settings.request_timeout,
        body_limit=settings.response_body_limit,
    ) as sender:
        result = await sender.send(row["url"], body_bytes, headers, timeout=row["timeout"])
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


@router.post("/{webhook_id}/rotate_secret", summary="Replace the signing secret")
def rotate_secret(
    webhook_id: str,
    body: SecretRotation | None = None,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Sign with a new secret from now on; the older ones also sign during the grace period."""
    request = body or SecretRotation()
    grace = DEFAULT_GRACE_PERIOD_SECONDS if request.grace_period is None else request.grace_period
    cap = context.settings.max_grace_period
    if grace > cap:
        raise _above_cap("grace_period", grace, cap, "WP_LLM_MAX_GRACE_PERIOD")

    secret = request.secret or ids.new_webhook_secret()
    row = webhook_store.rotate_secret(
        context.engine,
        context.box,
        account_id=principal.account_id or "",
        webhook_id=webhook_id,
        secret=secret,
        grace_ms=int(grace * 1000),
    )
    # As at creation, the new secret is returned here once and is never readable again.
    return {
        **webhook_object(row),
        "secret": secret,
        "standard_webhooks_secret": standard_secret(secret),
        "previous_secrets_expire_at": int(time.time() + grace) if grace else None,
    }


@router.post("/{webhook_id}/replay", summary="Send past deliveries again")
def replay_webhook(
    webhook_id: str,
    body: WebhookReplay,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Requeue the webhook's deliveries that match; in-flight ones are left alone."""
    until = body.until if body.until is not None else int(time.time()) + 1
    if until <= body.since:
        raise InvalidRequest(
            f"until ({until}) must be later than since ({body.since}).",
            details={"field": "until"},
        )
    event_types = None
    if body.event_types is not None:
        event_types = checked_patterns(body.event_types, field="event_types")
    chosen = ReplayFilter(body.since, until, body.status, event_types)

    count = replay_deliveries(
        context.engine, principal.account_id or "", webhook_id, chosen, dry_run=body.dry_run
    )
    if count and not body.dry_run:
        context.notify_workers()
    return {
        "object": "webhook_replay",
        "webhook_id": webhook_id,
        "dry_run": body.dry_run,
        "count": count,
    }
