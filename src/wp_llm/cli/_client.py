"""Client commands of `wp-llm`: publish events, read the delivery log, and listen locally.

Importing this module registers every command that talks to a running service,
the `webhooks` group included.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.table import Table

from wp_llm import catalog, exceptions
from wp_llm._client import Client, DeliveryStatus, Webhook
from wp_llm.cli import _webhooks  # noqa: F401 - registers the `webhooks` commands
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
    utc_text,
)
from wp_llm.cli._app import app
from wp_llm.cli._listen import LISTEN_HOST, ForwardedDelivery, ForwardingServer

deliveries_app = typer.Typer(help="Read the delivery log and redeliver.", no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")

DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
STOP_POLL_SECONDS = 0.5
# Fields of a delivery in Unix seconds, which `deliveries get` shows as UTC times.
DELIVERY_TIMES = frozenset({"created", "next_attempt_at", "last_attempt_at"})


@app.command()
def trigger(
    event_type: str = typer.Argument(
        ..., metavar="TYPE", help="A catalog event type, such as generation.completed."
    ),
    data: str = typer.Option(
        None, "--data", help="Event data as a JSON object (default: the catalog example)."
    ),
    account: str = typer.Option(
        None, "--account", help="With a service key: the account to publish to."
    ),
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Publish an event; with no --data, the catalog's example payload of TYPE."""
    if event_type not in catalog.EVENT_TYPES:
        abort(f"unknown event type {event_type!r}; valid types: {', '.join(catalog.EVENT_TYPES)}")
    payload = parse_data(data)
    if payload is None:
        payload = dict(catalog.EVENT_TYPES[event_type].example)
    with api_client(api_key, base_url) as client:
        event = client.events.create(type=event_type, data=payload, account=account)
    note(f"published {event.type} as {event.id}")
    typer.echo(json.dumps(event.to_dict(), ensure_ascii=False))


