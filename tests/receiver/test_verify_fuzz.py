"""Property tests: for any input, verify returns an Event or raises SignatureVerificationError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wp_llm import _signing
from wp_llm.webhooks import (
    EVENT_TYPES,
    Event,
    InvalidPayloadError,
    SignatureVerificationError,
    Webhook,
)

from .samples import EVENT_ID, NOW, SECRET, event_body

FUZZ = settings(
    max_examples=500,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
WEBHOOK = Webhook(SECRET, clock=lambda: NOW)
HEADER_NAMES = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "X-WP-LLM-Signature",
    "Webhook-Signature",
    "x-wp-llm-signature",
]

# Header values drawn from every plane, plus values built to sit close to valid ones.
header_text = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="0123456789abcdefABCDEF=, v1sha", max_size=140),
    st.builds(lambda n: str(n), st.integers(min_value=-(10**20), max_value=10**20)),
    st.builds(lambda tail: "v1," + tail, st.text(max_size=60)),
    st.builds(lambda tail: "sha256=" + tail, st.text(max_size=70)),
    st.just(_signing.sign_hex(SECRET, event_body())),
    st.just(_signing.sign_standard([SECRET], EVENT_ID, NOW, event_body())),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_text), max_size=6)
bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200),
    st.just(event_body()),
)


def check_outcome(body: Any, request_headers: Any) -> None:
    try:
        event = WEBHOOK.verify(body, request_headers)
    except SignatureVerificationError:
        return
    assert isinstance(event, Event)


@FUZZ
@given(body=bodies, request_headers=headers)
def test_verify_fuzzed_headers(body: Any, request_headers: list[tuple[str, str]]) -> None:
    check_outcome(body, request_headers)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just(EVENT_ID), json_values),
        "object": st.one_of(st.just("event"), json_values),
        "created": st.one_of(st.just(NOW), json_values),
        "type": st.one_of(st.sampled_from(sorted(EVENT_TYPES)), st.text(max_size=20)),
        "data": json_values,
    },
)


@FUZZ
@given(payload=envelopes, encoding=st.sampled_from(["utf-8", "utf-16"]))
def test_verify_fuzzed_signed_envelopes(payload: dict[str, Any], encoding: str) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode(encoding, errors="surrogatepass")
    signed = {"X-WP-LLM-Signature": _signing.sign_hex(SECRET, body)}

    try:
        event = WEBHOOK.verify(body, signed)
    except InvalidPayloadError:
        return
    assert isinstance(event, Event)


@FUZZ
@given(body=st.binary(max_size=600))
def test_verify_fuzzed_signed_bytes(body: bytes) -> None:
    signed = {"X-WP-LLM-Signature": _signing.sign_hex(SECRET, body)}

    try:
        WEBHOOK.verify(body, signed)
    except InvalidPayloadError:
        return
