"""Catalog of event types: each has a description, a JSON Schema of its `data` and an example.

Subscription patterns select event types: `*` for all of them, an exact type, or a prefix
wildcard such as `generation.*` or `model.training.*`.
"""

from ._patterns import is_valid_pattern, matches
from ._registry import EVENT_TYPES, EventType

__all__ = ["EVENT_TYPES", "EventType", "is_valid_pattern", "matches"]
