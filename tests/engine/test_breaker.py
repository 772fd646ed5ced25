"""The circuit breaker's state machine, without a database."""

from __future__ import annotations

from wp_llm.server.engine.breaker import HEALTHY, AttemptOutcome, CircuitBreaker, EndpointHealth

BREAKER = CircuitBreaker(failure_threshold=3, probe_interval_ms=1_000, disable_after_ms=60_000)


def failures(count: int, start: int = 100) -> list[AttemptOutcome]:
    return [AttemptOutcome(succeeded=False, attempted_at=start + i) for i in range(count)]


def test_breaker_stays_closed_below_threshold() -> None:
    health = BREAKER.after(HEALTHY, failures(2), now=500)
    assert health.circuit_state == "closed"
    assert health.consecutive_failures == 2
    assert health.failing_since == 100


def test_breaker_opens_at_threshold() -> None:
    health = BREAKER.after(HEALTHY, failures(3), now=500)
    assert health.circuit_state == "open"
    assert health.circuit_retry_at == 1_500


def test_breaker_success_closes_and_clears() -> None:
    opened = BREAKER.after(HEALTHY, failures(5), now=500)
    health = BREAKER.after(opened, [AttemptOutcome(succeeded=True, attempted_at=600)], now=700)
    assert health == HEALTHY


def test_breaker_failed_probe_schedules_next_probe() -> None:
    opened = EndpointHealth(3, 100, "open", 900)
    probe = AttemptOutcome(succeeded=False, attempted_at=950, probe=True)
    health = BREAKER.after(opened, [probe], now=1_000)
    assert health.circuit_retry_at == 2_000
    assert health.consecutive_failures == 4


def test_breaker_late_failure_keeps_probe_time() -> None:
    # An attempt that started before the circuit opened must not push the probe back.
    opened = EndpointHealth(3, 100, "open", 900)
    health = BREAKER.after(opened, failures(1, start=120), now=1_000)
    assert health.circuit_retry_at == 900


def test_breaker_keeps_first_failure_time() -> None:
    health = BREAKER.after(EndpointHealth(1, 50, "closed", None), failures(1, start=400), now=500)
    assert health.failing_since == 50


def test_breaker_disables_after_continuous_failure() -> None:
    health = EndpointHealth(40, failing_since=1_000, circuit_state="open", circuit_retry_at=0)
    assert not BREAKER.should_disable(health, now=60_999)
    assert BREAKER.should_disable(health, now=61_000)


def test_breaker_never_disables_healthy_endpoint() -> None:
    assert not BREAKER.should_disable(HEALTHY, now=10**12)
