"""`/v1/event_types`: the catalog, each type with its JSON Schema and an example payload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from wp_llm import catalog
from wp_llm.server.api.strict_query import StrictQueryRoute

router = APIRouter(prefix="/v1/event_types", tags=["event types"], route_class=StrictQueryRoute)


def event_type_object(entry: catalog.EventType) -> dict[str, Any]:
    return {
        "object": "event_type",
        "type": entry.type,
        "description": entry.description,
        "schema": entry.schema,
        "example": entry.example,
    }


@router.get("", summary="List the event types")
def list_event_types() -> dict[str, Any]:
    items = [event_type_object(entry) for entry in catalog.EVENT_TYPES.values()]
    return {"object": "list", "data": items, "has_more": False}
