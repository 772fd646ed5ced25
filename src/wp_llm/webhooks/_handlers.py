"""Handlers registered by event type pattern: an exact type, `prefix.*` or `*`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wp_llm.webhooks.events import EVENT_TYPES, Event

__all__ = ["Handler", "HandlerRegistry", "validate_pattern"]

# A handler takes the event and returns nothing, or an awaitable if it is async.
Handler = Callable[[Any], object]

_EVENT_TYPE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")


def _closest_type(name: str) -> str:
    matches = difflib.get_close_matches(name, EVENT_TYPES, n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def validate_pattern(pattern: str, *, allow_unknown_type: bool) -> None:
    """Raise ValueError unless the pattern is `*`, `prefix.*` or an event type.

    Unless `allow_unknown_type` is true, the pattern must also match a catalog type,
    so that a typo does not leave a handler that never runs.
    """
    if pattern == "*":
        return

    prefix = pattern.removesuffix(".*")
    if not _EVENT_TYPE.fullmatch(prefix):
        raise ValueError(
            f"invalid event type pattern {pattern!r}; expected a type such as "
            "'generation.completed', a prefix wildcard such as 'generation.*', or '*'"
        )
    if allow_unknown_type or _matches_catalog(pattern):
        return
    raise ValueError(
        f"{pattern!r} matches no event type of the catalog{_closest_type(prefix)}; "
        "pass allow_unknown_type=True to register it anyway"
    )


def _matches_catalog(pattern: str) -> bool:
    return any(pattern_matches(pattern, event_type) for event_type in EVENT_TYPES)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Check whether an event type falls under a pattern.

    A prefix wildcard covers every level below it: `model.*` matches `model.training.started`.
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(frozen=True)
class _Registration:
    pattern: str
    handler: Handler


class HandlerRegistry:
    """Handlers in the order they were registered."""

    def __init__(self) -> None:
        self._registrations: list[_Registration] = []

    def add(self, pattern: str, handler: Handler) -> None:
        self._registrations.append(_Registration(pattern, handler))

    def handlers_for(self, event: Event[Any]) -> list[Handler]:
        """Return every handler whose pattern matches the event's type, in registration order."""
        return [
            registration.handler
            for registration in self._registrations
            if pattern_matches(registration.pattern, event.type)
        ]
