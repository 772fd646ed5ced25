"""Receive WP LLM webhooks in a Flask app.

Run it with the signing secret of your webhook endpoint:

    pip install "wp-llm[flask]"
    WP_LLM_WEBHOOK_SECRET=... flask --app examples/receive_flask.py run --port 8000

and register `https://<your host>/webhooks/wp-llm` as the endpoint URL.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from wp_llm.webhooks import (
    Event,
    GenerationCompletedEvent,
    MemoryDeduplicator,
    Webhook,
    WebhookReceiver,
)
from wp_llm.webhooks.flask import create_view

logger = logging.getLogger(__name__)


def read_secret() -> str:
    secret = os.environ.get("WP_LLM_WEBHOOK_SECRET", "")
    if not secret:
        raise SystemExit("Set WP_LLM_WEBHOOK_SECRET to the signing secret of your endpoint.")
    return secret


# One Flask process: an in-memory deduplicator is enough. Under several worker
# processes, use SQLiteDeduplicator or RedisDeduplicator instead.
receiver = WebhookReceiver(Webhook(read_secret()), deduplicator=MemoryDeduplicator())


@receiver.on("generation.completed")
def record_generation(event: GenerationCompletedEvent) -> None:
    usage = event.data.usage
    logger.info("generation %s used %d tokens", event.data.id, usage.total_tokens)


@receiver.on("usage.*")
def report_usage(event: Event[Any]) -> None:
    logger.warning("usage event %s: %s", event.type, event.data)


app = Flask(__name__)
app.add_url_rule("/webhooks/wp-llm", view_func=create_view(receiver), methods=["POST"])

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(port=8000)
