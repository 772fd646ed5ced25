"""Values that parse as JSON but that the service could not store or deliver faithfully.

- NUL characters: PostgreSQL text columns cannot hold them.
- Unpaired UTF-16 surrogates (`"\\ud83d"` alone): not Unicode text, so they cannot be
  encoded as UTF-8 for storage, responses or receivers.
- Integers beyond ±(2**53 - 1): JavaScript's JSON.parse rounds them, so the body bytes
  (what JSON.stringify prints) would carry a different number than was published.
- NaN and infinities, which Python's parser takes: JSON has no token for them.
- Nesting deeper than the envelope's serializer allows, once the envelope wraps the value.
"""

from __future__ import annotations

import math
from typing import Any

from wp_llm import _jsjson

MAX_SAFE_INTEGER = 2**53 - 1
# Arrays and objects inside one another, counting the value itself. The event envelope
# adds one level around event data, and the serializer allows MAX_NESTING_DEPTH in all.
MAX_DEPTH = _jsjson.MAX_NESTING_DEPTH - 1
_SURROGATES = range(0xD800, 0xE000)


class UnstorableValueError(ValueError):
    """A request value the service cannot store or deliver unchanged; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if any(ord(character) in _SURROGATES for character in text):
        return "contains an unpaired UTF-16 surrogate; send valid Unicode text"
    return None


def _check_string(text: str, field: str) -> None:
    # The scan only runs when the fast UTF-8 encoding fails or a NUL is present.
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return
        except UnicodeEncodeError:
            pass
    problem = _string_problem(text)
    if problem is not None:
        raise UnstorableValueError(field, problem)


def _check_key(key: str, field: str) -> None:
    """Raise for an object key under `field` that cannot be stored, naming it escaped.

    The key cannot go into the error as it is, because a NUL or a lone surrogate in it
    is what makes it unstorable. Those characters, other control characters and
    backslashes are written as JSON escapes (`a\\u0000b`), and everything else as sent.
    """
    try:
        _check_string(key, field)
    except UnstorableValueError as error:
        raise UnstorableValueError(
            f"{field}.{_escaped(key)}", f"is a key that {error.reason}"
        ) from None


def _escaped(text: str) -> str:
    parts = []
    for character in text:
        code = ord(character)
        if character == "\\":
            parts.append("\\\\")
        elif code < 0x20 or code in _SURROGATES:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(character)
    return "".join(parts)


def check_value(value: Any, field: str, depth: int = 0) -> None:
    """Raise UnstorableValueError for the first value under `field` that cannot be kept as sent.

    `depth` counts the arrays and objects that contain `value`.
    """
    if isinstance(value, str):
        _check_string(value, field)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnstorableValueError(
                field, "is NaN or infinite, which JSON cannot represent; send a finite number"
            )
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise UnstorableValueError(
                field,
                f"is an integer beyond ±{MAX_SAFE_INTEGER}, which JavaScript receivers would "
                "read as a different number; send it as a string",
            )
    elif isinstance(value, dict | list | tuple):
        _check_container(value, field, depth + 1)


def _check_container(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...], field: str, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise UnstorableValueError(
            field, f"nests arrays and objects more than {MAX_DEPTH} levels deep; flatten it"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_key(str(key), field)
            check_value(item, f"{field}.{key}", depth)
    else:
        for index, item in enumerate(value):
            check_value(item, f"{field}[{index}]", depth)
