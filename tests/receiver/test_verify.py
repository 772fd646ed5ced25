"""Webhook.verify on well-formed deliveries, and the checks it makes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from wp_llm import _signing
from wp_llm.webhooks import (
    Event,
    GenerationCompletedEvent,
    InvalidPayloadError,
    MalformedHeaderError,
    MalformedSignatureError,
    MalformedTimestampError,
    MissingHeaderError,
    SignatureMismatchError,
    SignatureVerificationError,
    TimestampOutsideToleranceError,
    Webhook,
)

from .samples import EVENT_ID, NOW, SECRET, body_of, envelope, event_body

BODY = event_body()


def standard_headers(
    body: bytes = BODY,
    *,
    secrets: tuple[str, ...] = (SECRET,),
    msg_id: str = EVENT_ID,
    timestamp: int = NOW,
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": _signing.sign_standard(secrets, msg_id, timestamp, body),
    }


def hex_headers(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {"X-WP-LLM-Signature": _signing.sign_hex(secret, body)}


def test_verify_standard_signature_returns_typed_event(webhook: Webhook) -> None:
    event = webhook.verify(BODY, standard_headers())

    assert isinstance(event, GenerationCompletedEvent)
    assert event.id == EVENT_ID
    assert event.data.usage.total_tokens == 52


def test_verify_hex_signature_alone_returns_event(webhook: Webhook) -> None:
    event = webhook.verify(BODY, hex_headers())

    assert isinstance(event, GenerationCompletedEvent)


def test_verify_ignores_bad_hex_when_standard_headers_present(webhook: Webhook) -> None:
    headers = standard_headers() | {"X-WP-LLM-Signature": "0" * 64}

    assert webhook.verify(BODY, headers).id == EVENT_ID


def test_verify_partial_standard_headers_no_downgrade(webhook: Webhook) -> None:
    # A stripped webhook-timestamp must not downgrade to the hex scheme, which has no
    # replay protection.
    headers = standard_headers() | hex_headers()
    del headers["webhook-timestamp"]

    with pytest.raises(MissingHeaderError) as caught:
        webhook.verify(BODY, headers)
    assert caught.value.header == "webhook-timestamp"


def test_verify_hex_only_rejected_when_disabled() -> None:
    webhook = Webhook(SECRET, accept_hex_only=False, clock=lambda: NOW)

    with pytest.raises(MissingHeaderError):
        webhook.verify(BODY, hex_headers())


@pytest.mark.parametrize(
    "body",
    [
        BODY,
        bytearray(BODY),
        memoryview(BODY),
        BODY.decode("utf-8"),
    ],
    ids=["bytes", "bytearray", "memoryview", "str"],
)
def test_verify_accepts_every_raw_body_type(webhook: Webhook, body: Any) -> None:
    assert webhook.verify(body, standard_headers()).id == EVENT_ID


def test_verify_non_ascii_str_body(webhook: Webhook) -> None:
    data = envelope()["data"] | {"prompt": "Écris un shortcode, s'il te plaît ✓ 日本"}
    body = event_body(data=data)

    event = webhook.verify(body.decode("utf-8"), standard_headers(body))

    assert event.data.prompt.endswith("日本")


@pytest.mark.parametrize("parsed", [envelope(), [envelope()], None, 42])
def test_verify_parsed_body_raises_type_error(webhook: Webhook, parsed: Any) -> None:
    with pytest.raises(TypeError, match="raw request body"):
        webhook.verify(parsed, standard_headers())


def test_verify_lone_surrogate_str_body_is_invalid_payload(webhook: Webhook) -> None:
    with pytest.raises(InvalidPayloadError):
        webhook.verify('{"id": "\ud800"}', hex_headers())


def test_verify_reserialized_body_fails(webhook: Webhook) -> None:
    reserialized = json.dumps(json.loads(BODY)).encode()

    with pytest.raises(SignatureMismatchError):
        webhook.verify(reserialized, standard_headers())


def _as_dict(headers: dict[str, str]) -> object:
    return headers


def _as_upper_dict(headers: dict[str, str]) -> object:
    return {name.upper(): value for name, value in headers.items()}


def _as_pairs(headers: dict[str, str]) -> object:
    return list(headers.items())


def _as_generator(headers: dict[str, str]) -> object:
    # A one-shot iterator: the headers must be read in a single pass.
    return ((name, value) for name, value in headers.items())


def _as_byte_pairs(headers: dict[str, str]) -> object:
    # Raw ASGI headers: lower-case byte names and byte values.
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def _as_werkzeug(headers: dict[str, str]) -> object:
    from werkzeug.datastructures import Headers

    return Headers(list(headers.items()))


def _as_starlette(headers: dict[str, str]) -> object:
    from starlette.datastructures import Headers

    return Headers(headers=headers)


def _as_httpx(headers: dict[str, str]) -> object:
    import httpx

    return httpx.Headers(headers)


def _as_django(headers: dict[str, str]) -> object:
    from django.http.request import HttpHeaders

    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return HttpHeaders(meta)


@pytest.mark.parametrize(
    "convert",
    [
        _as_dict,
        _as_upper_dict,
        _as_pairs,
        _as_generator,
        _as_byte_pairs,
        _as_werkzeug,
        _as_starlette,
        _as_httpx,
        _as_django,
    ],
)
def test_verify_accepts_every_headers_container(
    webhook: Webhook, convert: Callable[[dict[str, str]], object]
) -> None:
    assert webhook.verify(BODY, convert(standard_headers())).id == EVENT_ID


@pytest.mark.parametrize("headers", ["webhook-id: x", b"raw", 42, None])
def test_verify_headers_of_wrong_type_raise_type_error(webhook: Webhook, headers: Any) -> None:
    with pytest.raises(TypeError, match="headers"):
        webhook.verify(BODY, headers)


def test_verify_bad_header_pair_type_error(webhook: Webhook) -> None:
    with pytest.raises(TypeError, match="pair"):
        webhook.verify(BODY, [("webhook-id", EVENT_ID, "extra")])


def test_verify_rotation_accepts_signature_of_any_secret() -> None:
    webhook = Webhook(["old-secret", "new-secret"], clock=lambda: NOW)

    assert webhook.verify(BODY, standard_headers(secrets=("old-secret",))).id == EVENT_ID
    assert webhook.verify(BODY, standard_headers(secrets=("new-secret",))).id == EVENT_ID
    assert webhook.verify(BODY, hex_headers(secret="old-secret")).id == EVENT_ID


def test_verify_header_with_several_signatures_accepts_any_match(webhook: Webhook) -> None:
    headers = standard_headers(secrets=("retired-secret", SECRET))

    assert webhook.verify(BODY, headers).id == EVENT_ID


def test_verify_skips_unknown_versions_beside_v1(webhook: Webhook) -> None:
    headers = standard_headers()
    headers["webhook-signature"] = "v2,c2lnbmF0dXJl " + headers["webhook-signature"]

    assert webhook.verify(BODY, headers).id == EVENT_ID


def test_verify_skips_malformed_entry_beside_matching_one(webhook: Webhook) -> None:
    headers = standard_headers()
    headers["webhook-signature"] = "v1,not-base64! " + headers["webhook-signature"]

    assert webhook.verify(BODY, headers).id == EVENT_ID


def test_verify_repeated_signature_headers_are_joined(webhook: Webhook) -> None:
    headers = [("webhook-signature", "v1," + "A" * 43 + "="), *standard_headers().items()]

    assert webhook.verify(BODY, headers).id == EVENT_ID


def test_verify_conflicting_id_headers_malformed(webhook: Webhook) -> None:
    headers = list(standard_headers().items()) + [("webhook-id", "evt_other")]

    with pytest.raises(MalformedHeaderError) as caught:
        webhook.verify(BODY, headers)
    assert caught.value.header == "webhook-id"


def test_verify_whsec_secret_verifies_like_raw_secret() -> None:
    webhook = Webhook(_signing.standard_secret(SECRET), clock=lambda: NOW)

    assert webhook.verify(BODY, standard_headers()).id == EVENT_ID
    assert webhook.verify(BODY, hex_headers()).id == EVENT_ID


def test_verify_wrong_secret_is_mismatch() -> None:
    webhook = Webhook("another-secret", clock=lambda: NOW)

    with pytest.raises(SignatureMismatchError):
        webhook.verify(BODY, standard_headers())


def test_verify_tampered_body_is_mismatch(webhook: Webhook) -> None:
    tampered = BODY.replace(b'"stop"', b'"length"')

    with pytest.raises(SignatureMismatchError):
        webhook.verify(tampered, standard_headers())


def test_verify_message_id_mismatch_invalid(webhook: Webhook) -> None:
    headers = standard_headers(msg_id="evt_somewhere_else")

    with pytest.raises(InvalidPayloadError) as caught:
        webhook.verify(BODY, headers)
    assert caught.value.field == "id"


@pytest.mark.parametrize(
    ("offset", "passes"),
    [
        (0, True),
        (300, True),  # exactly the tolerance, in the past
        (-300, True),  # exactly the tolerance, in the future
        (301, False),
        (-301, False),
        (86_400 * 365, False),
    ],
)
def test_verify_timestamp_tolerance_is_symmetric(
    webhook: Webhook, offset: int, passes: bool
) -> None:
    headers = standard_headers(timestamp=NOW - offset)

    if passes:
        assert webhook.verify(BODY, headers).id == EVENT_ID
    else:
        with pytest.raises(TimestampOutsideToleranceError):
            webhook.verify(BODY, headers)


def test_verify_timestamp_error_says_old_or_future(webhook: Webhook) -> None:
    with pytest.raises(TimestampOutsideToleranceError, match="old"):
        webhook.verify(BODY, standard_headers(timestamp=NOW - 3_600))
    with pytest.raises(TimestampOutsideToleranceError, match="future"):
        webhook.verify(BODY, standard_headers(timestamp=NOW + 3_600))


@pytest.mark.parametrize("tolerance", [timedelta(seconds=10), 10, 10.0])
def test_verify_custom_tolerance_applies(tolerance: timedelta | float) -> None:
    webhook = Webhook(SECRET, tolerance=tolerance, clock=lambda: NOW)

    assert webhook.verify(BODY, standard_headers(timestamp=NOW - 10)).id == EVENT_ID
    with pytest.raises(TimestampOutsideToleranceError):
        webhook.verify(BODY, standard_headers(timestamp=NOW - 11))


def test_verify_signature_checked_before_timestamp(webhook: Webhook) -> None:
    # An old request with a forged signature is reported as forged, not as old.
    headers = standard_headers(secrets=("forged",), timestamp=NOW - 3_600)

    with pytest.raises(SignatureMismatchError):
        webhook.verify(BODY, headers)


def _replace(header: str, value: str) -> dict[str, str]:
    return standard_headers() | {header: value}


def _hex(value: str) -> dict[str, str]:
    return {"X-WP-LLM-Signature": value}


GOOD_HEX = _signing.sign_hex(SECRET, BODY)

BAD_HEADERS = [
    ({}, MissingHeaderError, "no signature header"),
    (_hex(""), MissingHeaderError, "missing or empty"),
    (_hex("   "), MissingHeaderError, "missing or empty"),
    (_replace("webhook-id", ""), MissingHeaderError, "webhook-id"),
    (_replace("webhook-signature", " "), MissingHeaderError, "webhook-signature"),
    (_hex("sha256=" + GOOD_HEX), MalformedSignatureError, "sha256="),
    (_hex("SHA256=" + GOOD_HEX), MalformedSignatureError, "sha256="),
    (_hex(GOOD_HEX.upper()), MalformedSignatureError, "lowercase"),
    (_hex(GOOD_HEX[:-1]), MalformedSignatureError, "63 characters"),
    (_hex(GOOD_HEX + "0"), MalformedSignatureError, "65 characters"),
    (_hex("g" * 64), MalformedSignatureError, "0-9 and a-f"),
    (_hex("é" * 64), MalformedSignatureError, "non-ASCII"),
    (_hex("0" * 64), SignatureMismatchError, "no signature"),
    (_hex("v1,abc"), MalformedSignatureError, "webhook-signature"),
    (_replace("webhook-signature", "v2,c2lnbmF0dXJl"), MalformedSignatureError, "v2"),
    (_replace("webhook-signature", "v1a,c2lnbmF0dXJl"), MalformedSignatureError, "v1a"),
    (_replace("webhook-signature", "c2lnbmF0dXJl"), MalformedSignatureError, "no comma"),
    (_replace("webhook-signature", "v1,"), MalformedSignatureError, "0 bytes"),
    (_replace("webhook-signature", "v1,!!!!"), MalformedSignatureError, "base64"),
    (_replace("webhook-signature", "v1,c2lnbmF0dXJl"), MalformedSignatureError, "9 bytes"),
    (_replace("webhook-signature", "v1,ÿÿÿÿ"), MalformedSignatureError, "base64"),
    (_replace("webhook-signature", "v1," + "A" * 43 + "="), SignatureMismatchError, "no sig"),
    (_replace("webhook-timestamp", "soon"), MalformedTimestampError, "not an integer"),
    (_replace("webhook-timestamp", "-1640995200"), MalformedTimestampError, "not an integer"),
    (_replace("webhook-timestamp", "1640995200.5"), MalformedTimestampError, "not an integer"),
    (_replace("webhook-timestamp", "1_640_995_200"), MalformedTimestampError, "not an integer"),
    # Arabic-Indic digits, which int() would accept.
    (_replace("webhook-timestamp", "١٦٤٠٩٩٥٢٠٠"), MalformedTimestampError, "not an integer"),
    (_replace("webhook-timestamp", "1640995200000"), MalformedTimestampError, "milliseconds"),
    (_replace("webhook-timestamp", "9" * 5000), MalformedTimestampError, "5000 digits"),
    (_replace("webhook-id", "evt 1"), MalformedHeaderError, "webhook-id"),
    (_replace("webhook-id", "évt_1"), MalformedHeaderError, "webhook-id"),
    (_replace("webhook-id", "e" * 257), MalformedHeaderError, "webhook-id"),
]


@pytest.mark.parametrize(("headers", "error", "phrase"), BAD_HEADERS)
def test_verify_bad_header_raises_specific_error(
    webhook: Webhook,
    headers: dict[str, str],
    error: type[SignatureVerificationError],
    phrase: str,
) -> None:
    with pytest.raises(error) as caught:
        webhook.verify(BODY, headers)

    assert type(caught.value) is error
    assert phrase in str(caught.value)


def test_verify_error_messages_never_contain_secret_or_signature(webhook: Webhook) -> None:
    expected_standard = standard_headers()["webhook-signature"].removeprefix("v1,")
    forged = standard_headers(secrets=("forged",))

    for headers in [forged, _hex("0" * 64), *(headers for headers, _, _ in BAD_HEADERS)]:
        with pytest.raises(SignatureVerificationError) as caught:
            webhook.verify(BODY, headers)
        message = str(caught.value)
        assert SECRET not in message
        assert GOOD_HEX not in message
        assert expected_standard not in message


def test_verify_quotes_untrusted_values_short(webhook: Webhook) -> None:
    with pytest.raises(MalformedTimestampError) as caught:
        webhook.verify(BODY, _replace("webhook-timestamp", "x" * 10_000))

    assert len(str(caught.value)) < 200


BAD_BODIES = [
    (b"", "not valid JSON"),
    (b"not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b'{"id": NaN}', "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"1" * 5_000, "not valid JSON"),
    (b"[]", "JSON list"),
    (b'"evt_1"', "JSON str"),
    (b"{}", "'id'"),
    (body_of(envelope() | {"object": "list"}), "'object'"),
    (body_of(envelope() | {"created": "1640995200"}), "'created'"),
    (body_of(envelope() | {"created": 1640995200.0}), "'created'"),
    (body_of(envelope() | {"created": True}), "'created'"),
    (body_of(envelope() | {"id": ""}), "'id'"),
    (body_of(envelope() | {"type": 7}), "'type'"),
    (body_of(envelope() | {"data": []}), "'data'"),
]


@pytest.mark.parametrize(("body", "phrase"), BAD_BODIES)
def test_verify_signed_bad_body_is_invalid_payload(
    webhook: Webhook, body: bytes, phrase: str
) -> None:
    headers = _hex(_signing.sign_hex(SECRET, body))

    with pytest.raises(InvalidPayloadError) as caught:
        webhook.verify(body, headers)
    assert phrase in str(caught.value)


def test_verify_unsigned_bad_body_mismatch(webhook: Webhook) -> None:
    # The signature is checked first, so an unauthenticated caller learns nothing
    # about how the body would be parsed.
    with pytest.raises(SignatureMismatchError):
        webhook.verify(b"not json", _hex("0" * 64))


def test_verify_unknown_type_returns_generic_event(webhook: Webhook) -> None:
    body = event_body("generation.completed", data={"anything": [1, 2]})
    body = body.replace(b"generation.completed", b"generation.paused")

    event = webhook.verify(body, standard_headers(body))

    assert type(event) is Event[dict[str, Any]]
    assert event.data == {"anything": [1, 2]}
