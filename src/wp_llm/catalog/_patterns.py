"""Subscription patterns: `*`, an exact event type, or a prefix wildcard such as `model.*`."""

from __future__ import annotations

from ._registry import EVENT_TYPES

_WILDCARD = "*"
_PREFIX_WILDCARD_SUFFIX = ".*"


def _prefix_wildcards(event_type: str) -> set[str]:
    """Return the prefix wildcards that cover one type: `model.*` and `model.training.*`."""
    segments = event_type.split(".")
    return {".".join(segments[:end]) + _PREFIX_WILDCARD_SUFFIX for end in range(1, len(segments))}


_VALID_PATTERNS = frozenset(
    {_WILDCARD, *EVENT_TYPES}.union(*(_prefix_wildcards(name) for name in EVENT_TYPES))
)


def is_valid_pattern(pattern: str) -> bool:
    """Check that a pattern is `*`, a catalog type, or a prefix wildcard that covers one.

    Prefixes end at a dot, so `model.training.*` is valid and `model.train.*` is not.
    """
    return pattern in _VALID_PATTERNS


def matches(pattern: str, event_type: str) -> bool:
    """Check whether a subscription pattern selects an event type.

    Pure string matching: validate the pattern with `is_valid_pattern` when it is stored.
    """
    if pattern == _WILDCARD:
        return True
    if pattern.endswith(_PREFIX_WILDCARD_SUFFIX):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type
