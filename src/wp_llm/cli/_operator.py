"""Operator commands on the database: accounts, their limits and usage, and announcements."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wp_llm.cli._api import utc_text
from wp_llm.cli._app import app, fail
from wp_llm.cli._server import DATA_DIR_OPTION, DATABASE_OPTION, _engine, _settings

accounts_app = typer.Typer(
    help="List accounts, show their usage and set their limits.", no_args_is_help=True
)
announce_app = typer.Typer(
    help="Publish a platform announcement to every account whose webhooks subscribe to it.",
    no_args_is_help=True,
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(announce_app, name="announce")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
output = Console()


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    """Turn a database failure into an error message instead of a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:
        reason = getattr(error, "orig", None) or error
        fail(
            f"the database request failed: {str(reason)[:300]}; "
            "check --database and that the database server is running"
        )


def _open(database: str | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    """Return the settings and a migrated engine."""
    settings = _settings(database_url=database, data_dir=data_dir)
    with _database_errors():
        engine = _engine(database, data_dir, must_exist=True)
    return settings, engine


def _now(settings: Any) -> float:
    from wp_llm.server.usage.clock import create_clock

    return create_clock(settings.clock_offset_file).now()


def _find_account_id(engine: Any, name_or_id: str) -> str:
    from wp_llm.server.store import accounts

    with _database_errors():
        found = accounts.find_account(engine, name_or_id)
    if found is None:
        fail(f"no account with id or name {name_or_id!r}; list them with `wp-llm accounts list`")
    return str(found["id"])  # type: ignore[index]


# --- Effective limits -------------------------------------------------------------------


def _effective(usage: Any, settings: Any) -> dict[str, Any]:
    """Return the limits in force for an account, and which of them the account overrides."""
    from wp_llm.server.usage.ratelimit import resolve_limit

    limits = usage.limits
    rate = resolve_limit(
        limits.rate_limit, limits.rate_limit_burst, settings.rate_limit, settings.rate_limit_burst
    )
    quota = settings.event_quota if limits.event_quota is None else limits.event_quota
    return {
        "rate_limit": rate.rate,
        "rate_limit_burst": rate.burst,
        "event_quota": quota,
        "overrides": {key: value for key, value in asdict(limits).items() if value is not None},
    }


def _rate_text(effective: dict[str, Any]) -> str:
    if effective["rate_limit"] <= 0:
        return "unlimited"
    return f"{effective['rate_limit']:g}/s, burst {effective['rate_limit_burst']}"


def _quota_text(effective: dict[str, Any]) -> str:
    return "unlimited" if effective["event_quota"] <= 0 else str(effective["event_quota"])


def _marked(text: str, overridden: bool) -> str:
    return f"{text} *" if overridden else text


def _account_object(usage: Any, settings: Any, period: Any) -> dict[str, Any]:
    return {
        "id": usage.id,
        "name": usage.name,
        "created": usage.created,
        "live_keys": usage.live_keys,
        "period_start": period.start,
        "period_end": period.end,
        "events": usage.events,
        "warned_percent": usage.warned_percent,
        "quota_notified": usage.quota_notified,
        **_effective(usage, settings),
    }


# --- accounts ---------------------------------------------------------------------------


@accounts_app.command("list")
def list_accounts(
    as_json: bool = JSON_OPTION,
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """List accounts with their live keys, events this month (UTC), quota and rate limit."""
    from wp_llm.server.store import usage as usage_store
    from wp_llm.server.usage.quota import month_period

    settings, engine = _open(database, data_dir)
    period = month_period(_now(settings))
    with _database_errors():
        rows = usage_store.list_account_usage(engine, period)
    objects = [_account_object(row, settings, period) for row in rows]
    if as_json:
        typer.echo(json.dumps(objects))
        return
    output.print(_accounts_table(objects, period.label))


def _accounts_table(objects: list[dict[str, Any]], label: str) -> Table:
    marked = any(item["overrides"] for item in objects)
    caption = "* set for this account" if marked else None
    table = Table(title=f"Accounts, usage in {label} (UTC)", caption=caption)
    for header in ("id", "name", "keys"):
        table.add_column(header, no_wrap=True)
    table.add_column(f"events in {label}", justify="right")
    table.add_column("quota", justify="right")
    table.add_column("rate limit")
    for item in objects:
        overrides = item["overrides"]
        table.add_row(
            item["id"],
            escape(item["name"]),
            str(item["live_keys"]),
            str(item["events"]),
            _marked(_quota_text(item), "event_quota" in overrides),
            _marked(_rate_text(item), "rate_limit" in overrides or "rate_limit_burst" in overrides),
        )
    return table


@accounts_app.command("show")
def show_account(
    name: str = typer.Argument(..., metavar="NAME", help="The account's name or id."),
    as_json: bool = JSON_OPTION,
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Show an account's keys, limits and usage in the current month (UTC)."""
    from wp_llm.server.store import accounts
    from wp_llm.server.store import usage as usage_store
    from wp_llm.server.usage.quota import month_period

    settings, engine = _open(database, data_dir)
    account_id = _find_account_id(engine, name)
    period = month_period(_now(settings))
    with _database_errors():
        [usage] = usage_store.list_account_usage(engine, period, account_id)
        keys = accounts.list_keys(engine, account_id)
    item = {**_account_object(usage, settings, period), "keys": keys}
    if as_json:
        typer.echo(json.dumps(item))
        return
    _print_account(item)


def _print_account(item: dict[str, Any]) -> None:
    overrides = item["overrides"]
    source = {True: "(set for this account)", False: "(operator default)"}
    rate_overridden = "rate_limit" in overrides or "rate_limit_burst" in overrides
    quota = item["event_quota"]
    share = f" ({item['events'] * 100 // quota}%)" if quota > 0 else ""

    output.print(
        f"[bold]{escape(item['name'])}[/bold] {item['id']}, created {utc_text(item['created'])}"
    )
    output.print(f"rate limit   {_rate_text(item)} {source[rate_overridden]}", highlight=False)
    output.print(
        f"event quota  {_quota_text(item)} {source['event_quota' in overrides]}", highlight=False
    )
    output.print(
        f"usage        {item['events']} events{share} from {utc_text(item['period_start'])} "
        f"to {utc_text(item['period_end'])}",
        highlight=False,
    )
    warned = f"{item['warned_percent']}%" if item["warned_percent"] else "none"
    notified = "sent" if item["quota_notified"] else "not sent"
    output.print(
        f"notices      highest warning {warned}, quota exceeded {notified}", highlight=False
    )
    output.print(f"keys         {item['live_keys']} live", highlight=False)
    for key in item["keys"]:
        state = f"revoked {utc_text(key['revoked_at'])}" if key["revoked_at"] else "live"
        output.print(
            f"  {key['id']}  {key['hint']}…  created {utc_text(key['created'])}  {state}",
            highlight=False,
        )


@accounts_app.command("set-limits")
def set_limits(
    name: str = typer.Argument(..., metavar="NAME", help="The account's name or id."),
    rate_limit: float = typer.Option(
        None,
        "--rate-limit",
        min=0,
        help="Requests per second for each of the account's keys; 0 means unlimited.",
    ),
    burst: int = typer.Option(
        None, "--burst", min=1, help="Requests a key may send at once before the rate applies."
    ),
    event_quota: int = typer.Option(
        None,
        "--event-quota",
        min=0,
        help="Events the account may publish per calendar month (UTC); 0 means unlimited.",
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Remove every override: the operator's defaults apply again."
    ),
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Override an account's rate limit, burst or event quota, then show the account.

    Running services apply the change at once.
    """
    from wp_llm.server.store import usage as usage_store

    changes = {
        key: value
        for key, value in {
            "rate_limit": rate_limit,
            "rate_limit_burst": burst,
            "event_quota": event_quota,
        }.items()
        if value is not None
    }
    if clear and changes:
        fail(
            "--clear removes every override, so pass it alone; "
            "then set new limits in a second command"
        )
    if not clear and not changes:
        fail("nothing to change: pass --rate-limit, --burst, --event-quota or --clear")

    settings, engine = _open(database, data_dir)
    account_id = _find_account_id(engine, name)
    with _database_errors():
        if clear:
            usage_store.clear_account_limits(engine, account_id)
        else:
            usage_store.set_account_limits(engine, account_id, changes)
    show_account(account_id, as_json=False, database=database, data_dir=data_dir)


# --- announce ---------------------------------------------------------------------------


def _counted(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def _announce(event_type: str, data: dict[str, Any], engine: Any) -> None:
    from wp_llm.server.store import usage as usage_store
    from wp_llm.server.validation import validate_event_data

    problems = validate_event_data(event_type, data)
    if problems:
        fail(f"invalid {problems[0].field}: {problems[0].message}")
    with _database_errors():
        published = usage_store.publish_announcement(engine, event_type, data)
    if not published:
        typer.echo(
            f"no account has an enabled webhook subscribed to {event_type}; nothing was published"
        )
        return
    deliveries = sum(len(event.delivery_ids) for event in published)
    accounts_text = _counted(len(published), "account", "accounts")
    deliveries_text = _counted(deliveries, "delivery", "deliveries")
    typer.echo(f"published {event_type} to {accounts_text} ({deliveries_text})")


@announce_app.command("maintenance")
def announce_maintenance(
    message: str = typer.Option(..., "--message", help="The announcement for the accounts' users."),
    starts_at: str = typer.Option(
        None,
        "--starts-at",
        help="Start of the window, ISO 8601 with an offset, such as 2024-02-04T02:00:00Z.",
    ),
    ends_at: str = typer.Option(
        None, "--ends-at", help="Expected end of the window, ISO 8601 with an offset."
    ),
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Publish system.maintenance to every account whose enabled webhooks subscribe to it."""
    from wp_llm.server.usage import announcements

    settings = _settings(database_url=database, data_dir=data_dir)
    try:
        data = announcements.maintenance_data(message, starts_at, ends_at, now=_now(settings))
    except announcements.AnnouncementError as error:
        fail(str(error))
    _, engine = _open(database, data_dir)
    _announce(announcements.MAINTENANCE, data, engine)


@announce_app.command("update")
def announce_update(
    message: str = typer.Option(..., "--message", help="The announcement for the accounts' users."),
    version: str = typer.Option(
        None, "--version", help="The new platform version, if the update has one."
    ),
    published_at: str = typer.Option(
        None, "--published-at", help="When the update went live, ISO 8601 (default: now)."
    ),
    starts_at: str = typer.Option(
        None, "--starts-at", help="Start of the roll-out window, ISO 8601 with an offset."
    ),
    ends_at: str = typer.Option(
        None, "--ends-at", help="End of the roll-out window, ISO 8601 with an offset."
    ),
    database: str = DATABASE_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Publish system.update to every account whose enabled webhooks subscribe to it."""
    from wp_llm.server.usage import announcements

    settings = _settings(database_url=database, data_dir=data_dir)
    try:
        data = announcements.update_data(
            message, version, published_at, now=_now(settings), starts_at=starts_at, ends_at=ends_at
        )
    except announcements.AnnouncementError as error:
        fail(str(error))
    _, engine = _open(database, data_dir)
    _announce(announcements.UPDATE, data, engine)
