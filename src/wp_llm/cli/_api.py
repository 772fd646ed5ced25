"""Parts shared by the client commands: options, the client, error messages and output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wp_llm import exceptions
from wp_llm._client import DEFAULT_BASE_URL, APIObject, Client, Page
from wp_llm.cli._app import fail

# Wide enough that ids and URLs are not cut when output goes to a file or a pipe.
PIPED_OUTPUT_WIDTH = 200

# Tables and JSON go to stdout; errors and notes go to stderr through `fail` and `note`.
output = Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_OUTPUT_WIDTH)
notes = Console(stderr=True, highlight=False)

API_KEY_OPTION = typer.Option(
    None,
    "--api-key",
    envvar="WP_LLM_API_KEY",
    help="API key; create one with `wp-llm keys create --account NAME`.",
)
BASE_URL_OPTION = typer.Option(
    None, "--base-url", envvar="WP_LLM_BASE_URL", help=f"Service URL (default: {DEFAULT_BASE_URL})."
)
JSON_OPTION = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")
LIMIT_OPTION = typer.Option(
    None, "--limit", min=1, max=100, help="Objects per page, 1 to 100 (default: 10)."
)
ALL_OPTION = typer.Option(False, "--all", help="Fetch every page, not only the first.")


def abort(message: str, code: int = 2) -> NoReturn:
    """Print `message` as an error and exit; code 2 for bad input, 1 for a failed request."""
    fail(message, code)
    raise typer.Exit(code)  # `fail` has exited already, and this line lets type checkers know it.


def note(message: str) -> None:
    # No wrapping: a secret shown once must survive being copied or grepped whole.
    notes.print(escape(message), soft_wrap=True)


def describe_error(error: exceptions.WPLLMError, base_url: str) -> str:
    """Turn a client error into one line: what failed and what to do next."""
    if isinstance(error, exceptions.TimeoutError):
        return f"the service at {base_url} timed out; retry, or check the service's log"
    if isinstance(error, exceptions.ConnectionError):
        cause = error.__cause__ or error.message
        return (
            f"cannot reach the service at {base_url} ({cause}); start it with `wp-llm serve`, "
            "or pass --base-url if it runs elsewhere"
        )
    if not isinstance(error, exceptions.APIError):
        return error.message
    field = error.details.get("field")
    where = f" [field: {field}]" if isinstance(field, str) else ""
    if isinstance(error, exceptions.AuthenticationError):
        return f"{error.message} Check --api-key or WP_LLM_API_KEY."
    if isinstance(error, exceptions.RateLimitError | exceptions.QuotaError) and error.retry_after:
        return f"{error.message} Retry in {error.retry_after:.0f} s."
    return f"{error.message}{where}"


@contextmanager
def api_client(api_key: str | None, base_url: str | None) -> Iterator[Client]:
    """Yield a client; every client error becomes a one-line message and a non-zero exit."""
    try:
        client = Client(api_key, base_url=base_url)
    except exceptions.AuthenticationError:
        abort(
            "no API key: pass --api-key or set WP_LLM_API_KEY "
            "(create one with `wp-llm keys create --account NAME`)"
        )
    except ValueError as error:
        abort(f"--base-url: {error}")
    with client:
        try:
            yield client
        except exceptions.WPLLMError as error:
            abort(describe_error(error, client.base_url), code=1)


def parse_data(data: str | None, option: str = "--data") -> dict[str, Any] | None:
    """Parse a JSON object given on the command line."""
    if data is None:
        return None
    try:
        value = json.loads(data)
    except json.JSONDecodeError as error:
        abort(
            f'{option} is not valid JSON ({error}); quote it, as in {option} \'{{"key": "value"}}\''
        )
    if not isinstance(value, dict):
        abort(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def split_values(values: Sequence[str] | None) -> list[str] | None:
    """Merge the values of a repeated option, each of which may contain a comma-separated list."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def page_json(items: list[APIObject], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": [item.to_dict() for item in items], "has_more": has_more}


def collect(page: Page[Any], every_page: bool) -> tuple[list[Any], bool]:
    """Return the first page's items, or every item when `every_page` is set."""
    if every_page:
        return list(page), False
    return page.data, page.has_more


def show_more_hint(has_more: bool, items: list[Any], command: str) -> None:
    if has_more and items:
        note(f"more results: pass --all, or {command} --starting-after {items[-1].id}")


def utc_text(seconds: int | None) -> str:
    """Return Unix seconds as an ISO 8601 UTC time, or `-` for none."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def display_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def fields_table(fields: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in fields.items():
        table.add_row(name, escape(display_value(value)))
    return table
