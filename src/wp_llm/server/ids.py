"""Prefixed identifiers that sort by creation time (`evt_01J…`)."""

from __future__ import annotations

import secrets
import time

from ulid import ULID

ACCOUNT = "acct"
API_KEY = "key"
WEBHOOK = "webhook"
EVENT = "evt"
DELIVERY = "dlv"
ATTEMPT = "att"

API_KEY_TOKEN_PREFIX = "wpllm_sk_"


def new_id(prefix: str) -> str:
    """Return `<prefix>_<ULID>`; ULIDs start with the millisecond timestamp, so ids sort by time."""
    return f"{prefix}_{ULID()}"


def new_api_key_token() -> str:
    return API_KEY_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """Return a long random secret without the `whsec_` prefix, as the wire contract requires."""
    return secrets.token_urlsafe(32)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
