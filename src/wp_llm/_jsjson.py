"""JSON text exactly as ECMAScript `JSON.stringify(JSON.parse(text))` prints it.

Delivery bodies are signed over their bytes, and a receiver written in JavaScript may
re-serialize the parsed body before it checks the signature. Serializing every body in
JavaScript's canonical form keeps both byte strings equal:

- compact, with non-ASCII characters written as UTF-8 and lone surrogates as `\\udxxx`;
- numbers formatted by Number::toString of the IEEE double, so `1.0` becomes `1` and
  integers beyond 2**53 lose precision as they do in JavaScript;
- object keys that are array indices ("0" to "4294967294") first, in ascending numeric
  order, then the other keys in insertion order.

Pure functions with no I/O.
"""

from __future__ import annotations

import json
import math
import re
from json.encoder import encode_basestring
from typing import Any

__all__ = ["MAX_NESTING_DEPTH", "dumps", "parse"]

# Integers up to 2**53 in magnitude are exact doubles and print the same in Python and
# JavaScript. Larger ones go through float rounding.
_MAX_EXACT_INTEGER = 2**53
_MAX_ARRAY_INDEX = 2**32 - 2
_ALWAYS_FINITE_INTEGER_DIGITS = 308
_MAX_QUOTED_TOKEN_CHARS = 24

# JavaScript switches to exponent notation outside these decimal point positions.
_MAX_PLAIN_POINT = 21
_MIN_PLAIN_POINT = -6

# Nesting limit of `dumps`, kept well inside Python's default recursion limit of 1000
# frames because the encoder recurses through three frames per level.
MAX_NESTING_DEPTH = 200

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: object) -> bytes:
    """Serialize a JSON value to the UTF-8 bytes that `JSON.stringify` prints for it.

    `value` is built from dict, list, tuple, str, int, float, bool and None, as
    `json.loads` returns them. Raises ValueError for NaN, infinities, integers beyond
    the double range and nesting deeper than MAX_NESTING_DEPTH, and TypeError for other
    types.
    """
    try:
        text = _encode(value, 0)
    except RecursionError:
        raise ValueError("cannot serialize JSON: value is nested too deeply") from None
    return _encode_utf8(text)


def parse(text: bytes | str) -> Any:
    """Parse JSON text, rejecting what JavaScript's `JSON.parse` would not return.

    Bytes must be UTF-8. The NaN, Infinity and -Infinity tokens that `json.loads` takes
    by default raise ValueError, and so do numbers beyond the double range, which
    `JSON.parse` would turn into an infinity that `JSON.stringify` prints as null.
    """
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")

    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def _reject_constant(token: str) -> float:
    raise ValueError(f"invalid JSON: {token} is not a JSON number")


def _parse_float(token: str) -> float:
    number = float(token)
    if math.isinf(number):
        raise ValueError(f"invalid JSON: number {_abbreviate(token)} is out of the double range")
    return number


def _abbreviate(token: str) -> str:
    if len(token) <= _MAX_QUOTED_TOKEN_CHARS:
        return token
    return f"{token[:_MAX_QUOTED_TOKEN_CHARS]}... ({len(token)} characters)"


def _parse_int(token: str) -> int:
    # Every integer of up to 308 digits is below the largest double, about 1.8e308.
    if len(token) > _ALWAYS_FINITE_INTEGER_DIGITS:
        _parse_float(token)
    return int(token)


def _encode(value: object, depth: int) -> str:
    # Exact type checks first because they are the fast path for what json.loads returns.
    if type(value) is str:
        return encode_basestring(value)
    if type(value) is dict:
        return _encode_object(value, depth + 1)
    if type(value) is list:
        return _encode_array(value, depth + 1)
    if type(value) is int and -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER:
        return int.__repr__(value)
    return _encode_other(value, depth)


