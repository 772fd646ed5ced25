"""Commands that talk to a running service over its API."""

from __future__ import annotations

import json
import os

import httpx
import typer

from wp_llm import catalog
from wp_llm.cli._app import app, console, fail

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
REQUEST_TIMEOUT_SECONDS = 30.0

API_KEY_OPTION = typer.Option(None, "--api-key", envvar="WP_LLM_API_KEY", help="API key [env: WP_LLM_API_KEY].")
BASE_URL_OPTION = typer.Option(
    None, "--base-url", envvar="WP_LLM_BASE_URL", help=f"Service URL [default: {DEFAULT_BASE_URL}]."
)


def request_api(method: str, path: str, api_key: str | None, base_url: str | None, **kwargs: object) -> dict:
    """Call the API and return the JSON answer; print the error envelope's message on failure."""
    if not api_key:
        fail("no API key: pass --api-key or set WP_LLM_API_KEY (create one with `wp-llm keys create --account NAME`)")
    url = (base_url or os.environ.get("WP_LLM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/") + path
    try:
        response = httpx.request(method, url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        fail(f"cannot reach the service at {url}: {error}; is `wp-llm serve` running?")
    try:
        payload = response.json()
    except ValueError:
        fail(f"{method} {path} answered {response.status_code} with a body that is not JSON")
    if response.status_code >= 400:
        error = payload.get("error", {})
        fail(f"{method} {path} failed ({response.status_code} {error.get('type')}): {error.get('message')}")
    return payload  # type: ignore[no-any-return]


@app.command()
def trigger(
    event_type: str = typer.Argument(..., metavar="TYPE", help="A catalog event type, such as generation.completed."),
    data: str = typer.Option(None, "--data", help="Event data as JSON [default: the catalog example]."),
    account: str = typer.Option(None, "--account", help="With a service key: the account to publish to."),
    api_key: str = API_KEY_OPTION,
    base_url: str = BASE_URL_OPTION,
) -> None:
    """Publish an event; with no --data, the catalog's example payload of TYPE."""
    if event_type not in catalog.EVENT_TYPES:
        fail(f"unknown event type {event_type!r}; valid types: {', '.join(catalog.EVENT_TYPES)}")
    if data is None:
        payload = catalog.EVENT_TYPES[event_type].example
    else:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as error:
            fail(f"--data is not valid JSON: {error}")
    body: dict[str, object] = {"type": event_type, "data": payload}
    if account:
        body["account"] = account
    event = request_api("POST", "/v1/events", api_key, base_url, json=body)
    console.print(f"published {event['type']} as {event['id']}", highlight=False)
    typer.echo(json.dumps(event, ensure_ascii=False))
