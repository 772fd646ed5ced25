"""Rate limits on authenticated requests, and the notice an account gets when throttled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from wp_llm.server.config import Settings
from wp_llm.server.errors import RateLimited
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.accounts import Principal
from wp_llm.server.usage import notices
from wp_llm.server.usage.clock import Clock
from wp_llm.server.usage.limiters import RateLimiter
from wp_llm.server.usage.ratelimit import RateDecision, RateLimit, resolve_limit

logger = logging.getLogger(__name__)


def limit_for(principal: Principal, settings: Settings) -> RateLimit:
    """Return the key's limit: its account's overrides, else the operator's defaults."""
    if principal.kind == "service":
        return resolve_limit(
            settings.service_rate_limit,
            settings.service_rate_limit_burst,
            settings.rate_limit,
            settings.rate_limit_burst,
        )
    return resolve_limit(
        principal.rate_limit,
        principal.rate_limit_burst,
        settings.rate_limit,
        settings.rate_limit_burst,
    )


@dataclass(frozen=True)
class TokenAttempt:
    """One request's attempt to take a token from its key's bucket, with the limit and the time."""

    limit: RateLimit
    # The clock's time of the attempt, in Unix seconds.
    now: float
    decision: RateDecision


class TokenStoreNeeded(Exception):
    """A token can be taken only with a round trip to the shared bucket store."""


class RateLimitGuard:
    """Takes a token for every authenticated request and raises RateLimited when none is left.

    The first rejected request of an account key opens a notice window and publishes
    one `usage.limit_exceeded` to the account. The window lasts until the bucket is full
    again, and at least `rate_limit_notice_interval`. A service key's bucket belongs to
    the platform producer, not to the accounts it publishes to, so its rejections are
    logged, once per window, instead of notified.
    """

    def __init__(
        self,
        engine: Engine,
        limiter: RateLimiter,
        clock: Clock,
        settings: Settings,
        on_deliveries: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        self._clock = clock
        self._settings = settings
        self._on_deliveries = on_deliveries
        # Ends of the notice windows this process has seen, so most rejections skip the database.
        self._notice_windows: dict[str, float] = {}

    def check(self, principal: Principal) -> RateDecision | None:
        """Take one token and return the decision, or None when the key is unlimited.

        Raise RateLimited, after `reject` reported it, when no token is left.
        """
        attempt = self.take(principal)
        if attempt is None or attempt.decision.allowed:
            return None if attempt is None else attempt.decision
        self.reject(principal, attempt)

    def take(self, principal: Principal) -> TokenAttempt | None:
        """Try to take one token from the key's bucket, or return None when the key is unlimited."""
        limit = limit_for(principal, self._settings)
        if limit.unlimited:
            return None
        now = self._clock.now()
        return TokenAttempt(limit, now, self._limiter.acquire(principal.key_id, limit, now))

    def take_cached(self, principal: Principal) -> TokenAttempt | None:
        """Do what `take` does without I/O, so that an event loop may call it directly.

        Raise TokenStoreNeeded when only the shared bucket store can decide; call `check`
        in a thread then.
        """
        limit = limit_for(principal, self._settings)
        if limit.unlimited:
            return None
        now = self._clock.now()
        decision = self._limiter.acquire_cached(principal.key_id, limit, now)
        if decision is None:
            raise TokenStoreNeeded(principal.key_id)
        return TokenAttempt(limit, now, decision)

    def reject(self, principal: Principal, attempt: TokenAttempt) -> NoReturn:
        """Report a request that found no token, then raise RateLimited.

        The report may publish `usage.limit_exceeded`, so this can write to the database.
        """
        limit, decision = attempt.limit, attempt.decision
        self._report(principal, decision, attempt.now)
        raise RateLimited(
            f"API key {principal.key_id} exceeded its rate limit of {limit.rate:g} requests per "
            f"second with bursts of {limit.burst}; retry after {decision.retry_after} s.",
            details={"limit": limit.burst, "rate": limit.rate, "retry_after": decision.retry_after},
            headers=decision.headers(),
        )

    def _report(self, principal: Principal, decision: RateDecision, now: float) -> None:
        if now < self._notice_windows.get(principal.key_id, 0.0):
            return

        interval = self._settings.rate_limit_notice_interval
        window_ends = now + max(interval, decision.reset_at - now)
        if principal.account_id is None:
            self._notice_windows[principal.key_id] = window_ends
            logger.warning(
                "service key rate limited",
                extra={
                    "key_id": principal.key_id,
                    "key_name": principal.name,
                    "retry_after_s": decision.retry_after,
                },
            )
            return
        self._publish_notice(principal.account_id, principal.key_id, decision, now, window_ends)

    def _publish_notice(
        self, account_id: str, key_id: str, decision: RateDecision, now: float, window_ends: float
    ) -> None:
        data = notices.limit_exceeded_data(decision)
        try:
            claim = usage_store.publish_limit_notice(
                self._engine, account_id, key_id, data, now=now, window_ends=window_ends
            )
        except SQLAlchemyError as error:
            # The window stays closed, so the next rejected request tries again.
            logger.warning(
                "usage.limit_exceeded notice failed",
                extra={"account_id": account_id, "key_id": key_id, "error": str(error)[:200]},
            )
            return

        self._notice_windows[key_id] = claim.window_ends
        if claim.published is None:
            return
        logger.info(
            "usage.limit_exceeded published",
            extra={"account_id": account_id, "key_id": key_id, "event_id": claim.published.id},
        )
        if claim.published.delivery_ids:
            self._on_deliveries()