@deliveries_app.command("list")
def list_deliveries(
    webhook_id: str = typer.Option(None, "--webhook", help="Only deliveries to this webhook id."),
    event_id: str = typer.Option(None, "--event", help="Only deliveries of this event id."),
    status: str = typer.Option(
        None, "--status", help=f"Only deliveries in this state: {', '.join(DELIVERY_STATUSES)}."
    ),
    limit: int = LIMIT_OPTION,
    starting_after: str = typer.Option(
        None, "--starting-after", help="Show deliveries older than this id."
    ),
    every_page: bool = ALL_OPTION,
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """List deliveries, newest first."""
    if status is not None and status not in DELIVERY_STATUSES:
        abort(f"--status must be one of {', '.join(DELIVERY_STATUSES)}, got {status!r}")
    with api_client(api_key, base_url) as client:
        page = client.deliveries.list(
            webhook_id=webhook_id,
            event_id=event_id,
            status=status,  # type: ignore[arg-type]
            limit=limit,
            starting_after=starting_after,
        )
        deliveries, has_more = collect(page, every_page)
    if json_output:
        print_json(page_json(deliveries, has_more))
        return
    table = Table("id", "event", "webhook", "status", "attempts", "last status")
    table.columns[0].no_wrap = True
    for delivery in deliveries:
        last = "" if delivery.last_status_code is None else str(delivery.last_status_code)
        table.add_row(
            delivery.id,
            delivery.event_type,
            delivery.webhook_id,
            delivery.status,
            str(delivery.attempt_count),
            last,
        )
    output.print(table)
    show_more_hint(has_more, deliveries, "wp-llm deliveries list")


@deliveries_app.command("get")
def get_delivery(
    delivery_id: str = typer.Argument(..., metavar="ID", help="The delivery id (dlv_…)."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Show one delivery and each of its attempts."""
    with api_client(api_key, base_url) as client:
        delivery = client.deliveries.retrieve(delivery_id)
    if json_output:
        print_json(delivery.to_dict())
        return
    summary = {
        name: utc_text(value) if name in DELIVERY_TIMES else value
        for name, value in delivery.to_dict().items()
        if name not in {"object", "attempts"}
    }
    output.print(fields_table(summary))
    attempts = Table("attempted_at", "outcome", "status", "latency_ms", "error")
    for attempt in delivery.attempts or []:
        status = "" if attempt.status_code is None else str(attempt.status_code)
        attempts.add_row(
            utc_text(attempt.attempted_at),
            attempt.outcome,
            status,
            str(attempt.latency_ms),
            escape(attempt.error or ""),
        )
    output.print(attempts)


@deliveries_app.command("retry")
def retry_delivery(
    delivery_id: str = typer.Argument(..., metavar="ID", help="The delivery id (dlv_…)."),
    json_output: bool = JSON_OPTION,
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Send a delivery again now, even one that has succeeded or failed for good."""
    with api_client(api_key, base_url) as client:
        delivery = client.deliveries.retry(delivery_id)
    if json_output:
        print_json(delivery.to_dict())
        return
    output.print(f"{delivery.id} is {delivery.status}; the delivery engine sends it next")


def checked_forward_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        abort(
            "--forward-to must be an http:// or https:// URL such as "
            f"http://localhost:3000/webhooks, got {url!r}"
        )
    return url


def start_forwarding(forward_to: str, port: int) -> ForwardingServer:
    try:
        return ForwardingServer(forward_to, port, print_forwarded).start()
    except OSError as error:
        abort(
            f"cannot listen on {LISTEN_HOST}:{port} ({error.strerror}); "
            "pass another --port, or 0 for any free one"
        )


def print_forwarded(delivery: ForwardedDelivery) -> None:
    moment = time.strftime("%H:%M:%S")
    outcome = delivery.error or f"{delivery.latency_ms} ms"
    output.print(
        f"{moment}  {escape(delivery.event_type)}  {escape(delivery.event_id)}  "
        f"-> {delivery.status_code} ({escape(outcome)})"
    )
    output.file.flush()


def register_listener(client: Client, url: str, events: list[str], secret: str | None) -> Webhook:
    try:
        return client.webhooks.create(
            url=url,
            events=events,
            secret=secret,
            description="temporary webhook of `wp-llm listen`",
        )
    except exceptions.ValidationError as error:
        if error.code != "url_not_allowed":
            raise
        abort(
            f"the service at {client.base_url} refused the listener's address {url}: "
            f"{error.message} "
            "`wp-llm listen` needs a service on this machine started with "
            "`wp-llm serve --allow-private-networks` (or WP_LLM_ALLOW_PRIVATE_NETWORKS=1).",
            code=1,
        )


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """Turn Ctrl-C and SIGTERM into a set event while the block runs, so cleanup can follow."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def remove_listener(client: Client, webhook: Webhook) -> None:
    try:
        client.webhooks.delete(webhook.id)
    except exceptions.NotFoundError:
        pass
    except exceptions.WPLLMError as error:
        note(
            f"could not delete the temporary webhook {webhook.id} ({error}); "
            f"delete it with `wp-llm webhooks delete {webhook.id}`"
        )
        return
    note(f"deleted the temporary webhook {webhook.id}")


LISTEN_HELP = (
    "Forward deliveries to a local app, without a tunnel.\n\n"
    "Starts a server on 127.0.0.1, registers a temporary webhook that points at it, forwards "
    "each delivery's exact body and headers to --forward-to, and responds to the service with "
    "your app's status. "
    "Ctrl-C or SIGTERM deletes the webhook. The service must run on this machine and allow private "
    "networks: start it with `wp-llm serve --allow-private-networks`."
)


@app.command(help=LISTEN_HELP)
def listen(
    forward_to: str = typer.Option(
        ...,
        "--forward-to",
        help="Your app's URL that gets each delivery, such as http://localhost:3000/webhooks.",
    ),
    port: int = typer.Option(
        0,
        "--port",
        min=0,
        max=65535,
        help="Port on 127.0.0.1 that the service delivers to (default: any free port).",
    ),
    events: list[str] = typer.Option(
        None,
        "--events",
        help="Event types to subscribe to (default: *); repeat or separate with commas.",
    ),
    secret: str = typer.Option(
        None,
        "--secret",
        help="Signing secret of the temporary webhook, so your app can keep its setting.",
    ),
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    forward_to = checked_forward_url(forward_to)
    with api_client(api_key, base_url) as client, stop_signals() as stop:
        server = start_forwarding(forward_to, port)
        try:
            webhook = register_listener(client, server.url, split_values(events) or ["*"], secret)
            note(
                f"forwarding {', '.join(webhook.events)} to {forward_to} "
                f"through webhook {webhook.id}"
            )
            note(
                f"signing secret: {webhook.secret} "
                f"(Standard Webhooks form: {webhook.standard_webhooks_secret})"
            )
            note("ready; press Ctrl-C to stop and delete the webhook")
            try:
                while not stop.wait(STOP_POLL_SECONDS):
                    pass
            finally:
                remove_listener(client, webhook)
        finally:
            server.stop()
