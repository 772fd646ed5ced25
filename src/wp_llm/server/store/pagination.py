"""Cursor pagination over id-ordered tables, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, exists, select, true

from wp_llm.server.errors import InvalidRequest

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
_CURSOR_FOUND = "cursor_found"


@dataclass(frozen=True)
class Page:
    """One page of rows and whether more lie beyond it in the listing's direction."""

    rows: Sequence[Mapping[Any, Any]]
    has_more: bool


@dataclass(frozen=True)
class IdFilter:
    """A listing's filter on the id of another object, such as `webhook_id` of deliveries."""

    field: str
    value: str
    object_name: str
    # True when `value` names an object of the account that the filter can match.
    found: ColumnElement[bool]
    # How to list without the filter, for the error message.
    unfiltered: str


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
    id_filters: Sequence[IdFilter] = (),
) -> Page:
    """Fetch rows newest first; `starting_after` pages forward, `ending_before` pages back.

    A cursor must be the id of a row of `table` in the account, whether or not it matches
    the listing's filters, because a delivery's status can change between two pages.
    Each of `id_filters` must name an object of the account. Raise InvalidRequest, naming
    the first filter or cursor parameter that names nothing.
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

    checks = {_filter_label(index): id_filter.found for index, id_filter in enumerate(id_filters)}
    if cursor is not None:
        checks[_CURSOR_FOUND] = exists().where(
            table.c.id == cursor, table.c.account_id == account_id
        )

    rows: list[Mapping[Any, Any]]
    if not checks:
        rows = list(connection.execute(query).mappings())
    else:
        rows, found = _fetch_with_checks(connection, query, checks, backwards)
        for index, id_filter in enumerate(id_filters):
            if not found[_filter_label(index)]:
                raise _filter_not_found(id_filter)
        if cursor is not None and not found[_CURSOR_FOUND]:
            field = "ending_before" if backwards else "starting_after"
            raise _cursor_not_found(field, cursor, object_name)

    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return Page(rows=rows, has_more=has_more)


def _filter_label(index: int) -> str:
    return f"filter_found_{index}"


def _fetch_with_checks(
    connection: Connection,
    page_query: Select[Any],
    checks: Mapping[str, ColumnElement[bool]],
    backwards: bool,
) -> tuple[list[Mapping[Any, Any]], dict[str, bool]]:
    """Fetch a page and evaluate `checks` in one statement; return the rows and each result.

    The one-row checks are LEFT JOINed to the page, so even an empty page returns one row,
    with the checks' results in their own columns and NULL in the page's columns.
    """
    check = select(*(found.label(name) for name, found in checks.items())).subquery("checks")
    page = page_query.subquery("page")
    statement = (
        select(check, page)
        .select_from(check.outerjoin(page, true()))
        .order_by(page.c.id.asc() if backwards else page.c.id.desc())
    )

    rows = list(connection.execute(statement).mappings())
    found = {name: bool(rows[0][name]) for name in checks}
    return [row for row in rows if row["id"] is not None], found


def _filter_not_found(id_filter: IdFilter) -> InvalidRequest:
    value = id_filter.value[:100]
    return InvalidRequest(
        f"No {id_filter.object_name} with id {value!r} in this account, so the "
        f"{id_filter.field} filter matches nothing. Pass the id of one of this account's "
        f"{id_filter.object_name}s, or leave {id_filter.field} out to {id_filter.unfiltered}.",
        code="filter_not_found",
        details={"field": id_filter.field, "value": value},
    )


def _cursor_not_found(field: str, cursor: str, object_name: str) -> InvalidRequest:
    return InvalidRequest(
        f"No {object_name} with id {cursor[:100]!r} in this account, so {field} cannot "
        f"page from it. Pass an id from an earlier page of this list, or leave {field} out "
        "to start from the newest.",
        code="cursor_not_found",
        details={"field": field, "value": cursor[:100]},
    )
