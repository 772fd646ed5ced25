"""Signing core shared by the delivery engine and the receiver toolkit.

Pure functions with no I/O. Both signature schemes use the same key: the UTF-8
bytes of the endpoint secret, exactly as the user gave it. Standard Webhooks
libraries take that key as `whsec_` followed by its base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence

STANDARD_SECRET_PREFIX = "whsec_"
STANDARD_SIGNATURE_VERSION = "v1"
DIGEST_SIZE = hashlib.sha256().digest_size


def _key(secret: str) -> bytes:
    return secret.encode("utf-8")


def sign_hex(secret: str, body: bytes) -> str:
    """Compute the `X-WP-LLM-Signature` value: lowercase hex HMAC-SHA256 of the body."""
    return hex_signature(_key(secret), body)


def sign_standard_one(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Compute one Standard Webhooks signature, `v1,<base64>`, over `{id}.{timestamp}.{body}`."""
    return standard_signature(_key(secret), msg_id, timestamp, body)


def sign_standard(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Compute the `webhook-signature` header: one signature per active secret, space-separated."""
    return " ".join(sign_standard_one(s, msg_id, timestamp, body) for s in secrets)


def standard_secret(secret: str) -> str:
    """Return the secret in the `whsec_<base64>` form that Standard Webhooks libraries take."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(_key(secret)).decode("ascii")


def key_from_secret(secret: str) -> bytes:
    """Decode a secret, raw or in the `whsec_<base64>` form, to the HMAC key bytes.

    Raises ValueError for an empty secret and for a `whsec_` form whose base64 is
    empty or invalid. The message never contains the secret.
    """
    if not secret:
        raise ValueError("the webhook secret is empty; pass the endpoint's signing secret")

    if not secret.startswith(STANDARD_SECRET_PREFIX):
        return _key(secret)

    encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "the webhook secret starts with 'whsec_' but the rest is not valid base64; "
            "copy the whole 'whsec_' value, or pass the raw secret instead"
        ) from None

    if not key:
        raise ValueError("the webhook secret 'whsec_' has nothing after the prefix")
    return key


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """Compute the raw HMAC-SHA256 digest of a message."""
    return hmac.new(key, message, hashlib.sha256).digest()


def standard_message(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """Build the bytes a Standard Webhooks signature covers: `{id}.{timestamp}.{body}`."""
    return f"{msg_id}.{timestamp}.".encode() + body


def hex_signature(key: bytes, body: bytes) -> str:
    """Compute the `X-WP-LLM-Signature` value from key bytes."""
    return hmac_sha256(key, body).hex()


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Compute one `v1,<base64>` Standard Webhooks signature from key bytes."""
    digest = hmac_sha256(key, standard_message(msg_id, timestamp, body))
    return f"{STANDARD_SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def any_digest_matches(expected: Iterable[bytes], received: Iterable[bytes]) -> bool:
    """Check whether any received digest equals any expected one, in constant time per pair.

    Every pair is compared, so the time taken does not reveal which pair matched.
    """
    received = list(received)
    matched = False
    for expected_digest in expected:
        for received_digest in received:
            matched |= hmac.compare_digest(expected_digest, received_digest)
    return matched
