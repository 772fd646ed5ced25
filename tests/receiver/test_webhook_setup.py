"""Building a Webhook: secrets, tolerance, and the headers `sign` produces."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from wp_llm import _signing
from wp_llm.webhooks import GenerationCompletedEvent, Webhook

from .samples import EVENT_ID, NOW, SECRET, event_body


@pytest.mark.parametrize(
    ("secret", "phrase"),
    [
        ("", "empty"),
        ([], "no webhook secret"),
        ((), "no webhook secret"),
        ("whsec_", "nothing after the prefix"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_YWJ", "not valid base64"),  # padding missing
        (["good", ""], "empty"),
        (SECRET + "\n", "whitespace"),  # read from a file with its newline
        (" " + SECRET, "whitespace"),
    ],
)
def test_webhook_invalid_secret_raises_value_error(secret: Any, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        Webhook(secret)


@pytest.mark.parametrize("secret", [None, 42, b"raw-bytes", [b"raw-bytes"], ["ok", 7]])
def test_webhook_secret_of_wrong_type_raises_type_error(secret: Any) -> None:
    with pytest.raises(TypeError):
        Webhook(secret)


def test_webhook_error_for_whsec_never_contains_secret() -> None:
    secret = "whsec_c2VjcmV0*"

    with pytest.raises(ValueError) as caught:
        Webhook(secret)
    assert "c2VjcmV0" not in str(caught.value)


@pytest.mark.parametrize("secrets", [("a", "b"), ["a", "b"], {"a": 1, "b": 2}.keys()])
def test_webhook_accepts_any_iterable_of_secrets(secrets: Any) -> None:
    webhook = Webhook(secrets)

    assert "2 secret(s)" in repr(webhook)


def test_webhook_repr_hides_secret() -> None:
    assert SECRET not in repr(Webhook(SECRET))


@pytest.mark.parametrize(
    ("tolerance", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (timedelta(seconds=-5), ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (True, TypeError),
        ("300", TypeError),
    ],
)
def test_webhook_invalid_tolerance_raises(tolerance: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Webhook(SECRET, tolerance=tolerance)


def test_sign_headers_verify() -> None:
    webhook = Webhook(SECRET, clock=lambda: NOW)
    body = event_body()

    headers = webhook.sign(body)

    assert isinstance(webhook.verify(body, headers), GenerationCompletedEvent)


def test_sign_produces_contract_headers() -> None:
    body = event_body()

    headers = Webhook(SECRET).sign(body, timestamp=NOW, delivery_id="dlv_1")

    assert headers["X-WP-LLM-Signature"] == _signing.sign_hex(SECRET, body)
    assert headers["X-WP-LLM-Event"] == "generation.completed"
    assert headers["X-WP-LLM-Delivery"] == "dlv_1"
    assert headers["webhook-id"] == EVENT_ID
    assert headers["webhook-timestamp"] == str(NOW)
    assert headers["webhook-signature"] == _signing.sign_standard([SECRET], EVENT_ID, NOW, body)


def test_sign_with_several_secrets_sends_one_signature_each() -> None:
    body = event_body()

    headers = Webhook(["old", "new"]).sign(body, timestamp=NOW)

    assert headers["webhook-signature"] == _signing.sign_standard(
        ["old", "new"], EVENT_ID, NOW, body
    )
    assert headers["X-WP-LLM-Signature"] == _signing.sign_hex("old", body)


def test_sign_whsec_secret_matches_raw_secret() -> None:
    body = event_body()
    raw = Webhook(SECRET).sign(body, timestamp=NOW)

    encoded = Webhook(_signing.standard_secret(SECRET)).sign(body, timestamp=NOW)

    assert encoded == raw


def test_sign_body_without_id_needs_event_id() -> None:
    webhook = Webhook(SECRET)

    with pytest.raises(ValueError, match="event_id"):
        webhook.sign(b"not json")
    assert webhook.sign(b"not json", event_id="evt_x")["webhook-id"] == "evt_x"


def test_sign_uses_clock_for_default_timestamp() -> None:
    headers = Webhook(SECRET, clock=lambda: NOW + 0.9).sign(event_body())

    assert headers["webhook-timestamp"] == str(NOW)


def test_standard_secret_form_is_base64_of_utf8() -> None:
    secret = "clé-secrète-✓"

    encoded = _signing.standard_secret(secret)

    assert encoded.startswith("whsec_")
    assert base64.b64decode(encoded.removeprefix("whsec_")) == secret.encode("utf-8")
    assert _signing.key_from_secret(encoded) == secret.encode("utf-8")


def test_any_digest_matches_needs_an_equal_pair() -> None:
    assert _signing.any_digest_matches([b"a" * 32, b"b" * 32], [b"c" * 32, b"b" * 32])
    assert not _signing.any_digest_matches([b"a" * 32], [b"c" * 32, b"d" * 32])
    assert not _signing.any_digest_matches([], [b"a" * 32])


def test_sign_functions_agree_with_key_functions() -> None:
    body = json.dumps({"k": "✓"}).encode()
    key = SECRET.encode()

    assert _signing.sign_hex(SECRET, body) == _signing.hex_signature(key, body)
    assert _signing.sign_standard_one(SECRET, "m", NOW, body) == _signing.standard_signature(
        key, "m", NOW, body
    )
