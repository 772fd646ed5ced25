"""Cursor pagination over id-ordered tables, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10


@dataclass(frozen=True)
class Page:
    """One page of rows and whether more lie beyond it in the listing's direction."""

    rows: Sequence[Mapping[Any, Any]]
    has_more: bool


def fetch_page(
    connection: Connection,
    table: Table,
    query: Select[Any],
    *,
    limit: int,
    starting_after: str | None,
    ending_before: str | None,
) -> Page:
    """Fetch rows newest first; `starting_after` pages forward, `ending_before` pages back."""
    id_column = table.c.id
    if ending_before is not None:
        query = query.where(id_column > ending_before).order_by(id_column.asc())
    else:
        if starting_after is not None:
            query = query.where(id_column < starting_after)
        query = query.order_by(id_column.desc())

    rows = list(connection.execute(query.limit(limit + 1)).mappings())
    has_more = len(rows) > limit
    rows = rows[:limit]
    if ending_before is not None:
        rows.reverse()
    return Page(rows=rows, has_more=has_more)
