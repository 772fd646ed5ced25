"""The event every scenario sends, and the signed headers the bare client and the peers add."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from ulid import ULID

from wp_llm._signing import sign_hex, sign_standard
from wp_llm.catalog import EVENT_TYPES
from wp_llm.server.store.events import build_envelope

EVENT_TYPE = "generation.completed"
# One secret for every endpoint the bench registers, so all systems do the same HMAC work.
ENDPOINT_SECRET = "bench-endpoint-secret-0123456789abcdef"
USER_AGENT = "wp-llm-bench/1"
# Length of `evt_` plus a ULID, so padding computed with a sample id fits every real id.
_SAMPLE_EVENT_ID = "evt_" + "0" * 26


def new_event_id() -> str:
    return f"evt_{ULID()}"


def new_delivery_id() -> str:
    return f"dlv_{ULID()}"


def event_data(envelope_bytes: int) -> dict[str, Any]:
    """Return catalog-valid `generation.completed` data whose envelope is `envelope_bytes` long.

    The catalog example is padded (or cut) in its `completion` text; the envelope
    includes the id and timestamp, so the size holds for every event.
    """
    data = copy.deepcopy(dict(EVENT_TYPES[EVENT_TYPE].example))
    data["completion"] = ""
    base = len(build_envelope(_SAMPLE_EVENT_ID, int(time.time()), EVENT_TYPE, data))
    data["completion"] = "x" * max(0, envelope_bytes - base)
    return data


def peer_envelope(event_id: str, data: dict[str, Any]) -> bytes:
    """Serialize an envelope the way a team's own dispatcher would: compact `json.dumps`."""
    envelope = {
        "id": event_id,
        "object": "event",
        "created": int(time.time()),
        "type": EVENT_TYPE,
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(event_id: str, delivery_id: str, body: bytes) -> dict[str, str]:
    """Build the same headers the service sends, signed with the bench secret."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-WP-LLM-Signature": sign_hex(ENDPOINT_SECRET, body),
        "X-WP-LLM-Event": EVENT_TYPE,
        "X-WP-LLM-Delivery": delivery_id,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard([ENDPOINT_SECRET], event_id, timestamp, body),
    }
