"""Receive WP LLM webhooks in a single-file Django app.

Run it with the signing secret of your webhook endpoint:

    pip install "wp-llm[django]"
    WP_LLM_WEBHOOK_SECRET=... python examples/receive_django.py runserver 8000

and register `https://<your host>/webhooks/wp-llm` as the endpoint URL. Handled event
ids are recorded in the SQLite file named by WP_LLM_DEDUPLICATION_DATABASE (default:
received-events.sqlite3 in the working directory). In a full project, put the
receiver in an app module and the `path(...)` line in its urls.py.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from typing import Any

from django.conf import settings
from django.urls import path

from wp_llm.webhooks import (
    Event,
    GenerationCompletedEvent,
    SQLiteDeduplicator,
    Webhook,
    WebhookReceiver,
)
from wp_llm.webhooks.django import create_view

# Configure only when run on its own, so that a project or a test suite can import
# this module under its own settings.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        # This app keeps no sessions or signed cookies, so a random key per start will do.
        SECRET_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=["localhost", "127.0.0.1", "[::1]"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
    )

logger = logging.getLogger(__name__)


def read_secret() -> str:
    secret = os.environ.get("WP_LLM_WEBHOOK_SECRET", "")
    if not secret:
        raise SystemExit("Set WP_LLM_WEBHOOK_SECRET to the signing secret of your endpoint.")
    return secret


webhook = Webhook(read_secret())
# Django often runs under several worker processes; an SQLite file shared by them
# lets exactly one process handle each event.
deduplicator = SQLiteDeduplicator(
    os.environ.get("WP_LLM_DEDUPLICATION_DATABASE", "received-events.sqlite3")
)
receiver = WebhookReceiver(webhook, deduplicator=deduplicator)


@receiver.on("generation.completed")
def record_generation(event: GenerationCompletedEvent) -> None:
    usage = event.data.usage
    logger.info("generation %s used %d tokens", event.data.id, usage.total_tokens)


@receiver.on("usage.*")
def report_usage(event: Event[Any]) -> None:
    logger.warning("usage event %s: %s", event.type, event.data)


urlpatterns = [path("webhooks/wp-llm", create_view(receiver))]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    logging.basicConfig(level=logging.INFO)
    execute_from_command_line(sys.argv)
