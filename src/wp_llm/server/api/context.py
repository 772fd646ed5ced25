"""Shared state of request handlers: the database, the secret box and the settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from wp_llm.server.config import Settings
from wp_llm.server.crypto import SecretBox
from wp_llm.server.engine.netguard import AddressPolicy
from wp_llm.server.errors import AuthenticationFailed, PermissionDenied
from wp_llm.server.store import accounts
from wp_llm.server.store.accounts import Principal
from wp_llm.server.usage.clock import Clock, SystemClock
from wp_llm.server.usage.guard import RateLimitGuard


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

    def __post_init__(self) -> None:
        self.principals = accounts.PrincipalCache(self.settings.auth_cache_seconds)

    def notify_workers(self) -> None:
        """Wake an in-process worker right after new deliveries were stored."""
        if self.loop is None:
            return
        for callback in self.wake_callbacks:
            self.loop.call_soon_threadsafe(callback)  # type: ignore[arg-type]


def get_context(request: Request) -> ServiceContext:
    return request.app.state.context  # type: ignore[no-any-return]


BEARER_PREFIX = "bearer "


def get_principal(
    request: Request,
    authorization: str | None = Header(default=None, include_in_schema=False),
    context: ServiceContext = Depends(get_context),
) -> Principal:
    """Authenticate the `Authorization: Bearer <key>` header."""
    if not authorization:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    if not authorization.lower().startswith(BEARER_PREFIX) or not authorization[7:].strip():
        raise AuthenticationFailed(
            "The Authorization header must be 'Bearer <key>'.", code="malformed_authorization"
        )
    principal = context.principals.authenticate(context.engine, authorization[7:].strip())
    request.state.principal = principal
    if context.rate_guard is not None:
        # The middleware copies the decision into the X-RateLimit-* headers of the response.
        request.state.rate_limit = context.rate_guard.check(principal)
    return principal


def require_account(principal: Principal = Depends(get_principal)) -> Principal:
    """Allow account keys only: service keys publish events but manage no webhooks."""
    if principal.account_id is None:
        raise PermissionDenied(
            "Service keys can only publish events; use an account key to manage webhooks "
            "and read deliveries.",
            code="account_key_required",
        )
    return principal
