"""Per-endpoint budgets: the AIMD concurrency window, the token bucket and pauses."""

from __future__ import annotations

import pytest

from wp_llm.server.engine.throttle import (
    PREFETCH_WINDOWS,
    EndpointThrottle,
    Throttles,
    is_congestion,
    pause_seconds,
)


@pytest.mark.parametrize(
    ("status", "timed_out", "expected"),
    [
        (429, False, True),
        (502, False, True),
        (503, False, True),
        (504, False, True),
        (None, True, True),
        (500, False, False),  # a bug in the endpoint, not overload
        (None, False, False),  # connection refused
        (204, False, False),
    ],
)
def test_congestion_signals(status: int | None, timed_out: bool, expected: bool) -> None:
    assert is_congestion(status, timed_out) is expected


def test_pause_honours_retry_after_up_to_cap() -> None:
    assert pause_seconds(503, 30.0, cap=10.0) == 10.0
    assert pause_seconds(429, 2.0, cap=10.0) == 2.0


def test_pause_ignored_without_overload_status() -> None:
    assert pause_seconds(500, 30.0, cap=10.0) is None
    assert pause_seconds(503, None, cap=10.0) is None


def test_window_halves_once_per_round() -> None:
    throttle = EndpointThrottle.new(16, None, now=0.0)
    for _ in range(8):
        throttle.start(now=1.0)
    # Eight requests of one round come back overloaded: one decrease, not eight.
    for _ in range(8):
        throttle.finish(started_at=1.0, succeeded=False, congested=True, now=2.0)
    assert throttle.window == 8.0


def test_window_halves_again_next_round() -> None:
    throttle = EndpointThrottle.new(16, None, now=0.0)
    throttle.start(now=1.0)
    throttle.finish(started_at=1.0, succeeded=False, congested=True, now=2.0)
    throttle.start(now=3.0)
    throttle.finish(started_at=3.0, succeeded=False, congested=True, now=4.0)
    assert throttle.window == 4.0


def test_window_never_below_one() -> None:
    throttle = EndpointThrottle.new(2, None, now=0.0)
    for step in range(10):
        throttle.start(now=float(step))
        throttle.finish(started_at=float(step), succeeded=False, congested=True, now=step + 0.5)
    assert throttle.window == 1.0
    assert throttle.allowance(now=100.0) == 1


def test_window_grows_back_on_success() -> None:
    throttle = EndpointThrottle.new(4, None, now=0.0)
    throttle.window = 1.0
    for step in range(20):
        throttle.start(now=float(step))
        throttle.finish(started_at=float(step), succeeded=True, congested=False, now=step + 0.1)
    assert throttle.window == 4.0


def test_allowance_counts_in_flight() -> None:
    throttle = EndpointThrottle.new(3, None, now=0.0)
    throttle.start(now=0.0)
    throttle.start(now=0.0)
    assert throttle.allowance(now=0.0) == 1


def test_rate_limit_spends_and_refills_tokens() -> None:
    throttle = EndpointThrottle.new(10, 2.0, now=0.0)
    assert throttle.allowance(now=0.0) == 2
    throttle.start(now=0.0)
    throttle.start(now=0.0)
    assert throttle.allowance(now=0.0) == 0
    assert throttle.ready_at(now=0.0) == pytest.approx(0.5)
    assert throttle.allowance(now=0.5) == 1


def test_pause_blocks_until_its_end() -> None:
    throttle = EndpointThrottle.new(4, None, now=0.0)
    throttle.pause(until=5.0)
    assert throttle.allowance(now=4.9) == 0
    assert throttle.ready_at(now=4.9) == 5.0
    assert throttle.allowance(now=5.0) == 4


def test_configure_shrinks_window_to_new_limit() -> None:
    throttle = EndpointThrottle.new(16, None, now=0.0)
    throttle.configure(2, None)
    assert throttle.allowance(now=0.0) == 2


def test_throttles_forget_idle_endpoints() -> None:
    throttles = Throttles(default_concurrency=4, max_share=8)
    throttle = throttles.configure("webhook_a", None, None, now=0.0)
    throttle.start(now=0.0)
    throttle.finish(started_at=0.0, succeeded=True, congested=False, now=1.0)
    assert "webhook_a" in throttles.claim_quotas(now=2.0, waiting={})
    assert "webhook_a" not in throttles.claim_quotas(now=1_000.0, waiting={})


def test_throttles_next_ready_is_soonest() -> None:
    throttles = Throttles(default_concurrency=4, max_share=8)
    throttles.configure("webhook_a", None, None, now=0.0).pause(until=9.0)
    throttles.configure("webhook_b", None, None, now=0.0).pause(until=3.0)
    assert throttles.next_ready(now=1.0) == 3.0


def test_throttles_cap_share_of_worker() -> None:
    throttles = Throttles(default_concurrency=16, max_share=4)
    throttle = throttles.configure("webhook_a", 32, None, now=0.0)
    assert throttle.allowance(now=0.0) == 4


def test_throttles_forget_stale_shrunken_window() -> None:
    throttles = Throttles(default_concurrency=4, max_share=8)
    throttle = throttles.configure("webhook_a", None, None, now=0.0)
    throttle.start(now=0.0)
    throttle.finish(started_at=0.0, succeeded=False, congested=True, now=1.0)
    assert "webhook_a" in throttles.claim_quotas(now=100.0, waiting={})
    assert "webhook_a" not in throttles.claim_quotas(now=1_000.0, waiting={})


def test_claim_target_prefetches_windows_of_healthy_endpoint() -> None:
    throttle = EndpointThrottle.new(8, None, now=0.0)
    assert throttle.claim_target(now=0.0) == 8 * PREFETCH_WINDOWS


def test_claim_target_failing_endpoint() -> None:
    throttle = EndpointThrottle.new(8, None, now=0.0)
    throttle.start(now=0.0)
    throttle.finish(started_at=0.0, succeeded=False, congested=False, now=1.0)
    throttle.start(now=1.0)
    # One in flight and seven slots free: nothing is claimed beyond the window.
    assert throttle.claim_target(now=1.0) == 8


def test_claim_target_follows_rate_limit() -> None:
    throttle = EndpointThrottle.new(16, 2.0, now=0.0)
    assert throttle.claim_target(now=0.0) == 2 * PREFETCH_WINDOWS


def test_claim_target_of_paused_endpoint_is_zero() -> None:
    throttle = EndpointThrottle.new(8, None, now=0.0)
    throttle.pause(until=5.0)
    assert throttle.claim_target(now=1.0) == 0


def test_claim_quotas_subtract_held_and_in_flight() -> None:
    throttles = Throttles(default_concurrency=4, max_share=8)
    throttles.configure("webhook_a", None, None, now=0.0).start(now=0.0)
    quotas = throttles.claim_quotas(now=0.0, waiting={"webhook_a": 5})
    assert quotas == {"webhook_a": 4 * PREFETCH_WINDOWS - 1 - 5}
