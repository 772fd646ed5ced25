"""Scenario sizes: the full suite, a mid-sized run for development, and a smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Sizes of each scenario and the wall-clock limit of a run."""

    name: str
    # Runs of each throughput-like scenario; the report quotes their median.
    repeats: int
    # Connections to one endpoint, the same for every system that sends.
    concurrency: int
    event_bytes: int
    throughput_deliveries: int
    fanout_endpoints: int
    latency_rate_per_second: int
    # A second rate at which our topologies are measured too, with CPU to spare; 0 skips it.
    latency_lower_rate_per_second: int
    latency_seconds: float
    isolation_rate_per_second: int
    isolation_seconds: float
    # How long the hanging endpoint keeps a request open before the sender gives up.
    isolation_request_timeout_seconds: float
    ingestion_events: int
    ingestion_clients: tuple[int, ...]
    recovery_deliveries: int
    # Wall-clock limit of one timed run; a run that has not finished by then is recorded
    # as incomplete with what did arrive.
    run_timeout_seconds: float
    profile_seconds: float


FULL = Profile(
    name="full",
    repeats=3,
    concurrency=64,
    event_bytes=1024,
    throughput_deliveries=20_000,
    fanout_endpoints=1_000,
    latency_rate_per_second=1_000,
    latency_lower_rate_per_second=500,
    latency_seconds=10.0,
    isolation_rate_per_second=200,
    isolation_seconds=10.0,
    isolation_request_timeout_seconds=15.0,
    ingestion_events=6_000,
    ingestion_clients=(1, 16, 64),
    recovery_deliveries=50_000,
    run_timeout_seconds=300.0,
    profile_seconds=15.0,
)

# Mid-sized runs for development: every scenario, one run each, in a few minutes.
QUICK = Profile(
    name="quick",
    repeats=1,
    concurrency=64,
    event_bytes=1024,
    throughput_deliveries=5_000,
    fanout_endpoints=1_000,
    latency_rate_per_second=1_000,
    latency_lower_rate_per_second=500,
    latency_seconds=5.0,
    isolation_rate_per_second=200,
    isolation_seconds=5.0,
    isolation_request_timeout_seconds=15.0,
    ingestion_events=2_000,
    ingestion_clients=(1, 16, 64),
    recovery_deliveries=10_000,
    run_timeout_seconds=60.0,
    profile_seconds=10.0,
)

SMOKE = Profile(
    name="smoke",
    repeats=1,
    concurrency=8,
    event_bytes=1024,
    throughput_deliveries=40,
    fanout_endpoints=10,
    latency_rate_per_second=20,
    latency_lower_rate_per_second=0,
    latency_seconds=1.0,
    isolation_rate_per_second=10,
    isolation_seconds=1.0,
    isolation_request_timeout_seconds=1.0,
    ingestion_events=40,
    ingestion_clients=(4,),
    recovery_deliveries=40,
    run_timeout_seconds=20.0,
    profile_seconds=2.0,
)

PROFILES = {profile.name: profile for profile in (FULL, QUICK, SMOKE)}
