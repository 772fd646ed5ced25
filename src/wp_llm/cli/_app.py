"""The Typer application that every command module registers on."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="wp-llm",
    help="WP LLM webhooks: run the delivery service, manage API keys, publish test events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="Create and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error message that names the fix, and exit without a traceback."""
    # Escaped, so that names and values in brackets print as typed instead of as markup.
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def main() -> None:
    # Importing the command modules registers their commands on `app`.
    from wp_llm.cli import _client, _operator, _server  # noqa: F401

    app()
