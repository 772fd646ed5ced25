"""`Webhook`: verify a delivery and parse its event, or sign one for tests."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from wp_llm import _signing
from wp_llm.webhooks._headers import HeadersInput, RequestHeaders
from wp_llm.webhooks._payload import BodyInput, parse_event, raw_body
from wp_llm.webhooks._signature_headers import (
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    HEX_SIGNATURE_HEADER,
    MESSAGE_ID_HEADER,
    STANDARD_HEADERS,
    STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ParsedSignatures,
    parse_hex_signatures,
    parse_message_id,
    parse_standard_signatures,
    parse_timestamp,
    quote,
)
from wp_llm.webhooks.errors import (
    InvalidPayloadError,
    MalformedHeaderError,
    MissingHeaderError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
)
from wp_llm.webhooks.events import Event

__all__ = ["DEFAULT_TOLERANCE", "Webhook"]

# The Standard Webhooks default: long enough for clock skew and slow networks, short
# enough that a captured request cannot be replayed later.
DEFAULT_TOLERANCE = timedelta(minutes=5)
TEST_DELIVERY_ID = "dlv_test"


def _tolerance_seconds(tolerance: timedelta | float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, timedelta | int | float):
        raise TypeError(f"tolerance must be a timedelta or seconds, got {type(tolerance).__name__}")

    seconds = tolerance.total_seconds() if isinstance(tolerance, timedelta) else float(tolerance)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"tolerance must be a positive, finite duration, got {tolerance!r}")
    return seconds


def _keys_from_secrets(secrets: str | Iterable[str]) -> list[bytes]:
    if isinstance(secrets, bytes | bytearray):
        raise TypeError("pass the webhook secret as a str, not bytes")
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not candidates:
        raise ValueError("no webhook secret given; pass at least one")

    keys: list[bytes] = []
    for secret in candidates:
        if not isinstance(secret, str):
            raise TypeError(f"each webhook secret must be a str, got {type(secret).__name__}")
        if secret != secret.strip():
            raise ValueError(
                "the webhook secret has leading or trailing whitespace, often a newline "
                "read from a file or an environment variable; strip it before passing it"
            )
        keys.append(_signing.key_from_secret(secret))
    return list(dict.fromkeys(keys))


class Webhook:
    """Verifier of signed deliveries for one endpoint, with one or more active secrets.

    Pass several secrets while rotating: a signature made with any of them passes.
    Each secret may be raw, exactly as the service shows it, or in the `whsec_<base64>`
    form of Standard Webhooks. `tolerance` bounds how far `webhook-timestamp` may lie
    from the local clock in either direction. With `accept_hex_only=False`, a request
    without the Standard Webhooks headers is rejected rather than checked against
    `X-WP-LLM-Signature`, whose signature has no timestamp and so no replay protection.
    """

    def __init__(
        self,
        secret: str | Iterable[str],
        *,
        tolerance: timedelta | float = DEFAULT_TOLERANCE,
        accept_hex_only: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = _keys_from_secrets(secret)
        self._tolerance = _tolerance_seconds(tolerance)
        self._accept_hex_only = accept_hex_only
        self._clock = clock

    def __repr__(self) -> str:
        return f"Webhook(<{len(self._keys)} secret(s)>, tolerance={self._tolerance:g}s)"

    def verify(self, body: BodyInput, headers: HeadersInput) -> Event[Any]:
        """Verify a delivery's signature and return its typed event.

        `body` is the raw request body: bytes, bytearray, memoryview, or str (encoded
        as UTF-8). When any `webhook-*` header is present, the Standard Webhooks
        signature and timestamp are checked. Otherwise `X-WP-LLM-Signature` is.
        Raises a `SignatureVerificationError` subclass for any bad input, and
        TypeError when `body` is not raw (a parsed dict, for one).
        """
        raw = raw_body(body)
        request_headers = RequestHeaders(headers)

        if any(name in request_headers for name in STANDARD_HEADERS):
            message_id = self._verify_standard(raw, request_headers)
        else:
            self._verify_hex(raw, request_headers)
            message_id = None

        event = parse_event(raw)
        if message_id is not None and message_id != event.id:
            raise InvalidPayloadError(
                f"{MESSAGE_ID_HEADER} {quote(message_id)} differs from the event id "
                f"{quote(event.id)} in the body; the service sends the event id in both",
                field="id",
            )
        return event

    def _verify_standard(self, raw: bytes, headers: RequestHeaders) -> str:
        message_id = parse_message_id(_single_header(headers, MESSAGE_ID_HEADER))
        timestamp = parse_timestamp(_single_header(headers, TIMESTAMP_HEADER))
        # Repeated webhook-signature headers are joined, as HTTP allows for lists.
        signature_value = " ".join(headers.get_all(STANDARD_SIGNATURE_HEADER)).strip()
        if not signature_value:
            raise _missing(STANDARD_SIGNATURE_HEADER)

        parsed = parse_standard_signatures(signature_value)
        expected = (
            _signing.hmac_sha256(key, _signing.standard_message(message_id, timestamp, raw))
            for key in self._keys
        )
        self._check_digests(parsed, expected, STANDARD_SIGNATURE_HEADER, message_id)
        self._check_timestamp(timestamp, message_id)
        return message_id

    def _verify_hex(self, raw: bytes, headers: RequestHeaders) -> None:
        if not self._accept_hex_only:
            raise MissingHeaderError(
                f"the request has no Standard Webhooks headers ({', '.join(STANDARD_HEADERS)}) "
                "and this Webhook was built with accept_hex_only=False",
                header=STANDARD_SIGNATURE_HEADER,
            )
        if HEX_SIGNATURE_HEADER not in headers:
            raise MissingHeaderError(
                "the request has no signature header; expected "
                f"{STANDARD_SIGNATURE_HEADER} with {MESSAGE_ID_HEADER} and {TIMESTAMP_HEADER}, "
                f"or {HEX_SIGNATURE_HEADER}",
                header=STANDARD_SIGNATURE_HEADER,
            )

        parsed = parse_hex_signatures(_single_header(headers, HEX_SIGNATURE_HEADER))
        expected = (_signing.hmac_sha256(key, raw) for key in self._keys)
        self._check_digests(parsed, expected, HEX_SIGNATURE_HEADER, None)

    def _check_digests(
        self,
        parsed: ParsedSignatures,
        expected: Iterable[bytes],
        header: str,
        message_id: str | None,
    ) -> None:
        if parsed.digests and _signing.any_digest_matches(expected, parsed.digests):
            return
        if parsed.problem is not None:
            raise parsed.problem

        about = f" for {MESSAGE_ID_HEADER} {quote(message_id)}" if message_id else ""
        raise SignatureMismatchError(
            f"no signature in {header}{about} matches the body under any configured "
            "secret; check that the secret is this endpoint's and that the body is passed "
            "exactly as received"
        )

    def _check_timestamp(self, timestamp: int, message_id: str) -> None:
        offset = self._clock() - timestamp
        if abs(offset) <= self._tolerance:
            return

        direction = "old" if offset > 0 else "in the future"
        raise TimestampOutsideToleranceError(
            f"{TIMESTAMP_HEADER} of {quote(message_id)} is {abs(offset):.0f} s {direction}, "
            f"beyond the tolerance of {self._tolerance:g} s. Either the request is a replay "
            "or this server's clock is wrong, so check that it syncs with NTP",
            timestamp=timestamp,
        )

    def sign(
        self,
        body: BodyInput,
        *,
        timestamp: int | None = None,
        event_id: str | None = None,
        delivery_id: str = TEST_DELIVERY_ID,
    ) -> dict[str, str]:
        """Build the headers the service would send with `body`, for tests of a receiver.

        The event id and type are read from the body unless `event_id` is given.
        `timestamp` defaults to now. `X-WP-LLM-Signature` uses the first secret, and
        `webhook-signature` carries one signature per secret, as during rotation.
        """
        raw = raw_body(body)
        envelope = _read_envelope(raw)
        message_id = event_id if event_id is not None else _envelope_id(envelope)
        signed_at = int(self._clock()) if timestamp is None else timestamp

        headers = {
            "Content-Type": "application/json",
            HEX_SIGNATURE_HEADER: _signing.hex_signature(self._keys[0], raw),
            DELIVERY_ID_HEADER: delivery_id,
            MESSAGE_ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(signed_at),
            STANDARD_SIGNATURE_HEADER: " ".join(
                _signing.standard_signature(key, message_id, signed_at, raw) for key in self._keys
            ),
        }
        if isinstance(envelope.get("type"), str):
            headers[EVENT_TYPE_HEADER] = envelope["type"]
        return headers


def _single_header(headers: RequestHeaders, name: str) -> str:
    values = [value for value in headers.get_all(name) if value]
    if not values:
        raise _missing(name)
    if len(set(values)) > 1:
        raise MalformedHeaderError(
            f"{name} was sent {len(values)} times with different values; expected it once",
            header=name,
        )
    return values[0]


def _missing(name: str) -> MissingHeaderError:
    return MissingHeaderError(f"the {name} header is missing or empty", header=name)


def _read_envelope(raw: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return envelope if isinstance(envelope, dict) else {}


def _envelope_id(envelope: dict[str, Any]) -> str:
    event_id = envelope.get("id")
    if not isinstance(event_id, str):
        raise ValueError("the body has no string 'id' field; pass event_id= to sign it")
    return event_id
