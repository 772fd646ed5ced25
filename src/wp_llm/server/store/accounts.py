"""Accounts and API keys: keys are shown once and stored as SHA-256 hashes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, insert, select, update

from wp_llm.server import ids
from wp_llm.server.crypto import hash_api_key
from wp_llm.server.db.schema import account_limits, accounts, api_keys
from wp_llm.server.errors import AuthenticationFailed

KeyKind = Literal["account", "service"]
KEY_HINT_LENGTH = 12


@dataclass(frozen=True)
class Principal:
    """The caller behind an API key: an account key, or a platform service key."""

    key_id: str
    kind: KeyKind
    account_id: str | None
    name: str | None = None
    # The account's rate-limit overrides; None keeps the operator's default.
    rate_limit: float | None = None
    rate_limit_burst: int | None = None

    @property
    def scope(self) -> str:
        """The namespace of the caller's idempotency keys."""
        return self.account_id or self.key_id


@dataclass(frozen=True)
class CreatedKey:
    """A new API key; `token` exists only here and is never stored."""

    key_id: str
    token: str
    account_id: str | None


def ensure_account(engine: Engine, name: str) -> str:
    """Return the id of the account with this name, creating it if needed."""
    with engine.begin() as connection:
        found = connection.execute(select(accounts.c.id).where(accounts.c.name == name)).scalar()
        if found is not None:
            return str(found)
        account_id = ids.new_id(ids.ACCOUNT)
        connection.execute(
            insert(accounts).values(id=account_id, name=name, created=ids.now_ms() // 1000)
        )
        return account_id


def create_key(
    engine: Engine, *, account_id: str | None, kind: KeyKind = "account", name: str | None = None
) -> CreatedKey:
    token = ids.new_api_key_token()
    key_id = ids.new_id(ids.API_KEY)
    with engine.begin() as connection:
        connection.execute(
            insert(api_keys).values(
                id=key_id,
                account_id=account_id,
                kind=kind,
                name=name,
                hint=token[:KEY_HINT_LENGTH],
                key_hash=hash_api_key(token),
                created=ids.now_ms() // 1000,
            )
        )
    return CreatedKey(key_id=key_id, token=token, account_id=account_id)


def revoke_key(engine: Engine, key_id: str) -> bool:
    with engine.begin() as connection:
        result = connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=ids.now_ms() // 1000)
        )
    return result.rowcount > 0


def authenticate(engine: Engine, token: str) -> Principal:
    """Find the live key behind a bearer token, or raise AuthenticationFailed."""
    query = (
        select(
            api_keys.c.id,
            api_keys.c.kind,
            api_keys.c.account_id,
            api_keys.c.name,
            account_limits.c.rate_limit,
            account_limits.c.rate_limit_burst,
        )
        .outerjoin(account_limits, account_limits.c.account_id == api_keys.c.account_id)
        .where(api_keys.c.key_hash == hash_api_key(token), api_keys.c.revoked_at.is_(None))
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise AuthenticationFailed(
            "The API key is invalid or revoked; "
            "create one with `wp-llm keys create --account NAME`."
        )
    return Principal(
        key_id=row.id,
        kind=row.kind,
        account_id=row.account_id,
        name=row.name,
        rate_limit=row.rate_limit,
        rate_limit_burst=row.rate_limit_burst,
    )


PRINCIPAL_CACHE_SIZE = 10_000


class PrincipalCache:
    """Remembers authenticated keys briefly, so most requests cost no key lookup."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """Return the principal of a key cached less than the TTL ago, or None, with no I/O."""
        if self._ttl <= 0:
            return None
        entry = self._entries.get(hash_api_key(token))
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def authenticate(self, engine: Engine, token: str) -> Principal:
        """Return the principal of a valid key from the cache, or look it up and cache it.

        Invalid keys are never cached.
        """
        principal = self.cached(token)
        if principal is not None:
            return principal
        now = time.monotonic()
        principal = authenticate(engine, token)
        if self._ttl <= 0:
            return principal
        key = hash_api_key(token)
        with self._lock:
            if len(self._entries) >= PRINCIPAL_CACHE_SIZE:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, principal)
        return principal


def find_account(engine: Engine, name_or_id: str) -> dict[str, object] | None:
    query = select(accounts).where((accounts.c.id == name_or_id) | (accounts.c.name == name_or_id))
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return dict(row) if row else None


def list_keys(engine: Engine, account_id: str) -> list[dict[str, object]]:
    """Return the account's keys, oldest first, without their hashes."""
    query = (
        select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.hint,
            api_keys.c.created,
            api_keys.c.revoked_at,
        )
        .where(api_keys.c.account_id == account_id)
        .order_by(api_keys.c.id)
    )
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
