"""Encryption of endpoint secrets at rest, and hashing of API keys.

The encryption key comes from `WP_LLM_SECRET_KEY` (a Fernet key: 32 url-safe base64
bytes) or, when that is unset, from `<data dir>/secret.key`, created with mode 0600
on first start. Every process that shares a database must use the same key.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
SECRET_CACHE_SIZE = 4096


class SecretKeyError(RuntimeError):
    """The key that encrypts endpoint secrets is missing, malformed or does not match."""


class SecretBox:
    """Encrypts and decrypts endpoint secrets with one Fernet key."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "WP_LLM_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes); "
                "create one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self._decrypt_cached(token)

    # Every delivery needs its endpoint's secrets, and Fernet decryption is a visible share
    # of the engine's CPU time. Caching adds no exposure, because the plaintext is in this
    # process's memory anyway.
    @functools.lru_cache(maxsize=SECRET_CACHE_SIZE)  # noqa: B019 - boxes live as long as the process
    def _decrypt_cached(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                "an endpoint secret could not be decrypted: the secret key differs from the "
                "one that encrypted it (check WP_LLM_SECRET_KEY or the key file)"
            ) from None


def load_secret_box(secret_key: str | None, data_dir: Path) -> SecretBox:
    """Use the configured key, or read (and on first start create) the key file."""
    if secret_key:
        return SecretBox(secret_key)
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return SecretBox(path.read_bytes().strip())


def _create_key_file(path: Path) -> None:
    """Write a new key to a temporary file, then link it into place.

    The link fails if another process created the key first, so processes that
    start together all end up with the same key and none reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(Fernet.generate_key())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
        logger.info("secret key file created", extra={"path": str(path)})
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def hash_api_key(token: str) -> str:
    """Hash an API key for storage; keys are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
