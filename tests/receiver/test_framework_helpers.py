"""Flask, FastAPI and Django helpers, tested on the examples through each framework's client."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from django.test.utils import override_settings
from fastapi.testclient import TestClient

from wp_llm.webhooks import Event, GenerationCompletedEvent, Webhook, WebhookReceiver

from .samples import EVENT_ID, SECRET, event_body

if not settings.configured:
    settings.configure(SECRET_KEY="test-only-key", ALLOWED_HOSTS=["testserver"])
    django.setup()

PATH = "/webhooks/wp-llm"
BODY = event_body()
Answer = tuple[int, str, Any]


@dataclass
class ExampleApp:
    """An example app, its receiver, and requests sent through the framework's test client."""

    module: ModuleType
    receiver: WebhookReceiver
    post: Callable[[bytes, dict[str, str]], Answer]
    get: Callable[[], int]


def flask_app(module: ModuleType) -> Iterator[ExampleApp]:
    client = module.app.test_client()

    def post(body: bytes, headers: dict[str, str]) -> Answer:
        response = client.post(PATH, data=body, headers=headers)
        return response.status_code, response.mimetype, response.get_json()

    yield ExampleApp(module, module.receiver, post, lambda: client.get(PATH).status_code)


def fastapi_app(module: ModuleType) -> Iterator[ExampleApp]:
    with TestClient(module.app) as client:

        def post(body: bytes, headers: dict[str, str]) -> Answer:
            response = client.post(PATH, content=body, headers=headers)
            return response.status_code, response.headers["content-type"], response.json()

        yield ExampleApp(module, module.receiver, post, lambda: client.get(PATH).status_code)


def django_app(module: ModuleType) -> Iterator[ExampleApp]:
    # CSRF checks on, as in a real project: the helper's view must be exempt.
    client = DjangoClient(enforce_csrf_checks=True)
    middleware = ["django.middleware.csrf.CsrfViewMiddleware"]

    def post(body: bytes, headers: dict[str, str]) -> Answer:
        extra = {name: value for name, value in headers.items() if name != "Content-Type"}
        response = client.post(PATH, body, content_type="application/json", headers=extra)
        return response.status_code, response["Content-Type"], response.json()

    with override_settings(ROOT_URLCONF=module, MIDDLEWARE=middleware):
        yield ExampleApp(module, module.receiver, post, lambda: client.get(PATH).status_code)
    module.deduplicator.close()


FRAMEWORKS = {
    "flask": ("receive_flask.py", flask_app),
    "fastapi": ("receive_fastapi.py", fastapi_app),
    "django": ("receive_django.py", django_app),
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def app(
    request: pytest.FixtureRequest, load_example: Callable[[str], ModuleType]
) -> Iterator[ExampleApp]:
    file_name, build = FRAMEWORKS[request.param]
    yield from build(load_example(file_name))


def signed(body: bytes = BODY) -> dict[str, str]:
    return Webhook(SECRET).sign(body)


def test_helper_handled_delivery_answers_200(app: ExampleApp) -> None:
    received: list[Event[Any]] = []
    app.receiver.on("*")(received.append)

    status, content_type, answer = app.post(BODY, signed())

    assert status == 200
    assert content_type.startswith("application/json")
    assert answer == {
        "received": True,
        "id": EVENT_ID,
        "type": "generation.completed",
        "handled": True,
    }
    assert isinstance(received[0], GenerationCompletedEvent)


def test_helper_runs_example_handler(app: ExampleApp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=app.module.__name__):
        app.post(BODY, signed())

    assert "used 52 tokens" in caplog.text


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({"X-WP-LLM-Signature": "0" * 64}, 401, "signature_mismatch"),
        ({"X-WP-LLM-Signature": "sha256=" + "0" * 64}, 401, "malformed_signature"),
        ({"Content-Type": "application/json"}, 400, "missing_header"),
    ],
)
def test_helper_rejected_delivery_answers_error_json(
    app: ExampleApp, headers: dict[str, str], status: int, error_type: str
) -> None:
    answer_status, content_type, answer = app.post(BODY, headers)

    assert answer_status == status
    assert content_type.startswith("application/json")
    assert answer["error"]["type"] == error_type


def test_helper_signed_non_json_answers_400(app: ExampleApp) -> None:
    body = b"<xml>not json</xml>"

    status, _, answer = app.post(body, Webhook(SECRET).sign(body, event_id="evt_xml"))

    assert status == 400
    assert answer["error"]["type"] == "invalid_payload"


def test_helper_duplicate_answers_200_with_note(app: ExampleApp) -> None:
    app.post(BODY, signed())

    status, _, answer = app.post(BODY, signed())

    assert status == 200
    assert answer["duplicate"] is True


def test_helper_failing_handler_answers_500_then_retry_succeeds(app: ExampleApp) -> None:
    attempts: list[str] = []

    @app.receiver.on("generation.completed")
    def fail_first_attempt(event: GenerationCompletedEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("downstream service unavailable")

    first_status, _, first = app.post(BODY, signed())
    retry_status, _, retry = app.post(BODY, signed())

    assert first_status == 500
    assert first["error"]["type"] == "handler_failed"
    assert retry_status == 200
    assert retry["handled"] is True


def test_helper_unhandled_type_answers_200_and_says_so(app: ExampleApp) -> None:
    body = event_body("system.maintenance")

    status, _, answer = app.post(body, signed(body))

    assert status == 200
    assert answer["handled"] is False
    assert "system.maintenance" in answer["note"]


def test_helper_get_is_not_allowed(app: ExampleApp) -> None:
    assert app.get() == 405


@pytest.mark.parametrize("file_name", sorted(name for name, _ in FRAMEWORKS.values()))
def test_example_without_secret_exits_with_message(
    load_example: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    file_name: str,
) -> None:
    monkeypatch.delenv("WP_LLM_WEBHOOK_SECRET")

    with pytest.raises(SystemExit, match="WP_LLM_WEBHOOK_SECRET"):
        load_example(file_name)


def test_flask_helper_reads_body_after_app_parsed_json(
    load_example: Callable[[str], ModuleType],
) -> None:
    from flask import request

    module = load_example("receive_flask.py")
    parsed: list[Any] = []
    # Another part of the app parses the JSON before the view runs.
    module.app.before_request(lambda: parsed.append(request.get_json(silent=True)))

    response = module.app.test_client().post(PATH, data=BODY, headers=signed())

    assert parsed[0]["id"] == EVENT_ID
    assert response.status_code == 200
