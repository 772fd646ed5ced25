"""The compiled schema check and jsonschema accept exactly the same event data.

The compiled check decides alone when data is valid, so it must never accept data that
jsonschema rejects. Each case starts from a catalog example and changes one value,
drops one field or adds one, anywhere in the tree.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wp_llm import catalog
from wp_llm.server import validation

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value`, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(paths(item, (*prefix, index)))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[str, Any]:
    event_type = draw(st.sampled_from(sorted(catalog.EVENT_TYPES)))
    data = copy.deepcopy(dict(catalog.EVENT_TYPES[event_type].example))
    path = draw(st.sampled_from(paths(data)))
    change = draw(st.sampled_from(["replace", "drop", "add"]))
    if not path:
        return event_type, draw(JSON_VALUES) if change == "replace" else data
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if change == "replace":
        parent[path[-1]] = draw(JSON_VALUES)
    elif change == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(JSON_VALUES)
    return event_type, data


def jsonschema_accepts(event_type: str, data: Any) -> bool:
    return not any(True for _ in validation._validator(event_type).iter_errors(data))


def compiled_accepts(event_type: str, data: Any) -> bool:
    try:
        validation._compiled_check(event_type)(data)
    except validation.fastjsonschema.JsonSchemaException:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(mutated_examples())
def test_compiled_check_agrees_with_jsonschema(case: tuple[str, Any]) -> None:
    event_type, data = case
    assert compiled_accepts(event_type, data) == jsonschema_accepts(event_type, data)


def test_every_example_passes_both_checks() -> None:
    for event_type, entry in catalog.EVENT_TYPES.items():
        assert compiled_accepts(event_type, dict(entry.example))
        assert jsonschema_accepts(event_type, dict(entry.example))
