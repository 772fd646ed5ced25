"""Sustained delivery throughput: a backlog of 1 KB events to one endpoint, drained flat out.

Every system starts with its whole backlog already queued: in the database for our
service, in Redis for the peers. The rate is the number of distinct deliveries the sink
logged divided by the time between its first and last receipt, so start-up time counts
for no system. Repeats run round-robin across systems, which spreads machine noise.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from bench import limit
from bench.context import BenchContext
from bench.heap import frozen_heap
from bench.ours import POSTGRES_ONE_WORKER, POSTGRES_TWO_WORKERS, SQLITE_ONE_PROCESS, Topology
from bench.payload import new_delivery_id, new_event_id, peer_envelope
from bench.peers.control import PeerSetup
from bench.peers.jobs import Job
from bench.processes import tree_cpu_seconds
from bench.record import ScenarioResult, guarded
from bench.seeding import create_tenant, register_webhooks, seed_backlog
from bench.sink import ReceiptReader
from bench.stats import delivery_rate, successful

LIMIT = "limit"
LIMIT_LABEL = "bare aiohttp client on uvloop"
TOPOLOGIES = (SQLITE_ONE_PROCESS, POSTGRES_ONE_WORKER, POSTGRES_TWO_WORKERS)
# Time allowed after the last receipt for the final attempts to be written down.
RECORD_TIMEOUT_SECONDS = 30.0


def drain_record(
    reader: ReceiptReader, expected: int, complete: bool, **extra: Any
) -> dict[str, Any]:
    """Summarize one drain: its rate, how many arrived, and the span between first and last."""
    answered = successful(reader.receipts)
    times = [receipt.at for receipt in answered]
    return {
        "value": delivery_rate(reader.receipts),
        "complete": complete,
        "expected": expected,
        "delivered": len({receipt.delivery_id for receipt in answered}),
        "span_seconds": (max(times) - min(times)) if times else None,
        "first_receipt": min(times) if times else None,
        "last_receipt": max(times) if times else None,
        **extra,
    }


async def drain_with_cpu(
    reader: ReceiptReader, count: int, timeout: float, pids: Callable[[], list[int]]
) -> tuple[bool, float]:
    """Wait for `count` deliveries; return whether all came, and CPU ms per delivery.

    CPU time is that of the system's own processes and their children, from the first
    receipt the bench reads to the last, so start-up work is left out. Database and
    Redis servers are not counted.
    """
    if not await reader.wait_for(1, timeout):
        return False, math.nan
    cpu_before, seen_before = sum(map(tree_cpu_seconds, pids())), len(reader.delivery_ids)
    complete = await reader.wait_for(count, timeout)
    cpu_after, seen_after = sum(map(tree_cpu_seconds, pids())), len(reader.delivery_ids)
    delivered = seen_after - seen_before
    return complete, (cpu_after - cpu_before) * 1000 / delivered if delivered else math.nan


async def run_limit(context: BenchContext, count: int) -> dict[str, Any]:
    prefix = context.prefix("throughput")
    reader = context.sink.reader(prefix)
    with frozen_heap():
        cpu_before = time.process_time()
        sending = limit.post_all(
            context.sink.url(prefix),
            count,
            context.profile.concurrency,
            False,
            context.profile.event_bytes,
        )
        await asyncio.wait_for(sending, context.profile.run_timeout_seconds)
        # The bare client runs in this process, so the process's own CPU time is the client's.
        cpu_ms = (time.process_time() - cpu_before) * 1000 / count
    complete = await reader.wait_for(count, context.profile.run_timeout_seconds)
    await reader.settle()
    return drain_record(reader, count, complete, cpu_ms_per_delivery=cpu_ms)


async def run_ours(context: BenchContext, topology: Topology, count: int) -> dict[str, Any]:
    service = context.our_service(topology)
    try:
        prefix = context.prefix("throughput")
        tenant = create_tenant(service.engine, "bench")
        webhooks = register_webhooks(
            service.engine, service.box, tenant.account_id, [context.sink.url(prefix)]
        )
        await asyncio.to_thread(
            seed_backlog, service.engine, tenant.account_id, webhooks, count, context.data
        )
        reader = context.sink.reader(prefix)
        started = time.time()
        await service.start()
        pids = [process.pid for process in service.processes]
        complete, cpu_ms = await drain_with_cpu(
            reader, count, context.profile.run_timeout_seconds, lambda: pids
        )
        recorded = complete and await service.wait_recorded(RECORD_TIMEOUT_SECONDS)
        service.check_running()
        await reader.settle()
        return drain_record(
            reader,
            count,
            complete and recorded,
            recorded=recorded,
            started=started,
            cpu_ms_per_delivery=cpu_ms,
        )
    finally:
        service.close()


def peer_jobs(
    url: str, count: int, data: dict[str, Any], *, spread: bool = False, event_id: str | None = None
) -> list[Job]:
    """Build `count` jobs, one event each unless `event_id` is given.

    With `spread`, job i goes to `url/i`.
    """
    jobs: list[Job] = []
    # A producer serializes a fanned-out event once; separate events each get their own body.
    shared_body = peer_envelope(event_id, data).decode() if event_id else None
    for index in range(count):
        job_event_id = event_id or new_event_id()
        target = f"{url}/{index}" if spread else url
        body = shared_body or peer_envelope(job_event_id, data).decode()
        jobs.append(
            Job(url=target, event_id=job_event_id, delivery_id=new_delivery_id(), body=body)
        )
    return jobs


async def run_peer(context: BenchContext, setup: PeerSetup, count: int) -> dict[str, Any]:
    peer = context.peer(setup)
    try:
        prefix = context.prefix("throughput")
        await peer.enqueue(peer_jobs(context.sink.url(prefix), count, context.data))
        reader = context.sink.reader(prefix)
        peer.start()
        complete, cpu_ms = await drain_with_cpu(
            reader, count, context.profile.run_timeout_seconds, lambda: [peer.pid]
        )
        peer.check_running()
        await reader.settle()
        attempts = await asyncio.to_thread(peer.attempt_count)
        return drain_record(
            reader, count, complete, attempts_recorded=attempts, cpu_ms_per_delivery=cpu_ms
        )
    finally:
        await peer.close()


async def run(context: BenchContext) -> list[ScenarioResult]:
    count = context.profile.throughput_deliveries
    result = ScenarioResult(
        "throughput",
        "rate",
        "deliveries/s",
        "higher",
        f"{count:,} deliveries of {context.profile.event_bytes} B events to one endpoint, "
        f"{context.profile.concurrency} connections; median of {context.profile.repeats} runs",
    )
    for _ in range(context.profile.repeats):
        result.add(LIMIT, LIMIT_LABEL, await guarded(run_limit(context, count), "limit"))
        for topology in TOPOLOGIES:
            record = await guarded(run_ours(context, topology, count), topology.name)
            result.add(topology.name, f"ours: {topology.label}", record)
        for setup in context.peers:
            result.add(
                setup.name, setup.label, await guarded(run_peer(context, setup, count), setup.name)
            )
    return [result]
