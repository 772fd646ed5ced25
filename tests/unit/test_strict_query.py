"""The query check of StrictQueryRoute, on parameters no route of the API declares yet."""

from __future__ import annotations

import pytest
from fastapi import Depends, Query
from fastapi.dependencies.utils import get_dependant
from starlette.datastructures import QueryParams

from wp_llm.server.api.strict_query import query_signature
from wp_llm.server.errors import InvalidRequest


def page(limit: int = Query(10), cursor: str | None = Query(None, alias="after")) -> None:
    return None


def listing(
    tags: list[str] = Query([]),
    sizes: list[int] | None = Query(None),
    _: None = Depends(page),
) -> None:
    return None


SIGNATURE = query_signature("GET /things", get_dependant(path="/things", call=listing))


def test_signature_lists_route_then_dependency() -> None:
    assert SIGNATURE.names == ("tags", "sizes", "limit", "after")


def test_signature_uses_alias() -> None:
    with pytest.raises(InvalidRequest) as raised:
        SIGNATURE.check(QueryParams("cursor=x"))

    assert raised.value.code == "unknown_parameter"
    assert raised.value.details["field"] == "cursor"


@pytest.mark.parametrize("query", ["tags=a&tags=b", "sizes=1&sizes=2&limit=3", ""])
def test_list_parameters_may_repeat(query: str) -> None:
    SIGNATURE.check(QueryParams(query))


def test_scalar_parameter_may_not_repeat() -> None:
    with pytest.raises(InvalidRequest) as raised:
        SIGNATURE.check(QueryParams("tags=a&after=x&limit=1&after=y&after=z"))

    assert raised.value.code == "duplicate_parameter"
    assert raised.value.details == {"field": "after", "count": 3}


def test_long_unknown_name_is_cut() -> None:
    with pytest.raises(InvalidRequest) as raised:
        SIGNATURE.check(QueryParams("x" * 5000 + "=1"))

    assert raised.value.details["field"] == "x" * 100
    assert len(raised.value.message) < 300
