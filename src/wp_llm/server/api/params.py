"""Query parameters shared by every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Query

from wp_llm.server.errors import InvalidRequest
from wp_llm.server.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


@dataclass(frozen=True)
class PageParams:
    """`limit` plus one cursor: `starting_after` pages forward, `ending_before` back."""

    limit: int
    starting_after: str | None
    ending_before: str | None


def page_params(
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size."),
    starting_after: str | None = Query(None, description="Return objects older than this id."),
    ending_before: str | None = Query(None, description="Return objects newer than this id."),
) -> PageParams:
    if starting_after and ending_before:
        raise InvalidRequest(
            "Pass either starting_after or ending_before, not both.",
            details={"field": "ending_before"},
        )
    return PageParams(limit, starting_after, ending_before)
