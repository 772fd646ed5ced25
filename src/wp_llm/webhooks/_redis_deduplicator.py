"""`RedisDeduplicator`: duplicate detection shared by processes on many hosts."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from wp_llm.webhooks._deduplication import (
    DEFAULT_PROCESSING_TIMEOUT,
    DEFAULT_TTL,
    duration_seconds,
)

__all__ = ["DEFAULT_KEY_PREFIX", "RedisDeduplicator"]

DEFAULT_KEY_PREFIX = "wp_llm:received_event:"
_PROCESSING = "processing"
_COMPLETED = "completed"


def _milliseconds(value: timedelta | float, name: str) -> int:
    seconds = duration_seconds(value, name)
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be finite for Redis, got {value!r}")
    return max(1, round(seconds * 1000))


def _connect(url: str) -> Any:
    try:
        import redis  # imported here so that the redis package stays optional
    except ImportError:
        raise ImportError(
            "RedisDeduplicator(url=...) needs the redis package; install wp-llm[redis]"
        ) from None
    return redis.Redis.from_url(url)


class RedisDeduplicator:
    """A deduplicator in Redis: one key per event id, claimed with `SET NX PX`.

    Pass a connected `redis.Redis` client, or a `url` such as `redis://localhost:6379/0`
    (this needs the `redis` extra). Keys are `key_prefix` plus the event id and expire
    by themselves. Errors of the Redis client are not caught here.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl: timedelta | float = DEFAULT_TTL,
        processing_timeout: timedelta | float = DEFAULT_PROCESSING_TIMEOUT,
    ) -> None:
        if (client is None) == (url is None):
            raise ValueError("pass either a redis client or url=, but not both")
        self._client = client if client is not None else _connect(url or "")
        self._key_prefix = key_prefix
        self._ttl_ms = _milliseconds(ttl, "ttl")
        self._processing_timeout_ms = _milliseconds(processing_timeout, "processing_timeout")

    def _key(self, event_id: str) -> str:
        return self._key_prefix + event_id

    def claim(self, event_id: str) -> bool:
        key = self._key(event_id)
        created = self._client.set(key, _PROCESSING, nx=True, px=self._processing_timeout_ms)
        return bool(created)

    def complete(self, event_id: str) -> None:
        self._client.set(self._key(event_id), _COMPLETED, px=self._ttl_ms)

    def release(self, event_id: str) -> None:
        self._client.delete(self._key(event_id))

    def is_completed(self, event_id: str) -> bool:
        state = self._client.get(self._key(event_id))
        if isinstance(state, bytes):
            state = state.decode("ascii", errors="replace")
        return bool(state == _COMPLETED)
