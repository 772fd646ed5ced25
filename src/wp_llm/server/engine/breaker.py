"""The circuit breaker of one endpoint: a pure state machine over attempt outcomes.

After `failure_threshold` failed attempts in a row the circuit opens. While it is
open the endpoint's deliveries wait without spending attempts, and one probe
delivery goes out per `probe_interval_ms`; any success closes the circuit. An
endpoint whose attempts keep failing without a success for `disable_after_ms` is
disabled. The store keeps the state and this module decides it, so every worker
that shares a database applies the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CircuitState = Literal["closed", "open"]


@dataclass(frozen=True)
class EndpointHealth:
    """The breaker's state of one endpoint, with times in Unix milliseconds."""

    consecutive_failures: int = 0
    # Start of the current run of failed attempts, or None after a success.
    failing_since: int | None = None
    circuit_state: CircuitState = "closed"
    # While open: when the next probe may start.
    circuit_retry_at: int | None = None


HEALTHY = EndpointHealth()


@dataclass(frozen=True)
class AttemptOutcome:
    """The facts of one finished attempt that the breaker uses."""

    succeeded: bool
    attempted_at: int
    probe: bool = False


@dataclass(frozen=True)
class CircuitBreaker:
    """Thresholds of the breaker, shared by every endpoint."""

    failure_threshold: int
    probe_interval_ms: int
    disable_after_ms: int

    def after(
        self, health: EndpointHealth, outcomes: Iterable[AttemptOutcome], now: int
    ) -> EndpointHealth:
        """Return the health that follows from `outcomes`, applied oldest first."""
        for outcome in outcomes:
            health = self._step(health, outcome, now)
        return health

    def _step(self, health: EndpointHealth, outcome: AttemptOutcome, now: int) -> EndpointHealth:
        if outcome.succeeded:
            return HEALTHY

        failures = health.consecutive_failures + 1
        failing_since = health.failing_since
        if failing_since is None:
            failing_since = outcome.attempted_at

        if health.circuit_state == "open":
            # A failed probe schedules the next one. Attempts that started before the
            # circuit opened keep the probe time that is already set.
            retry_at = now + self.probe_interval_ms if outcome.probe else health.circuit_retry_at
            return EndpointHealth(failures, failing_since, "open", retry_at)

        if failures >= self.failure_threshold:
            return EndpointHealth(failures, failing_since, "open", now + self.probe_interval_ms)
        return EndpointHealth(failures, failing_since, "closed", None)

    def should_disable(self, health: EndpointHealth, now: int) -> bool:
        """Check whether the endpoint has failed without a success for `disable_after_ms`."""
        if health.failing_since is None:
            return False
        return now - health.failing_since >= self.disable_after_ms
