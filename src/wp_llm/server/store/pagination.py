"""Cursor pagination over id-ordered tables, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, exists, select, true

from wp_llm.server.errors import InvalidRequest

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
_CURSOR_FOUND = "cursor_found"


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
    account_id: str,
    object_name: str,
    limit: int,
    starting_after: str | None,
    ending_before: str | None,
) -> Page:
    """Fetch rows newest first; `starting_after` pages forward, `ending_before` pages back.

    A cursor must be the id of a row of `table` in the account, whether or not it matches
    the listing's filters, because a delivery's status can change between two pages.
    Raise InvalidRequest, naming the cursor parameter, when no such row exists.
    """
    id_column = table.c.id
    backwards = ending_before is not None
    cursor = ending_before if backwards else starting_after
    if backwards:
        query = query.where(id_column > ending_before).order_by(id_column.asc())
    else:
        if starting_after is not None:
            query = query.where(id_column < starting_after)
        query = query.order_by(id_column.desc())
    query = query.limit(limit + 1)

    rows: list[Mapping[Any, Any]]
    if cursor is None:
        rows = list(connection.execute(query).mappings())
    else:
        found = _fetch_after_cursor(connection, table, query, account_id, cursor, backwards)
        if found is None:
            field = "ending_before" if backwards else "starting_after"
            raise _cursor_not_found(field, cursor, object_name)
        rows = found

    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return Page(rows=rows, has_more=has_more)


def _fetch_after_cursor(
    connection: Connection,
    table: Table,
    page_query: Select[Any],
    account_id: str,
    cursor: str,
    backwards: bool,
) -> list[Mapping[Any, Any]] | None:
    """Fetch a page and check its cursor in one statement. Return None for an unknown cursor.

    The one-row check is LEFT JOINed to the page, so even an empty page returns one row,
    with the check's result in `cursor_found` and NULL in the page's columns.
    """
    cursor_exists = exists().where(table.c.id == cursor, table.c.account_id == account_id)
    check = select(cursor_exists.label(_CURSOR_FOUND)).subquery("cursor_check")
    page = page_query.subquery("page")
    statement = (
        select(check.c[_CURSOR_FOUND], page)
        .select_from(check.outerjoin(page, true()))
        .order_by(page.c.id.asc() if backwards else page.c.id.desc())
    )

    rows = list(connection.execute(statement).mappings())
    if not rows[0][_CURSOR_FOUND]:
        return None
    return [row for row in rows if row["id"] is not None]


def _cursor_not_found(field: str, cursor: str, object_name: str) -> InvalidRequest:
    return InvalidRequest(
        f"No {object_name} with id {cursor[:100]!r} in this account, so {field} cannot "
        f"page from it. Pass an id from an earlier page of this list, or leave {field} out "
        "to start from the newest.",
        code="cursor_not_found",
        details={"field": field, "value": cursor[:100]},
    )
