import copy
from typing import Any

import pytest

from wp_llm.catalog import EVENT_TYPES
from wp_llm.server import validation
from wp_llm.server.validation import MAX_FIELD_ERRORS, FieldError, validate_event_data


def example(event_type: str) -> dict[str, Any]:
    """Return a deep copy of the catalog example, safe to change in a test."""
    return copy.deepcopy(dict(EVENT_TYPES[event_type].example))


def fields_of(errors: list[FieldError]) -> list[str]:
    return [error.field for error in errors]


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_catalog_example_validates(event_type: str) -> None:
    assert validate_event_data(event_type, example(event_type)) == []


def test_missing_field_names_the_field() -> None:
    data = example("generation.completed")
    del data["completion"]

    errors = validate_event_data("generation.completed", data)

    assert errors == [FieldError("data.completion", "required field is missing")]


def test_missing_nested_field_names_the_path() -> None:
    data = example("generation.completed")
    del data["usage"]["total_tokens"]

    assert fields_of(validate_event_data("generation.completed", data)) == [
        "data.usage.total_tokens"
    ]


def test_every_missing_field_is_named_once() -> None:
    errors = validate_event_data("usage.limit_exceeded", {"limit": 60})
    assert fields_of(errors) == ["data.current_usage", "data.reset_time", "data.retry_after"]


def test_wrong_type_names_expected_and_received_types() -> None:
    data = example("generation.completed")
    data["usage"]["total_tokens"] = "258"

    errors = validate_event_data("generation.completed", data)

    assert errors == [FieldError("data.usage.total_tokens", "expected integer, got string")]


def test_array_item_error_uses_index_in_path() -> None:
    data = example("analysis.completed")
    data["issues"][1]["severity"] = "fatal"

    (error,) = validate_event_data("analysis.completed", data)

    assert error.field == "data.issues[1].severity"
    assert error.message.startswith('expected one of "info", "warning"')
    assert error.message.endswith('got "fatal"')


@pytest.mark.parametrize(
    ("event_type", "change", "field", "message"),
    [
        (
            "generation.completed",
            {"object": "chat_completion"},
            "data.object",
            'expected "text_generation", got "chat_completion"',
        ),
        ("analysis.completed", {"score": 101}, "data.score", "expected a number <= 100, got 101"),
        ("analysis.completed", {"score": True}, "data.score", "expected number, got boolean"),
        (
            "usage.limit_exceeded",
            {"retry_after": -1},
            "data.retry_after",
            "expected a number >= 0, got -1",
        ),
        ("usage.limit_exceeded", {"limit": 1.5}, "data.limit", "expected integer, got number"),
        ("usage.limit_exceeded", {"limit": None}, "data.limit", "expected integer, got null"),
        (
            "system.maintenance",
            {"message": ["a"]},
            "data.message",
            "expected string, got array",
        ),
    ],
)
def test_invalid_value_message(
    event_type: str, change: dict[str, Any], field: str, message: str
) -> None:
    data = example(event_type) | change
    assert validate_event_data(event_type, data) == [FieldError(field, message)]


def test_integral_float_counts_as_integer() -> None:
    # JSON has one number type, and JSON.stringify prints 60.0 as 60.
    data = example("usage.limit_exceeded") | {"limit": 60.0}
    assert validate_event_data("usage.limit_exceeded", data) == []


def test_additional_properties_pass() -> None:
    data = example("generation.completed")
    data["temperature"] = 0.2
    data["usage"]["cached_tokens"] = 12
    data["wp"] = {"version": "6.4.3", "multisite": False}

    assert validate_event_data("generation.completed", data) == []


def test_data_that_is_not_an_object_is_rejected() -> None:
    errors = validate_event_data("generation.completed", [1, 2])
    assert errors == [FieldError("data", "expected object, got array")]


def test_unknown_event_type_names_type_field() -> None:
    errors = validate_event_data("generation.exploded", {})
    assert errors == [
        FieldError("type", 'expected a catalog event type, got "generation.exploded"')
    ]


def test_message_does_not_echo_large_values() -> None:
    data = example("analysis.completed")
    data["issues"][0]["severity"] = "x" * 10_000

    (error,) = validate_event_data("analysis.completed", data)

    assert len(error.message) < 160
    assert "x" * 41 not in error.message


def test_path_quotes_unusual_keys() -> None:
    path = validation._format_path(["usage", "weird key", 0, "a.b"])
    assert path == 'data.usage["weird key"][0]["a.b"]'


def test_error_list_is_capped() -> None:
    data = example("analysis.completed")
    data["issues"] = [{}] * 100

    errors = validate_event_data("analysis.completed", data)

    assert len(errors) == MAX_FIELD_ERRORS


def test_validation_exports_sorted_all() -> None:
    assert validation.__all__ == sorted(validation.__all__)
