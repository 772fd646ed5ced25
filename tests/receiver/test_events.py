"""Typed event models: one per catalog type, and the generic Event for the rest."""

from __future__ import annotations

import typing
from typing import Any

import pydantic
import pytest

from wp_llm import _signing
from wp_llm.webhooks import (
    EVENT_TYPES,
    AnalysisCompletedEvent,
    Event,
    EventData,
    InvalidPayloadError,
    SystemUpdateEvent,
    UsageLimitExceededEvent,
    Webhook,
)

from .samples import SAMPLE_DATA, SECRET, envelope, event_body

CATALOG = sorted(SAMPLE_DATA)


def verify_signed(webhook: Webhook, body: bytes) -> Event[Any]:
    return webhook.verify(body, {"X-WP-LLM-Signature": _signing.sign_hex(SECRET, body)})


def test_event_types_cover_the_catalog() -> None:
    assert sorted(EVENT_TYPES) == CATALOG


@pytest.mark.parametrize("event_type", CATALOG)
def test_event_model_type_literal_matches_its_key(event_type: str) -> None:
    annotation = EVENT_TYPES[event_type].model_fields["type"].annotation

    assert typing.get_args(annotation) == (event_type,)


@pytest.mark.parametrize("event_type", CATALOG)
def test_verify_each_catalog_type_returns_its_model(webhook: Webhook, event_type: str) -> None:
    event = verify_signed(webhook, event_body(event_type))

    assert type(event) is EVENT_TYPES[event_type]
    assert isinstance(event, Event)
    assert isinstance(event.data, EventData)
    assert event.data.model_dump(exclude_unset=True) == SAMPLE_DATA[event_type]


@pytest.mark.parametrize("event_type", CATALOG)
def test_event_data_keeps_undeclared_fields(webhook: Webhook, event_type: str) -> None:
    data = SAMPLE_DATA[event_type] | {"added_later": {"nested": True}}

    event = verify_signed(webhook, event_body(event_type, data=data))

    assert event.data.model_extra == {"added_later": {"nested": True}}


def test_envelope_keeps_undeclared_fields(webhook: Webhook) -> None:
    body = event_body().replace(b'"object":"event"', b'"object":"event","livemode":false')

    event = verify_signed(webhook, body)

    assert event.model_extra == {"livemode": False}


@pytest.mark.parametrize(
    ("event_type", "change", "field"),
    [
        ("generation.completed", {"usage": {"prompt_tokens": 1}}, "data.usage.completion_tokens"),
        ("generation.completed", {"completion": None}, "data.completion"),
        ("generation.started", {"object": "code_analysis"}, "data.object"),
        ("analysis.completed", {"issues": [{"line": "14"}]}, "data.issues.0.type"),
        ("analysis.completed", {"score": "high"}, "data.score"),
        ("model.training.completed", {"trained_tokens": 1.5}, "data.trained_tokens"),
        ("usage.warning", {"threshold": "80%"}, "data.threshold"),
        ("usage.limit_exceeded", {"retry_after": True}, "data.retry_after"),
        ("webhook.disabled", {"disabled_at": "2022-01-01T00:00:00Z"}, "data.disabled_at"),
    ],
)
def test_known_type_with_invalid_data_names_field(
    webhook: Webhook, event_type: str, change: dict[str, Any], field: str
) -> None:
    data = SAMPLE_DATA[event_type] | change

    with pytest.raises(InvalidPayloadError) as caught:
        verify_signed(webhook, event_body(event_type, data=data))
    assert caught.value.field == field
    assert field in str(caught.value)
    assert "evt_" in str(caught.value)


def test_known_type_missing_field_is_invalid(webhook: Webhook) -> None:
    data = dict(SAMPLE_DATA["system.maintenance"])
    del data["ends_at"]

    with pytest.raises(InvalidPayloadError) as caught:
        verify_signed(webhook, event_body("system.maintenance", data=data))
    assert caught.value.field == "data.ends_at"


def test_usage_amounts_keep_integers_and_accept_fractions(webhook: Webhook) -> None:
    data = SAMPLE_DATA["usage.limit_exceeded"] | {"current_usage": 60.5}

    event = verify_signed(webhook, event_body("usage.limit_exceeded", data=data))

    assert isinstance(event, UsageLimitExceededEvent)
    assert type(event.data.limit) is int
    assert event.data.current_usage == 60.5


def test_system_update_optional_fields_default_to_none(webhook: Webhook) -> None:
    event = verify_signed(
        webhook, event_body("system.update", data={"message": "Version 2.1 is out."})
    )

    assert isinstance(event, SystemUpdateEvent)
    assert event.data.version is None
    assert event.data.published_at is None


def test_analysis_issues_are_typed(webhook: Webhook) -> None:
    event = verify_signed(webhook, event_body("analysis.completed"))

    assert isinstance(event, AnalysisCompletedEvent)
    assert event.data.issues[0].line == 14
    assert event.data.issues[0].severity == "high"


def test_unknown_type_parses_with_any_data(webhook: Webhook) -> None:
    body = event_body("usage.warning").replace(b"usage.warning", b"billing.invoice_paid")

    event = verify_signed(webhook, body)

    assert event.type == "billing.invoice_paid"
    assert event.data["threshold"] == 80


def test_event_is_frozen(webhook: Webhook) -> None:
    event = verify_signed(webhook, event_body())

    with pytest.raises(pydantic.ValidationError):
        event.type = "generation.failed"  # type: ignore[misc]


def test_event_model_validate_without_verification_still_types_data() -> None:
    # Integrators building events in their own tests use the models directly.
    event = EVENT_TYPES["usage.limit_exceeded"].model_validate(envelope("usage.limit_exceeded"))

    assert isinstance(event, UsageLimitExceededEvent)


def catalog_entries() -> list[Any]:
    from wp_llm import catalog

    return list(catalog.EVENT_TYPES.values())


def test_event_types_match_service_catalog() -> None:
    assert sorted(entry.type for entry in catalog_entries()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("entry", catalog_entries(), ids=lambda entry: entry.type)
def test_catalog_example_verifies_as_typed_event(webhook: Webhook, entry: Any) -> None:
    body = event_body(entry.type, data=dict(entry.example))

    event = verify_signed(webhook, body)

    assert type(event) is EVENT_TYPES[entry.type]


@pytest.mark.parametrize("entry", catalog_entries(), ids=lambda entry: entry.type)
def test_data_model_requires_catalog_schema_fields(entry: Any) -> None:
    data_model = EVENT_TYPES[entry.type].model_fields["data"].annotation
    assert isinstance(data_model, type)
    assert issubclass(data_model, EventData)
    required = {name for name, field in data_model.model_fields.items() if field.is_required()}

    assert required == set(entry.schema["required"])
