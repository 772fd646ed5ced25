"""Ingestion: events stored per second through POST /v1/events by N keep-alive clients.

Every event has one subscribed webhook, so each request stores an event and a
delivery in one transaction. The API-only runs measure storing alone; the one-process
SQLite run also sends each delivery to the sink while it ingests, as `wp-llm serve`
does by default.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from bench.context import BenchContext
from bench.heap import frozen_heap
from bench.ours import POSTGRES_API_ONLY, SQLITE_API_ONLY, SQLITE_ONE_PROCESS, OurService, Topology
from bench.processes import tree_cpu_seconds
from bench.publisher import ApiPublisher
from bench.record import ScenarioResult, guarded, guarded_section
from bench.seeding import create_tenant, register_webhooks
from wp_llm.server.db.schema import events

TOPOLOGIES = (SQLITE_API_ONLY, SQLITE_ONE_PROCESS, POSTGRES_API_ONLY)
WARM_UP_EVENTS = 50
# The batch form: events per request, and requests in flight at once.
BATCH_SIZE = 100
BATCH_CLIENTS = 4


def stored_events(service: OurService) -> int:
    with service.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


async def publish_flat_out(
    publisher: ApiPublisher, data: dict[str, Any], count: int, clients: int
) -> list[str]:
    """Publish `count` events from `clients` concurrent loops; return the errors."""
    remaining = iter(range(count))
    errors: list[str] = []

    async def client() -> None:
        for _ in remaining:
            try:
                await publisher.publish(data)
            except RuntimeError as error:
                errors.append(str(error)[:300])

    await asyncio.gather(*(client() for _ in range(clients)))
    return errors


async def publish_batches_flat_out(
    publisher: ApiPublisher, data: dict[str, Any], count: int, clients: int
) -> list[str]:
    """Publish `count` events in batches of up to BATCH_SIZE from `clients` loops."""
    sizes = iter([min(BATCH_SIZE, count - start) for start in range(0, count, BATCH_SIZE)])
    errors: list[str] = []

    async def client() -> None:
        for size in sizes:
            try:
                await publisher.publish_batch(data, size)
            except RuntimeError as error:
                errors.append(str(error)[:300])

    await asyncio.gather(*(client() for _ in range(clients)))
    return errors


async def one_run(
    context: BenchContext,
    service: OurService,
    publisher: ApiPublisher,
    clients: int,
    *,
    batches: bool = False,
) -> dict[str, Any]:
    count = context.profile.ingestion_events
    pids = [process.pid for process in service.processes]
    before = await asyncio.to_thread(stored_events, service)
    publish = publish_batches_flat_out if batches else publish_flat_out
    with frozen_heap():
        cpu_before = sum(map(tree_cpu_seconds, pids))
        started = time.perf_counter()
        errors = await asyncio.wait_for(
            publish(publisher, context.data, count, clients),
            context.profile.run_timeout_seconds,
        )
        elapsed = time.perf_counter() - started
        cpu_seconds = sum(map(tree_cpu_seconds, pids)) - cpu_before
    stored = await asyncio.to_thread(stored_events, service) - before
    return {
        "value": stored / elapsed,
        # CPU of the service's processes per stored event; the database server's is not counted.
        "cpu_ms_per_event": cpu_seconds * 1000 / stored if stored else float("nan"),
        "complete": not errors and stored == count,
        "stored": stored,
        "expected": count,
        "seconds": elapsed,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def run_topology(context: BenchContext, topology: Topology, result: ScenarioResult) -> None:
    service = context.our_service(topology, api=True)
    try:
        tenant = create_tenant(service.engine, "bench")
        register_webhooks(
            service.engine,
            service.box,
            tenant.account_id,
            [context.sink.url(context.prefix("ingest"))],
        )
        await service.start()
        for clients in context.profile.ingestion_clients:
            async with ApiPublisher(service.api_url, tenant.api_key, clients) as publisher:
                await publish_flat_out(publisher, context.data, WARM_UP_EVENTS, clients)
                for _ in range(context.profile.repeats):
                    record = await guarded(
                        one_run(context, service, publisher, clients), topology.name
                    )
                    label = f"ours: {topology.label}, {clients} client{'s' if clients > 1 else ''}"
                    result.add(f"{topology.name}-c{clients}", label, {**record, "clients": clients})
        await run_batches(context, service, tenant.api_key, topology, result)
        service.check_running()
    finally:
        service.close()


async def run_batches(
    context: BenchContext,
    service: OurService,
    api_key: str,
    topology: Topology,
    result: ScenarioResult,
) -> None:
    """Measure the batch form, `POST /v1/events/batch`, with BATCH_CLIENTS clients."""
    clients = min(BATCH_CLIENTS, max(context.profile.ingestion_clients))
    async with ApiPublisher(service.api_url, api_key, clients) as publisher:
        await publish_batches_flat_out(publisher, context.data, WARM_UP_EVENTS, clients)
        for _ in range(context.profile.repeats):
            run = one_run(context, service, publisher, clients, batches=True)
            record = await guarded(run, topology.name)
            label = f"ours: {topology.label}, batches of {BATCH_SIZE}, {clients} clients"
            result.add(
                f"{topology.name}-batch",
                label,
                {**record, "clients": clients, "batch_size": BATCH_SIZE},
            )


async def run(context: BenchContext) -> list[ScenarioResult]:
    result = ScenarioResult(
        "ingestion",
        "stored events",
        "events/s",
        "higher",
        f"{context.profile.ingestion_events:,} events per run over keep-alive connections; "
        f"median of {context.profile.repeats} runs per client count",
    )
    for topology in TOPOLOGIES:
        await guarded_section(run_topology(context, topology, result), topology.name, result)
    return [result]
