"""Signing core shared by the delivery engine and the receiver toolkit.

Pure functions with no I/O. Both signature schemes use the same key: the UTF-8
bytes of the endpoint secret, exactly as the user gave it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

STANDARD_SECRET_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    return secret.encode("utf-8")


def sign_hex(secret: str, body: bytes) -> str:
    """Compute the `X-WP-LLM-Signature` value: lowercase hex HMAC-SHA256 of the body."""
    return hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def sign_standard_one(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Compute one Standard Webhooks signature, `v1,<base64>`, over `{id}.{timestamp}.{body}`."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_standard(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Compute the `webhook-signature` header: one signature per active secret, space-separated."""
    return " ".join(sign_standard_one(s, msg_id, timestamp, body) for s in secrets)


def standard_secret(secret: str) -> str:
    """Return the secret in the `whsec_<base64>` form that Standard Webhooks libraries take."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(_key(secret)).decode("ascii")
