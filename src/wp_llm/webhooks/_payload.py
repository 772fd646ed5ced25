"""Reading the raw request body and parsing it into a typed event."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pydantic import ValidationError

from wp_llm.webhooks._signature_headers import quote
from wp_llm.webhooks.errors import InvalidPayloadError
from wp_llm.webhooks.events import EVENT_TYPES, Event

__all__ = ["BodyInput", "parse_event", "raw_body"]

BodyInput = bytes | bytearray | memoryview | str


def raw_body(body: object) -> bytes:
    """Return the body as bytes; a str is encoded as UTF-8.

    Raises TypeError for a parsed body (dict, list, ...) because the signature covers
    the exact bytes sent, which re-serializing does not reproduce.
    """
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return _encode_text_body(body)
    raise TypeError(
        f"the body must be the raw request body as bytes or str, got {type(body).__name__}; "
        "pass the bytes the framework received (Flask: request.get_data(), FastAPI: "
        "await request.body(), Django: request.body), not the parsed JSON"
    )


def _encode_text_body(body: str) -> bytes:
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPayloadError(
            f"the body str has an unpaired surrogate at index {exc.start}, so it cannot be the "
            "text of a UTF-8 request body; pass the raw body bytes instead"
        ) from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _decode_json(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayloadError(
            f"the body is not valid UTF-8 (invalid byte at offset {exc.start})"
        ) from None

    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidPayloadError("the body is JSON nested too deeply to parse") from None
    except ValueError as exc:
        raise InvalidPayloadError(f"the body is not valid JSON: {exc}") from None


def parse_event(raw: bytes) -> Event[Any]:
    """Parse a verified body into the event model of its type, or `Event` for an unknown type."""
    payload = _decode_json(raw)
    if not isinstance(payload, dict):
        raise InvalidPayloadError(
            f"the body is a JSON {type(payload).__name__}; expected an object, the event envelope"
        )

    event_type = payload.get("type")
    model: type[Event[Any]] = Event[dict[str, Any]]
    if isinstance(event_type, str) and event_type in EVENT_TYPES:
        model = EVENT_TYPES[event_type]

    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        _raise_for_validation(exc, payload)


def _raise_for_validation(exc: ValidationError, payload: dict[str, Any]) -> NoReturn:
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    event_id = payload.get("id")
    described = f"event {quote(event_id)}" if isinstance(event_id, str) else "the event"
    event_type = payload.get("type")
    if isinstance(event_type, str):
        described += f" of type {quote(event_type)}"

    others = exc.error_count() - 1
    more = f" (and {others} more validation errors)" if others else ""
    raise InvalidPayloadError(
        f"{described} has an invalid field {field!r}: {first['msg']}{more}", field=field
    ) from None
