"""Shared state of request handlers: the database, the secret box and the settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from wp_llm.server.api.group_commit import GroupCommit
from wp_llm.server.config import Settings
from wp_llm.server.crypto import SecretBox
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.errors import AuthenticationFailed, PermissionDenied
from wp_llm.server.store import accounts
from wp_llm.server.store.accounts import Principal
from wp_llm.server.usage.clock import Clock, SystemClock
from wp_llm.server.usage.guard import RateLimitGuard, TokenStoreNeeded
from wp_llm.server.usage.ratelimit import RateDecision


@dataclass
class ServiceContext:
    """Shared state of one API process."""

    engine: Engine
    box: SecretBox
    settings: Settings
    address_policy: AddressPolicy
    loop: asyncio.AbstractEventLoop | None = None
    wake_callbacks: list[object] = field(default_factory=list)
    # Usage accounting (rate limits, quota periods) reads the time here, so tests can shift it.
    clock: Clock = field(default_factory=SystemClock)
    rate_guard: RateLimitGuard | None = None
    principals: accounts.PrincipalCache = field(init=False)
    publishes: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.principals = accounts.PrincipalCache(self.settings.auth_cache_seconds)
        self.publishes = GroupCommit(
            self.engine,
            lambda: self.clock.now(),
            default_quota=self.settings.event_quota,
            thresholds=self.settings.quota_warning_thresholds,
            wake=self.notify_workers,
        )

    def notify_workers(self) -> None:
        """Wake an in-process worker right after new deliveries were stored."""
        if self.loop is None:
            return
        for callback in self.wake_callbacks:
            self.loop.call_soon_threadsafe(callback)  # type: ignore[arg-type]


async def get_context(request: Request) -> ServiceContext:
    # Dependencies declared with `async def` run on the event loop. A plain `def` would
    # cost a hop to the thread pool and back on every request.
    return request.app.state.context  # type: ignore[no-any-return]


BEARER_PREFIX = "bearer "


def bearer_token(authorization: str | None) -> str:
    """Return the key in a `Bearer <key>` header value, or raise AuthenticationFailed."""
    if not authorization:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    if not authorization.lower().startswith(BEARER_PREFIX) or not authorization[7:].strip():
        raise AuthenticationFailed(
            "The Authorization header must be 'Bearer <key>'.", code="malformed_authorization"
        )
    return authorization[7:].strip()


async def get_principal(
    request: Request,
    authorization: str | None = Header(default=None, include_in_schema=False),
    context: ServiceContext = Depends(get_context),
) -> Principal:
    """Authenticate the `Authorization: Bearer <key>` header and take a rate-limit token."""
    return await authenticate(context, authorization, request.scope.setdefault("state", {}))


async def authenticate(
    context: ServiceContext, authorization: str | None, state: dict[str, Any]
) -> Principal:
    """Return the caller of a request, after it took a rate-limit token; `state` keeps both.

    A key in the cache and an in-memory rate limiter need no I/O, so the common request
    stays on the event loop. A key lookup or a shared bucket runs in the thread pool.
    """
    token = bearer_token(authorization)
    principal = context.principals.cached(token)
    if principal is None:
        principal = await anyio.to_thread.run_sync(
            context.principals.authenticate, context.engine, token
        )
    state["principal"] = principal
    if context.rate_guard is not None:
        # The middleware copies the decision into the X-RateLimit-* headers of the response.
        state["rate_limit"] = await _take_rate_limit_token(context.rate_guard, principal)
    return principal


async def _take_rate_limit_token(
    guard: RateLimitGuard, principal: Principal
) -> RateDecision | None:
    try:
        attempt = guard.take_cached(principal)
    except TokenStoreNeeded:
        return await anyio.to_thread.run_sync(guard.check, principal)
    if attempt is None or attempt.decision.allowed:
        return None if attempt is None else attempt.decision
    # Reporting the rejection may publish a notice, which writes to the database.
    return await anyio.to_thread.run_sync(guard.reject, principal, attempt)


async def require_account(principal: Principal = Depends(get_principal)) -> Principal:
    """Allow account keys only: service keys publish events but manage no webhooks."""
    if principal.account_id is None:
        raise PermissionDenied(
            "Service keys can only publish events; use an account key to manage webhooks "
            "and read deliveries.",
            code="account_key_required",
        )
    return principal
