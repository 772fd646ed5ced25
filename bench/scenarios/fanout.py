"""Fan-out: one event to 1,000 endpoints, each at its own path; time until the last receipt.

The clock starts when the producer starts publishing: the POST to our API, the
enqueue of one job per endpoint for the peers, the first request of the bare client.
Each system first delivers one untimed event, so connections are warm, as in a
running service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import limit
from bench.context import BenchContext
from bench.heap import frozen_heap
from bench.ours import POSTGRES_ONE_PROCESS, POSTGRES_ONE_WORKER, SQLITE_ONE_PROCESS, Topology
from bench.payload import new_event_id
from bench.peers.control import PeerSetup
from bench.publisher import ApiPublisher
from bench.record import ScenarioResult, guarded, guarded_section
from bench.scenarios.throughput import LIMIT, LIMIT_LABEL, peer_jobs
from bench.seeding import create_tenant, register_webhooks
from bench.stats import MILLISECONDS_PER_SECOND, successful

TOPOLOGIES = (SQLITE_ONE_PROCESS, POSTGRES_ONE_PROCESS, POSTGRES_ONE_WORKER)
PUBLISH_CONNECTIONS = 4

Publish = Callable[[], Awaitable[Any]]


async def timed_fanout(context: BenchContext, prefix: str, publish: Publish) -> dict[str, Any]:
    """Publish once and wait until every endpoint under `prefix` got its delivery."""
    count = context.profile.fanout_endpoints
    reader = context.sink.reader(prefix)
    with frozen_heap():
        started = time.time()
        await publish()
        complete = await reader.wait_for(count, context.profile.run_timeout_seconds)
    await reader.settle()
    times = [receipt.at for receipt in successful(reader.receipts)]
    if not times:
        return {"value": float("nan"), "complete": False, "delivered": 0}
    return {
        "value": (max(times) - started) * MILLISECONDS_PER_SECOND,
        "complete": complete,
        "expected": count,
        "delivered": len(reader.delivery_ids),
        "first_receipt_ms": (min(times) - started) * MILLISECONDS_PER_SECOND,
    }


async def run_limit(context: BenchContext, result: ScenarioResult) -> None:
    for _ in range(context.profile.repeats):
        prefix = context.prefix("fanout")
        url, count = context.sink.url(prefix), context.profile.fanout_endpoints

        async def publish(url: str = url, count: int = count) -> int:
            return await limit.post_all(
                url, count, context.profile.concurrency, True, context.profile.event_bytes
            )

        result.add(
            LIMIT, LIMIT_LABEL, await guarded(timed_fanout(context, prefix, publish), "limit")
        )


async def run_ours(context: BenchContext, topology: Topology, result: ScenarioResult) -> None:
    service = context.our_service(topology, api=True)
    try:
        prefix = context.prefix("fanout")
        tenant = create_tenant(service.engine, "bench")
        urls = [
            context.sink.url(f"{prefix}/{index}")
            for index in range(context.profile.fanout_endpoints)
        ]
        await asyncio.to_thread(
            register_webhooks, service.engine, service.box, tenant.account_id, urls
        )
        await service.start()
        async with ApiPublisher(service.api_url, tenant.api_key, PUBLISH_CONNECTIONS) as publisher:

            async def publish() -> str:
                return await publisher.publish(context.data)

            await timed_fanout(context, prefix, publish)
            for _ in range(context.profile.repeats):
                record = await guarded(timed_fanout(context, prefix, publish), topology.name)
                result.add(topology.name, f"ours: {topology.label}", record)
    finally:
        service.close()


async def run_peer(context: BenchContext, setup: PeerSetup, result: ScenarioResult) -> None:
    peer = context.peer(setup)
    try:
        prefix = context.prefix("fanout")
        url = context.sink.url(prefix)
        peer.start()

        async def publish() -> None:
            jobs = peer_jobs(
                url,
                context.profile.fanout_endpoints,
                context.data,
                spread=True,
                event_id=new_event_id(),
            )
            await peer.enqueue(jobs)

        await timed_fanout(context, prefix, publish)
        for _ in range(context.profile.repeats):
            result.add(
                setup.name,
                setup.label,
                await guarded(timed_fanout(context, prefix, publish), setup.name),
            )
        peer.check_running()
    finally:
        await peer.close()


async def run(context: BenchContext) -> list[ScenarioResult]:
    result = ScenarioResult(
        "fanout",
        "time to last delivery",
        "ms",
        "lower",
        f"one event to {context.profile.fanout_endpoints:,} endpoints at distinct paths; "
        f"median of {context.profile.repeats} runs",
    )
    await run_limit(context, result)
    for topology in TOPOLOGIES:
        await guarded_section(run_ours(context, topology, result), topology.name, result)
    for setup in context.peers:
        await guarded_section(run_peer(context, setup, result), setup.name, result)
    return [result]
