import dataclasses
import json
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator

import wp_llm.catalog
from wp_llm.catalog import EVENT_TYPES, EventType, is_valid_pattern, matches

CATALOG_ORDER = [
    "generation.started",
    "generation.completed",
    "generation.failed",
    "analysis.completed",
    "analysis.failed",
    "model.training.started",
    "model.training.completed",
    "model.training.failed",
    "usage.limit_exceeded",
    "usage.quota_exceeded",
    "usage.warning",
    "system.maintenance",
    "system.update",
    "webhook.disabled",
]


def test_catalog_exports_sorted_all() -> None:
    assert wp_llm.catalog.__all__ == sorted(wp_llm.catalog.__all__)


def test_catalog_lists_types_in_catalog_order() -> None:
    assert list(EVENT_TYPES) == CATALOG_ORDER


def test_catalog_ships_one_file_per_type() -> None:
    shipped = files("wp_llm.catalog").joinpath("types").iterdir()
    names = sorted(entry.name for entry in shipped if entry.name.endswith(".json"))
    assert names == sorted(f"{name}.json" for name in CATALOG_ORDER)


def test_catalog_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        EVENT_TYPES["custom.type"] = EVENT_TYPES["generation.started"]  # type: ignore[index]


def test_event_type_is_frozen() -> None:
    event_type = EVENT_TYPES["generation.started"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event_type.description = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_catalog_entry_is_complete(name: str) -> None:
    event_type = EVENT_TYPES[name]
    assert isinstance(event_type, EventType)
    assert event_type.type == name
    assert event_type.description.endswith(".")
    assert event_type.schema["type"] == "object"


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_catalog_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = EVENT_TYPES[name].schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_catalog_example_matches_schema(name: str) -> None:
    event_type = EVENT_TYPES[name]
    errors = list(Draft202012Validator(event_type.schema).iter_errors(event_type.example))
    assert errors == []


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_catalog_example_carries_every_described_field(name: str) -> None:
    event_type = EVENT_TYPES[name]
    assert set(event_type.example) == set(event_type.schema["properties"])


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_catalog_schema_allows_additional_properties(name: str) -> None:
    text = json.dumps(EVENT_TYPES[name].schema)
    assert '"additionalProperties": false' not in text


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (
            "generation.completed",
            [
                "id",
                "object",
                "created",
                "model",
                "prompt",
                "completion",
                "usage",
                "finish_reason",
            ],
        ),
        ("analysis.completed", ["id", "object", "created", "issues", "score", "recommendations"]),
        ("usage.limit_exceeded", ["limit", "current_usage", "reset_time", "retry_after"]),
    ],
)
def test_catalog_example_has_documented_fields(name: str, fields: list[str]) -> None:
    assert list(EVENT_TYPES[name].example) == fields


def test_generation_example_reports_consistent_usage() -> None:
    usage = EVENT_TYPES["generation.completed"].example["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == usage["total_tokens"]


def test_analysis_example_issue_has_documented_fields() -> None:
    issue = EVENT_TYPES["analysis.completed"].example["issues"][0]
    assert list(issue) == ["type", "severity", "line", "message", "suggestion"]


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("*", True),
        ("generation.completed", True),
        ("model.training.failed", True),
        ("generation.*", True),
        ("model.*", True),
        ("model.training.*", True),
        ("webhook.*", True),
        ("", False),
        ("generation", False),
        ("generation.", False),
        ("Generation.completed", False),
        ("generation.completed.*", False),  # a full type has no longer types under it
        ("model.train.*", False),  # prefixes end at a dot
        ("gen*", False),
        ("generation*", False),
        (".*", False),
        ("*.*", False),
        ("*.completed", False),
        ("generation.*.*", False),
        ("billing.*", False),
        ("billing.invoice_paid", False),
        (" generation.*", False),
    ],
)
def test_is_valid_pattern_cases(pattern: str, valid: bool) -> None:
    assert is_valid_pattern(pattern) is valid


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "generation.completed", True),
        ("*", "webhook.disabled", True),
        ("generation.completed", "generation.completed", True),
        ("generation.completed", "generation.failed", False),
        ("generation.*", "generation.started", True),
        ("generation.*", "analysis.completed", False),
        ("model.*", "model.training.completed", True),
        ("model.training.*", "model.training.failed", True),
        ("model.training.*", "model.trainingx.failed", False),
        ("usage.*", "usage", False),  # the prefix alone is not a type under it
    ],
)
def test_matches_cases(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


@pytest.mark.parametrize("name", CATALOG_ORDER)
def test_star_and_own_name_match_type(name: str) -> None:
    assert matches("*", name)
    assert matches(name, name)


@pytest.mark.parametrize(
    "pattern",
    ["generation.*", "analysis.*", "model.*", "model.training.*", "usage.*", "system.*"],
)
def test_valid_wildcard_matches_some_type(pattern: str) -> None:
    assert is_valid_pattern(pattern)
    assert any(matches(pattern, name) for name in CATALOG_ORDER)
