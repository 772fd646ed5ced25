"""The API's JSON form of stored rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wp_llm.server.engine.netguard import redact_url
from wp_llm.server.ids import now_ms
from wp_llm.server.store.pagination import Page


def webhook_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return the webhook with its delivery settings and health, never with its secrets."""
    schedule = row["retry_schedule"]
    circuit_open = row["circuit_state"] == "open"
    paused_until = row["paused_until"]
    if paused_until is not None and paused_until <= now_ms():
        paused_until = None
    return {
        "id": row["id"],
        "object": "webhook",
        "url": redact_url(row["url"]),
        "description": row["description"],
        "events": json.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "status": "enabled" if row["enabled"] else "disabled",
        "disabled_reason": row["disabled_reason"],
        "disabled_at": _seconds(row["disabled_at"]),
        "rate_limit": row["rate_limit"],
        "max_concurrency": row["max_concurrency"],
        "timeout": row["timeout"],
        "retry_schedule": None if schedule is None else json.loads(schedule),
        "circuit_state": row["circuit_state"],
        "consecutive_failures": row["consecutive_failures"],
        "failing_since": _seconds(row["failing_since"]),
        "next_probe_at": _seconds(row["circuit_retry_at"]) if circuit_open else None,
        "paused_until": _seconds(paused_until),
        "created": row["created"],
        "updated": row["updated"],
    }


def _seconds(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def attempt_object(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "attempt",
        "attempted_at": _seconds(row["attempted_at"]),
        "outcome": row["outcome"],
        "status_code": row["status_code"],
        "latency_ms": row["latency_ms"],
        "error": row["error"],
        "response_body": row["response_body"],
        "response_truncated": bool(row["response_truncated"]),
    }


def delivery_object(row: Mapping[str, Any]) -> dict[str, Any]:
    result = {
        "id": row["id"],
        "object": "delivery",
        "event_id": row["event_id"],
        "webhook_id": row["webhook_id"],
        "event_type": row["event_type"],
        "status": row["status"],
        "attempt_count": row["attempt_count"],
        "next_attempt_at": _seconds(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "last_attempt_at": _seconds(row["last_attempt_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "created": row["created"],
    }
    if "attempts" in row:
        result["attempts"] = [attempt_object(a) for a in row["attempts"]]
    return result


def list_object(items: Sequence[dict[str, Any]], page: Page) -> dict[str, Any]:
    return {"object": "list", "data": list(items), "has_more": page.has_more}
