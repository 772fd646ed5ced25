"""`wp-llm webhooks …`: register and manage webhook endpoints through the API."""

from __future__ import annotations

import re
import time
from typing import Any, cast, get_args

import typer
from rich.markup import escape
from rich.table import Table

from wp_llm._client import ReplayStatus, Webhook
from wp_llm.cli._api import (
    ALL_OPTION,
    API_KEY_OPTION,
    BASE_URL_OPTION,
    JSON_OPTION,
    LIMIT_OPTION,
    abort,
    api_client,
    collect,
    fields_table,
    note,
    output,
    page_json,
    parse_data,
    print_json,
    show_more_hint,
    split_values,
)
from wp_llm.cli._app import app

webhooks_app = typer.Typer(help="Register and manage webhook endpoints.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

REPLAY_STATUSES: tuple[str, ...] = get_args(ReplayStatus)
REPLAY_STATUS_NAMES = ", ".join(REPLAY_STATUSES)
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(?P<amount>\d+)(?P<unit>[smhd])")


def webhook_fields(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "status": webhook.status,
        "description": webhook.description,
        "disabled_reason": webhook.disabled_reason,
        "circuit_state": webhook.circuit_state,
        "created": webhook.created,
    }


def webhooks_table(webhooks: list[Webhook]) -> Table:
    table = Table("id", "url", "events", "status")
    table.columns[0].no_wrap = True
    for webhook in webhooks:
        table.add_row(
            webhook.id, escape(webhook.url), escape(", ".join(webhook.events)), webhook.status
        )
    return table


@webhooks_app.command("create")
def create_webhook(
    url: str = typer.Option(
        ..., "--url", help="The endpoint that receives deliveries (http:// or https://)."
    ),
    events: list[str] = typer.Option(
        ...,
        "--events",
        help="Event types to subscribe to: exact types, prefix.* or *; "
        "repeat the option or separate types with commas.",
    ),
    description: str = typer.Option(
        None, "--description", help="A note for yourself, up to 500 characters."
    ),
    secret: str = typer.Option(
        None,
        "--secret",
        help="Your own signing secret, 8 to 256 characters (default: a generated one).",
    ),
    enabled: bool = typer.Option(
        True, "--enabled/--disabled", help="Start delivering at once, or not yet."
    ),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Register an endpoint; its signing secret is shown now and never again."""
    with api_client(api_key, base_url) as client:
        webhook = client.webhooks.create(
            url=url,
            events=split_values(events) or [],
            description=description,
            secret=secret,
            enabled=enabled,
        )
    if json_output:
        print_json(webhook.to_dict())
        return
    output.print(fields_table(webhook_fields(webhook)))
    note(f"signing secret (shown only now): {webhook.secret}")
    note(f"Standard Webhooks form: {webhook.standard_webhooks_secret}")


@webhooks_app.command("list")
def list_webhooks(
    limit: int = LIMIT_OPTION,
    starting_after: str = typer.Option(
        None, "--starting-after", help="Show webhooks older than this id."
    ),
    every_page: bool = ALL_OPTION,
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """List webhooks, newest first."""
    with api_client(api_key, base_url) as client:
        webhooks, has_more = collect(
            client.webhooks.list(limit=limit, starting_after=starting_after), every_page
        )
    if json_output:
        print_json(page_json(webhooks, has_more))
        return
    output.print(webhooks_table(webhooks))
    show_more_hint(has_more, webhooks, "wp-llm webhooks list")


@webhooks_app.command("get")
def get_webhook(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Show one webhook."""
    with api_client(api_key, base_url) as client:
        webhook = client.webhooks.retrieve(webhook_id)
    if json_output:
        print_json(webhook.to_dict())
        return
    output.print(fields_table(webhook_fields(webhook)))


@webhooks_app.command("update")
def update_webhook(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    url: str = typer.Option(None, "--url", help="A new endpoint URL."),
    events: list[str] = typer.Option(
        None, "--events", help="New event types; replaces the current list."
    ),
    description: str = typer.Option(
        None, "--description", help="A new description; pass '' to clear it."
    ),
    enabled: bool = typer.Option(None, "--enable/--disable", help="Resume or pause deliveries."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Change a webhook's URL, event types, description or state."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = url
    if split_values(events):
        changes["events"] = split_values(events)
    if description is not None:
        changes["description"] = description or None
    if enabled is not None:
        changes["enabled"] = enabled
    if not changes:
        abort("nothing to update: pass --url, --events, --description, --enable or --disable")
    with api_client(api_key, base_url) as client:
        webhook = client.webhooks.update(webhook_id, **changes)
    if json_output:
        print_json(webhook.to_dict())
        return
    output.print(fields_table(webhook_fields(webhook)))


@webhooks_app.command("delete")
def delete_webhook(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Delete a webhook and cancel its pending deliveries."""
    with api_client(api_key, base_url) as client:
        deleted = client.webhooks.delete(webhook_id)
    if json_output:
        print_json(deleted.to_dict())
        return
    note(f"deleted {deleted.id}")


@webhooks_app.command("test")
def test_webhook(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    event_type: str = typer.Option(
        None, "--type", help="The event type to send (default: generation.completed)."
    ),
    data: str = typer.Option(
        None, "--data", help="Event data as a JSON object (default: the catalog example)."
    ),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Send one signed test event now; exit with 1 unless the endpoint responds with 2xx."""
    with api_client(api_key, base_url) as client:
        result = client.webhooks.test(webhook_id, type=event_type, data=parse_data(data))
    if json_output:
        print_json(result.to_dict())
    else:
        output.print(
            fields_table(
                {
                    "event": f"{result.event.type} {result.event.id}",
                    "success": result.success,
                    "status_code": result.status_code,
                    "latency_ms": result.latency_ms,
                    "error": result.error,
                    "response_body": result.response_body,
                }
            )
        )
    if not result.success:
        raise typer.Exit(1)


def parse_moment(value: str, option: str) -> int:
    """Read Unix seconds, or a duration ago such as 30m, 2h or 7d."""
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    match = DURATION.fullmatch(text)
    if match is None:
        abort(
            f"{option} must be Unix seconds or a duration ago such as 30m, 2h or 7d, got {value!r}"
        )
    return int(time.time()) - int(match["amount"]) * DURATION_SECONDS[match["unit"]]


@webhooks_app.command("rotate-secret")
def rotate_secret(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    secret: str = typer.Option(None, "--secret", help="The new secret (default: a generated one)."),
    grace_period: float = typer.Option(
        None, "--grace-period", min=0, help="Seconds the old secrets keep signing (default: 24 h)."
    ),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Sign with a new secret from now on; it is shown now and never again."""
    with api_client(api_key, base_url) as client:
        webhook = client.webhooks.rotate_secret(
            webhook_id, secret=secret, grace_period=grace_period
        )
    if json_output:
        print_json(webhook.to_dict())
        return
    note(f"new signing secret (shown only now): {webhook.secret}")
    note(f"Standard Webhooks form: {webhook.standard_webhooks_secret}")
    if webhook.previous_secrets_expire_at is not None:
        expiry = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(webhook.previous_secrets_expire_at)
        )
        note(f"the old secrets keep signing until {expiry}")


@webhooks_app.command("replay")
def replay_webhook(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook id (webhook_…)."),
    since: str = typer.Option(
        ...,
        "--since",
        help="Deliveries created from then: Unix seconds, or a duration ago (2h, 7d).",
    ),
    until: str = typer.Option(
        None, "--until", help="Deliveries created before then (default: now)."
    ),
    event_types: list[str] = typer.Option(
        None, "--event-types", help="Only these event types; repeat or separate with commas."
    ),
    statuses: list[str] = typer.Option(
        None,
        "--status",
        help=f"Only deliveries in this state: {REPLAY_STATUS_NAMES} (default: failed).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the matching deliveries only."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Queue a webhook's past deliveries again, such as those that failed during an outage."""
    chosen = split_values(statuses)
    for status in chosen or []:
        if status not in REPLAY_STATUSES:
            abort(f"--status must be one of {REPLAY_STATUS_NAMES}, got {status!r}")
    start = parse_moment(since, "--since")
    end = None if until is None else parse_moment(until, "--until")
    with api_client(api_key, base_url) as client:
        result = client.webhooks.replay(
            webhook_id,
            since=start,
            until=end,
            event_types=split_values(event_types),
            status=cast(list[ReplayStatus] | None, chosen),
            dry_run=dry_run or None,
        )
    if json_output:
        print_json(result.to_dict())
    elif result.dry_run:
        note(f"{result.count} deliveries match; run again without --dry-run to send them")
    else:
        note(f"queued {result.count} deliveries of {result.webhook_id} again")