def _encode_other(value: object, depth: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return _format_number(value)
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, dict):
        return _encode_object(value, depth + 1)
    if isinstance(value, list | tuple):
        return _encode_array(value, depth + 1)
    raise TypeError(f"cannot serialize JSON: unsupported type {type(value).__name__}")


def _encode_object(value: dict[Any, Any], depth: int) -> str:
    _check_depth(depth)
    if not value:
        return "{}"

    # Array indices start with a digit, and digits sort below ":". Keys that are not
    # all strings fail the comparison, and `_ordered_items` converts them.
    try:
        in_order = min(value) >= ":"
    except TypeError:
        in_order = False
    items = value.items() if in_order else _ordered_items(value)
    return "{" + ",".join([encode_basestring(k) + ":" + _encode(v, depth) for k, v in items]) + "}"


def _encode_array(value: list[Any] | tuple[Any, ...], depth: int) -> str:
    _check_depth(depth)
    return "[" + ",".join([_encode(item, depth) for item in value]) + "]"


def _check_depth(depth: int) -> None:
    if depth > MAX_NESTING_DEPTH:
        raise ValueError(
            f"cannot serialize JSON: nesting exceeds the maximum depth of {MAX_NESTING_DEPTH}"
        )


def _ordered_items(value: dict[Any, Any]) -> list[tuple[str, Any]]:
    """Return the items in JavaScript's property order: array indices first, ascending."""
    items = [(_key_text(key), item) for key, item in value.items()]
    indexed = [(int(key), key, item) for key, item in items if _is_array_index(key)]
    if not indexed:
        return items

    indexed.sort(key=lambda entry: entry[0])
    others = [(key, item) for key, item in items if not _is_array_index(key)]
    return [(key, item) for _, key, item in indexed] + others


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def _key_text(key: object) -> str:
    """Convert an int, float, bool or None key to text as `json.dumps` does."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int | float):
        return json.dumps(key, allow_nan=False)
    raise TypeError(f"cannot serialize JSON: unsupported key type {type(key).__name__}")


def _format_number(value: int | float) -> str:
    """Format a number as JavaScript's Number::toString prints the nearest double."""
    if isinstance(value, int) and -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER:
        return int.__repr__(value)

    try:
        number = float(value)
    except OverflowError:
        raise ValueError("cannot serialize JSON: integer is out of the double range") from None
    if not math.isfinite(number):
        raise ValueError(f"cannot serialize JSON: {number!r} is not a JSON number")

    # Integral doubles below 2**53 print as their digits, and this covers -0.0 as "0".
    if number.is_integer() and abs(number) <= _MAX_EXACT_INTEGER:
        return int.__repr__(int(number))
    return _format_double(number)


def _format_double(number: float) -> str:
    """Format a finite, nonzero double from the shortest round-trip digits of `repr`."""
    text = float.__repr__(number)
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")

    # Normalize to value = 0.<digits> * 10**point, with no leading or trailing zeros.
    digits = whole + fraction
    point = len(whole) + int(exponent or "0")
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    return sign + _place_decimal_point(significant.rstrip("0"), point)


def _place_decimal_point(digits: str, point: int) -> str:
    """Write `0.<digits> * 10**point` as ECMAScript Number::toString steps 6 to 10 do."""
    count = len(digits)
    if count <= point <= _MAX_PLAIN_POINT:
        return digits + "0" * (point - count)
    if 0 < point <= _MAX_PLAIN_POINT:
        return digits[:point] + "." + digits[point:]
    if _MIN_PLAIN_POINT < point <= 0:
        return "0." + "0" * -point + digits

    exponent = point - 1
    exponent_sign = "+" if exponent >= 0 else "-"
    mantissa = digits if count == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{exponent_sign}{abs(exponent)}"


def _encode_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _escape_lone_surrogates(text).encode("utf-8")


def _escape_lone_surrogates(text: str) -> str:
    """Join surrogate pairs into characters and escape the rest as `JSON.stringify` does."""
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", joined)
