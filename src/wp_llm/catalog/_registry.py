"""Event types loaded once, at import, from the JSON files shipped in `types/`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from types import MappingProxyType
from typing import Any

_PACKAGE = "wp_llm.catalog"

# Catalog order, which lists and documentation follow. Each name has a `types/<name>.json`.
_EVENT_TYPE_NAMES = (
    "generation.started",
    "generation.completed",
    "generation.failed",
    "analysis.completed",
    "analysis.failed",
    "model.training.started",
    "model.training.completed",
    "model.training.failed",
    "usage.limit_exceeded",
    "usage.quota_exceeded",
    "usage.warning",
    "system.maintenance",
    "system.update",
    "webhook.disabled",
)


@dataclass(frozen=True)
class EventType:
    """One catalog entry. Treat `schema` and `example` as read-only, and copy to change them."""

    type: str
    description: str
    schema: Mapping[str, Any] = field(repr=False, hash=False)
    example: Mapping[str, Any] = field(repr=False, hash=False)


def _load(name: str) -> EventType:
    document = json.loads(files(_PACKAGE).joinpath("types", f"{name}.json").read_text("utf-8"))
    if document["type"] != name:
        raise RuntimeError(f"catalog file {name}.json describes type {document['type']!r}")
    return EventType(
        type=name,
        description=document["description"],
        schema=document["schema"],
        example=document["example"],
    )


EVENT_TYPES: Mapping[str, EventType] = MappingProxyType(
    {name: _load(name) for name in _EVENT_TYPE_NAMES}
)
