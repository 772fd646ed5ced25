"""`/v1/stats`: the account's delivery success rate and latency, hour by hour."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from wp_llm.server.api.context import ServiceContext, get_context, require_account
from wp_llm.server.api.strict_query import StrictQueryRoute
from wp_llm.server.store.accounts import Principal
from wp_llm.server.store.stats import MAX_WINDOW_HOURS, delivery_stats

router = APIRouter(prefix="/v1/stats", tags=["stats"], route_class=StrictQueryRoute)


@router.get("", summary="Delivery statistics of the last hours")
def get_stats(
    hours: int = Query(24, ge=1, le=MAX_WINDOW_HOURS, description="Window length in hours."),
    principal: Principal = Depends(require_account),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    return delivery_stats(context.engine, principal.account_id or "", hours)
