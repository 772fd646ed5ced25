"""Isolation: a healthy endpoint's latency alone, then next to an endpoint that never responds.

Both phases publish at the same fixed rate to the same running system. In the second,
every event also goes to a hanging endpoint (a socket that accepts connections and
never replies), which keeps each request open until the sender's timeout. The value is
the healthy endpoint's p99 in the second phase divided by its p99 in the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.blackhole import HangingEndpoint
from bench.context import BenchContext
from bench.ours import SQLITE_ONE_PROCESS, Topology
from bench.payload import new_event_id
from bench.peers.control import PeerSetup
from bench.publisher import RATE_CONNECTIONS, ApiPublisher
from bench.record import ScenarioResult, guarded_section
from bench.scenarios.latency import WARM_UP_SECONDS, Send, measure
from bench.scenarios.throughput import peer_jobs
from bench.seeding import create_tenant, register_webhooks

TOPOLOGIES = (SQLITE_ONE_PROCESS,)
HANGING_PATH = "/hang"


def compare(baseline: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """Return the run record: loaded p99 over baseline p99, with both phases' details."""
    ratio = loaded["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] > 0 else math.nan
    return {
        "value": ratio,
        "complete": baseline["complete"] and loaded["complete"],
        "baseline_p50_ms": baseline["p50_ms"],
        "baseline_p99_ms": baseline["p99_ms"],
        "with_hanging_p50_ms": loaded["p50_ms"],
        "with_hanging_p99_ms": loaded["p99_ms"],
        "healthy_undelivered": loaded["undelivered"],
        "baseline": baseline,
        "with_hanging": loaded,
    }


async def two_phases(
    context: BenchContext,
    prefix: str,
    healthy: Send,
    mixed: Send,
    between: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Warm up, measure with `healthy`, call `between`, then measure with `mixed`."""
    rate, seconds = context.profile.isolation_rate_per_second, context.profile.isolation_seconds
    await measure(context, prefix, healthy, rate, WARM_UP_SECONDS)
    baseline = await measure(context, prefix, healthy, rate, seconds)
    if between is not None:
        between()
    loaded = await measure(context, prefix, mixed, rate, seconds)
    return compare(baseline, loaded)


async def run_ours(context: BenchContext, topology: Topology, result: ScenarioResult) -> None:
    """Measure both phases `repeats` times, each on a fresh service without the hanging webhook.

    One run's p99 ratio moved between 1.2 and 2.0 from run to run, so the median counts.
    """
    for _ in range(context.profile.repeats):
        await run_ours_once(context, topology, result)


async def run_ours_once(context: BenchContext, topology: Topology, result: ScenarioResult) -> None:
    timeout = context.profile.isolation_request_timeout_seconds
    service = context.our_service(topology, api=True, WP_LLM_REQUEST_TIMEOUT=f"{timeout:g}s")
    hanging = HangingEndpoint()
    try:
        prefix = context.prefix("isolation")
        tenant = create_tenant(service.engine, "bench")
        register_webhooks(
            service.engine, service.box, tenant.account_id, [context.sink.url(prefix)]
        )
        await service.start()
        async with ApiPublisher(service.api_url, tenant.api_key, RATE_CONNECTIONS) as publisher:

            async def send() -> str:
                return await publisher.publish(context.data)

            def add_hanging_webhook() -> None:
                # From now on the API fans every event out to both webhooks.
                register_webhooks(
                    service.engine, service.box, tenant.account_id, [hanging.url(HANGING_PATH)]
                )

            record = await two_phases(context, prefix, send, send, add_hanging_webhook)
        result.add(topology.name, f"ours: {topology.label}", record)
    finally:
        hanging.stop()
        service.close()


async def run_peer(context: BenchContext, setup: PeerSetup, result: ScenarioResult) -> None:
    timeout = context.profile.isolation_request_timeout_seconds
    peer = context.peer(setup, request_timeout=timeout)
    hanging = HangingEndpoint()
    try:
        prefix = context.prefix("isolation")
        url = context.sink.url(prefix)
        peer.start()

        async def healthy() -> str:
            [job] = peer_jobs(url, 1, context.data, event_id=new_event_id())
            await peer.enqueue([job])
            return job["event_id"]

        async def mixed() -> str:
            event_id = new_event_id()
            [job] = peer_jobs(url, 1, context.data, event_id=event_id)
            [stuck] = peer_jobs(hanging.url(HANGING_PATH), 1, context.data, event_id=event_id)
            await peer.enqueue([job, stuck])
            return event_id

        result.add(setup.name, setup.label, await two_phases(context, prefix, healthy, mixed))
    finally:
        hanging.stop()
        await peer.close()


async def run(context: BenchContext) -> list[ScenarioResult]:
    profile = context.profile
    result = ScenarioResult(
        "isolation",
        "healthy p99 next to a hanging endpoint / alone",
        "x",
        "lower",
        f"{profile.isolation_rate_per_second:,} events/s for {profile.isolation_seconds:g} s "
        "per phase; the hanging endpoint holds each request until the "
        f"{profile.isolation_request_timeout_seconds:g} s timeout; our service: median of "
        f"{profile.repeats} runs, peers: 1 run each",
    )
    for topology in TOPOLOGIES:
        await guarded_section(run_ours(context, topology, result), topology.name, result)
    for setup in context.peers:
        await guarded_section(run_peer(context, setup, result), setup.name, result)
    return [result]
