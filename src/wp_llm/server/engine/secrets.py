"""Decrypted signing secrets, kept per webhook so a batch of deliveries decrypts them once."""

from __future__ import annotations

import json

from wp_llm.server.crypto import SecretBox
from wp_llm.server.store.webhooks import active_secrets

# Distinct stored secret lists kept decrypted; past this the cache starts over.
MAX_CACHED_WEBHOOKS = 4096
NEVER = 2**63 - 1


class SecretCache:
    """Maps a webhook's stored, encrypted secrets to those that sign deliveries now.

    The key is the stored text itself, so a rotation, which changes it, misses the
    cache. An entry lasts until the first of its secrets' grace periods ends.
    """

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._entries: dict[str, tuple[list[str], int]] = {}

    def active(self, stored: str, now_ms: int) -> list[str]:
        entry = self._entries.get(stored)
        if entry is not None and now_ms < entry[1]:
            return entry[0]
        secrets = active_secrets(self._box, {"secrets": stored}, now_ms)
        expiries = [
            item["expires_at"]
            for item in json.loads(stored)
            if item["expires_at"] is not None and item["expires_at"] > now_ms
        ]
        if len(self._entries) >= MAX_CACHED_WEBHOOKS:
            self._entries.clear()
        self._entries[stored] = (secrets, min(expiries, default=NEVER))
        return secrets
