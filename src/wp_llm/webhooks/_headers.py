"""Case-insensitive lookup of request headers given in any common container."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias

__all__ = ["HeadersInput", "RequestHeaders"]

# A dict or other Mapping, a list of (name, value) pairs, or a framework's header
# object: werkzeug `Headers`, Starlette `Headers`, Django `HttpHeaders`, httpx `Headers`.
# Names and values may be str, or bytes as in raw ASGI headers.
HeadersInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]] | Any


def _as_text(value: object, part: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        # HTTP header bytes outside ASCII are decoded as ISO-8859-1, as WSGI and ASGI do.
        return bytes(value).decode("latin-1")
    raise TypeError(f"header {part} must be str or bytes, got {type(value).__name__}")


def _pairs(headers: object) -> Iterable[Any]:
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        # httpx.Headers.items() joins repeated headers with commas; multi_items() does not.
        return multi_items()  # type: ignore[no-any-return]

    items = getattr(headers, "items", None)
    if callable(items):
        return items()  # type: ignore[no-any-return]

    if isinstance(headers, str | bytes | bytearray) or not isinstance(headers, Iterable):
        raise TypeError(
            "headers must be a mapping, a list of (name, value) pairs or a framework's "
            f"header object, got {type(headers).__name__}"
        )
    return headers


class RequestHeaders:
    """Request headers indexed by lower-case name, keeping every value of a repeated header."""

    def __init__(self, headers: HeadersInput) -> None:
        self._values: dict[str, list[str]] = {}
        for pair in _pairs(headers):
            name, value = self._split_pair(pair)
            self._values.setdefault(name.lower(), []).append(value.strip())

    @staticmethod
    def _split_pair(pair: object) -> tuple[str, str]:
        if isinstance(pair, str | bytes) or not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"each header must be a (name, value) pair, got {type(pair).__name__}")
        return _as_text(pair[0], "name"), _as_text(pair[1], "value")

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values

    def items(self) -> Iterator[tuple[str, str]]:
        """Yield every (lower-case name, value) pair, so a RequestHeaders is valid input again."""
        for name, values in self._values.items():
            for value in values:
                yield name, value

    def get_all(self, name: str) -> list[str]:
        """Return every value sent for a header, in order, or an empty list."""
        return self._values.get(name.lower(), [])
