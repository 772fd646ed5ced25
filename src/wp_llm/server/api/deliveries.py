"""`/v1/deliveries`: the delivery log, and redelivery on request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from wp_llm.server.api.context import ServiceContext, get_context, require_account
from wp_llm.server.api.params import PageParams, page_params
from wp_llm.server.api.resources import delivery_object, list_object
from wp_llm.server.api.strict_query import StrictQueryRoute
from wp_llm.server.store import deliveries as delivery_store
from wp_llm.server.store.accounts import Principal

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], route_class=StrictQueryRoute)


@router.get("", summary="List deliveries")
def list_deliveries(
    webhook_id: str | None = Query(None),
    event_id: str | None = Query(None),
    status: delivery_store.DeliveryStatus | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    result = delivery_store.list_deliveries(
        context.engine,
        principal.account_id or "",
        webhook_id=webhook_id,
        event_id=event_id,
        status=status,
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return list_object([delivery_object(r) for r in result.rows], result)


@router.get("/{delivery_id}", summary="Retrieve a delivery with its attempts")
def retrieve_delivery(
    delivery_id: str,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    return delivery_object(
        delivery_store.get_delivery(context.engine, principal.account_id or "", delivery_id)
    )


@router.post("/{delivery_id}/retry", status_code=202, summary="Redeliver now")
def retry_delivery(
    delivery_id: str,
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    row = delivery_store.retry_delivery(context.engine, principal.account_id or "", delivery_id)
    context.notify_workers()
    return delivery_object(row)
