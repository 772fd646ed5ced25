"""Receive WP LLM webhooks in a FastAPI app.

Run it with the signing secret of your webhook endpoint:

    pip install wp-llm fastapi uvicorn
    WP_LLM_WEBHOOK_SECRET=... python examples/receive_fastapi.py

and register `https://<your host>/webhooks/wp-llm` as the endpoint URL.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import FastAPI

from wp_llm.webhooks import (
    Event,
    GenerationCompletedEvent,
    MemoryDeduplicator,
    Webhook,
    WebhookReceiver,
)
from wp_llm.webhooks.fastapi import create_endpoint

logger = logging.getLogger(__name__)


def read_secret() -> str:
    secret = os.environ.get("WP_LLM_WEBHOOK_SECRET", "")
    if not secret:
        raise SystemExit("Set WP_LLM_WEBHOOK_SECRET to the signing secret of your endpoint.")
    return secret


# One server process: an in-memory deduplicator is enough. Under several worker
# processes, use SQLiteDeduplicator or RedisDeduplicator instead.
receiver = WebhookReceiver(Webhook(read_secret()), deduplicator=MemoryDeduplicator())


@receiver.on("generation.completed")
async def record_generation(event: GenerationCompletedEvent) -> None:
    usage = event.data.usage
    logger.info("generation %s used %d tokens", event.data.id, usage.total_tokens)


@receiver.on("usage.*")
def report_usage(event: Event[Any]) -> None:
    # A plain def handler runs in a worker thread, so blocking calls are fine here.
    logger.warning("usage event %s: %s", event.type, event.data)


app = FastAPI()
app.add_api_route(
    "/webhooks/wp-llm", create_endpoint(receiver), methods=["POST"], include_in_schema=False
)

if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=8000)
