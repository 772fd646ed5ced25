"""Valid `data` objects for every catalog type, and helpers that build delivery bodies."""

from __future__ import annotations

import json
from typing import Any

SECRET = "whk_test_4f2b9c1e8a7d6053"
NOW = 1_640_995_200
EVENT_ID = "evt_01JB5XK6Q3ZV8N2M4P7R9T1W3Y"

_ERROR = {"code": "model_overloaded", "message": "The model is overloaded."}
_GENERATION = {
    "id": "gen_01JB5XK6Q3",
    "object": "text_generation",
    "created": NOW,
    "model": "wp-llm-code-2",
    "prompt": "Write a WordPress shortcode that lists recent posts.",
}
_ANALYSIS = {"id": "ana_01JB5XK6Q3", "object": "code_analysis", "created": NOW}
_TRAINING = {
    "id": "run_01JB5XK6Q3",
    "object": "training_run",
    "created": NOW,
    "model": "wp-llm-code-2",
    "status": "running",
}

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "generation.started": _GENERATION,
    "generation.completed": _GENERATION
    | {
        "completion": "<?php add_shortcode('recent_posts', 'wp_llm_recent_posts');",
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
        "finish_reason": "stop",
    },
    "generation.failed": _GENERATION | {"error": _ERROR},
    "analysis.completed": _ANALYSIS
    | {
        "issues": [
            {
                "type": "security",
                "severity": "high",
                "line": 14,
                "message": "Unescaped output.",
                "suggestion": "Wrap the value in esc_html().",
            }
        ],
        "score": 82.5,
        "recommendations": ["Escape all output."],
    },
    "analysis.failed": _ANALYSIS | {"error": _ERROR},
    "model.training.started": _TRAINING,
    "model.training.completed": _TRAINING
    | {"status": "succeeded", "fine_tuned_model": "wp-llm-code-2:acme", "trained_tokens": 120_000},
    "model.training.failed": _TRAINING | {"status": "failed", "error": _ERROR},
    "usage.limit_exceeded": {
        "limit": 60,
        "current_usage": 61,
        "reset_time": NOW + 60,
        "retry_after": 60,
    },
    "usage.quota_exceeded": {
        "quota": 1_000_000,
        "current_usage": 1_000_012,
        "period_start": NOW - 86_400,
        "period_end": NOW + 86_400,
    },
    "usage.warning": {
        "quota": 1_000_000,
        "current_usage": 800_000,
        "threshold": 80,
        "period_start": NOW - 86_400,
        "period_end": NOW + 86_400,
    },
    "system.maintenance": {
        "message": "Database upgrade.",
        "starts_at": NOW + 3_600,
        "ends_at": NOW + 7_200,
    },
    "system.update": {"message": "Version 2.1 is out.", "version": "2.1.0", "published_at": NOW},
    "webhook.disabled": {
        "webhook_id": "webhook_01JB5XK6Q3",
        "url": "https://example.com/hooks",
        "reason": "Every delivery failed for three days.",
        "disabled_at": NOW,
        "failing_since": NOW - 259_200,
    },
}


def envelope(
    event_type: str = "generation.completed",
    data: dict[str, Any] | None = None,
    *,
    event_id: str = EVENT_ID,
) -> dict[str, Any]:
    """Build an event envelope, with the sample data of the type by default."""
    return {
        "id": event_id,
        "object": "event",
        "created": NOW,
        "type": event_type,
        "data": SAMPLE_DATA[event_type] if data is None else data,
    }


def body_of(payload: object) -> bytes:
    """Serialize a payload the way the service does: compact, non-ASCII kept as UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def event_body(event_type: str = "generation.completed", **kwargs: Any) -> bytes:
    """Build the body of a delivery of one event."""
    return body_of(envelope(event_type, **kwargs))
