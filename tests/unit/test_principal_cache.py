"""The API's short cache of authenticated keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.errors import AuthenticationFailed
from wp_llm.server.store import accounts


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_db_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_cache_serves_a_revoked_key_until_it_expires(engine) -> None:  # type: ignore[no-untyped-def]
    created = accounts.create_key(engine, account_id=accounts.ensure_account(engine, "acme"))
    cache = accounts.PrincipalCache(ttl=60)
    first = cache.authenticate(engine, created.token)
    accounts.revoke_key(engine, created.key_id)
    assert cache.authenticate(engine, created.token) == first
    with pytest.raises(AuthenticationFailed):
        accounts.PrincipalCache(ttl=60).authenticate(engine, created.token)


def test_zero_ttl_sees_revocation_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    created = accounts.create_key(engine, account_id=accounts.ensure_account(engine, "acme"))
    cache = accounts.PrincipalCache(ttl=0)
    cache.authenticate(engine, created.token)
    accounts.revoke_key(engine, created.key_id)
    with pytest.raises(AuthenticationFailed):
        cache.authenticate(engine, created.token)


def test_invalid_keys_are_not_cached(engine) -> None:  # type: ignore[no-untyped-def]
    cache = accounts.PrincipalCache(ttl=60)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            cache.authenticate(engine, "wpllm_sk_wrong")


def test_cached_returns_only_authenticated_keys(engine) -> None:  # type: ignore[no-untyped-def]
    created = accounts.create_key(engine, account_id=accounts.ensure_account(engine, "acme"))
    cache = accounts.PrincipalCache(ttl=60)
    assert cache.cached(created.token) is None
    principal = cache.authenticate(engine, created.token)
    assert cache.cached(created.token) == principal
    assert accounts.PrincipalCache(ttl=0).cached(created.token) is None
