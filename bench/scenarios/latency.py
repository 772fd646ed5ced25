"""Publish-to-receipt latency at a fixed rate, from when each event was due to its receipt.

Events are published open-loop, on a fixed schedule: to our API with POST /v1/events,
or as one enqueued job per event for the peers. The latency of an event is the sink's
log time minus the time the event was due, so time spent queueing in the producer
counts too. nginx logs times in milliseconds, which bounds the resolution.

Our topologies run a second time at a lower rate, so that the record shows what the
latency is when the machine has CPU to spare. Each run of ours also records the CPU
time its processes spent per event.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from bench.context import BenchContext
from bench.heap import frozen_heap
from bench.ours import POSTGRES_ONE_PROCESS, POSTGRES_ONE_WORKER, SQLITE_ONE_PROCESS, Topology
from bench.payload import new_event_id
from bench.peers.control import PeerSetup
from bench.processes import tree_cpu_seconds
from bench.profiles import Profile
from bench.publisher import RATE_CONNECTIONS, ApiPublisher, publish_at_rate
from bench.record import ScenarioResult, guarded, guarded_section
from bench.scenarios.throughput import peer_jobs
from bench.seeding import create_tenant, register_webhooks
from bench.sink import Receipt
from bench.stats import MILLISECONDS_PER_SECOND, latency_summary, percentile, successful

TOPOLOGIES = (SQLITE_ONE_PROCESS, POSTGRES_ONE_PROCESS, POSTGRES_ONE_WORKER)
WARM_UP_SECONDS = 1.0
# Time allowed after the last event was due for its delivery to arrive.
DRAIN_SECONDS = 30.0

Send = Callable[[], Awaitable[str]]


def receipt_latencies(
    receipts: list[Receipt], due: dict[str, float], path: str | None = None
) -> list[float]:
    """Seconds from due to first receipt per event; an event never received counts as infinite."""
    first: dict[str, float] = {}
    for receipt in successful(receipts):
        if receipt.event_id in due and (path is None or receipt.path == path):
            first[receipt.event_id] = min(receipt.at, first.get(receipt.event_id, math.inf))
    return [first.get(event_id, math.inf) - at for event_id, at in due.items()]


async def measure(
    context: BenchContext,
    prefix: str,
    send: Send,
    rate: float,
    seconds: float,
    path: str | None = None,
) -> dict[str, Any]:
    """Publish at `rate` for `seconds` and summarize each event's latency to the sink."""
    reader = context.sink.reader(prefix)
    with frozen_heap():
        log = await publish_at_rate(send, rate, seconds)
    complete = await reader.wait_for(len(log.due), DRAIN_SECONDS)
    await reader.settle()
    latencies = receipt_latencies(reader.receipts, log.due, path)
    summary = latency_summary(latencies)
    return {
        "value": summary["p99_ms"],
        **summary,
        "complete": complete and not log.errors and all(math.isfinite(v) for v in latencies),
        "published": len(log.due),
        "undelivered": sum(1 for value in latencies if not math.isfinite(value)),
        "publish_errors": len(log.errors),
        "first_publish_error": log.errors[0] if log.errors else None,
        "publish_p50_ms": percentile(log.response_seconds, 0.5) * MILLISECONDS_PER_SECOND,
        "publish_p99_ms": percentile(log.response_seconds, 0.99) * MILLISECONDS_PER_SECOND,
    }


async def run_ours(
    context: BenchContext, topology: Topology, results: list[tuple[ScenarioResult, int]]
) -> None:
    """Measure one topology at each rate of `results`, on one service started once."""
    profile = context.profile
    service = context.our_service(topology, api=True)
    try:
        prefix = context.prefix("latency")
        tenant = create_tenant(service.engine, "bench")
        register_webhooks(
            service.engine, service.box, tenant.account_id, [context.sink.url(prefix)]
        )
        await service.start()
        async with ApiPublisher(service.api_url, tenant.api_key, RATE_CONNECTIONS) as publisher:

            async def send() -> str:
                return await publisher.publish(context.data)

            for result, rate in results:
                await measure(context, prefix, send, rate, WARM_UP_SECONDS)
                for _ in range(profile.repeats):
                    record = await guarded(
                        measure_with_cpu(context, service.pids, prefix, send, rate),
                        topology.name,
                    )
                    result.add(topology.name, f"ours: {topology.label}", record)
        service.check_running()
    finally:
        service.close()


async def measure_with_cpu(
    context: BenchContext, pids: list[int], prefix: str, send: Send, rate: float
) -> dict[str, Any]:
    """Run `measure`, adding the CPU milliseconds the service's processes spent per event.

    The CPU time runs to when the last event arrived and the sink settled, so it includes
    recording the attempts.
    """
    before = sum(map(tree_cpu_seconds, pids))
    record = await measure(context, prefix, send, rate, context.profile.latency_seconds)
    spent = sum(map(tree_cpu_seconds, pids)) - before
    published = record["published"]
    record["cpu_ms_per_event"] = spent * 1000 / published if published else math.nan
    return record


async def run_peer(context: BenchContext, setup: PeerSetup, result: ScenarioResult) -> None:
    profile = context.profile
    peer = context.peer(setup)
    try:
        prefix = context.prefix("latency")
        url = context.sink.url(prefix)
        peer.start()

        async def send() -> str:
            [job] = peer_jobs(url, 1, context.data, event_id=new_event_id())
            await peer.enqueue([job])
            return job["event_id"]

        await measure(context, prefix, send, profile.latency_rate_per_second, WARM_UP_SECONDS)
        for _ in range(profile.repeats):
            record = await guarded(
                measure(
                    context, prefix, send, profile.latency_rate_per_second, profile.latency_seconds
                ),
                setup.name,
            )
            result.add(setup.name, setup.label, record)
        peer.check_running()
    finally:
        await peer.close()


async def run(context: BenchContext) -> list[ScenarioResult]:
    profile = context.profile
    result = _result("latency", profile.latency_rate_per_second, profile, peers=True)
    rates = [(result, profile.latency_rate_per_second)]
    lower = None
    if profile.latency_lower_rate_per_second:
        lower = _result(
            "latency at a lower rate", profile.latency_lower_rate_per_second, profile, peers=False
        )
        rates.append((lower, profile.latency_lower_rate_per_second))
    for topology in TOPOLOGIES:
        await guarded_section(run_ours(context, topology, rates), topology.name, result)
    for setup in context.peers:
        await guarded_section(run_peer(context, setup, result), setup.name, result)
    return [result] if lower is None else [result, lower]


def _result(name: str, rate: int, profile: Profile, *, peers: bool) -> ScenarioResult:
    systems = "" if peers else ", our systems only"
    return ScenarioResult(
        name,
        "p99 publish-to-receipt",
        "ms",
        "lower",
        f"{rate:,} events/s for {profile.latency_seconds:g} s to one endpoint{systems}; "
        f"median of {profile.repeats} runs",
    )
