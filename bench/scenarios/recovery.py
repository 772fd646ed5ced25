"""Recovery after an outage, and the memory the service uses meanwhile.

The backlog is inserted directly: every delivery has one failed attempt (503) on record
and its retry is due now, which is the state a long outage leaves once the endpoint
is back. The service then starts and drains it. The drain time runs from the start of
the service processes to the last receipt. Memory is the resident set size of the
processes that run the delivery engine, sampled throughout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import BenchContext
from bench.ours import POSTGRES_ONE_WORKER, POSTGRES_TWO_WORKERS, SQLITE_ONE_PROCESS, Topology
from bench.processes import peak_rss_bytes, rss_bytes
from bench.record import ScenarioResult, guarded
from bench.scenarios.throughput import drain_record
from bench.seeding import create_tenant, register_webhooks, seed_backlog

TOPOLOGIES = (SQLITE_ONE_PROCESS, POSTGRES_ONE_WORKER, POSTGRES_TWO_WORKERS)
SAMPLE_INTERVAL_SECONDS = 0.25
MEBIBYTE = 1024 * 1024
RECORD_TIMEOUT_SECONDS = 60.0
MAX_CHART_SAMPLES = 200


async def sample_memory(
    pids: list[int], started: float, samples: list[tuple[float, float]]
) -> None:
    """Append (seconds since start, total RSS in MiB) until cancelled."""
    while True:
        sizes = [rss_bytes(pid) for pid in pids]
        total = sum(size for size in sizes if size is not None)
        samples.append((time.time() - started, total / MEBIBYTE))
        await asyncio.sleep(SAMPLE_INTERVAL_SECONDS)


async def one_run(context: BenchContext, topology: Topology) -> dict[str, Any]:
    count = context.profile.recovery_deliveries
    service = context.our_service(topology)
    try:
        prefix = context.prefix("recovery")
        tenant = create_tenant(service.engine, "bench")
        webhooks = register_webhooks(
            service.engine, service.box, tenant.account_id, [context.sink.url(prefix)]
        )
        await asyncio.to_thread(
            seed_backlog,
            service.engine,
            tenant.account_id,
            webhooks,
            count,
            context.data,
            after_outage=True,
        )
        reader = context.sink.reader(prefix)
        samples: list[tuple[float, float]] = []
        started = time.time()
        await service.start()
        sampler = asyncio.create_task(sample_memory(service.delivering_pids, started, samples))
        try:
            complete = await reader.wait_for(count, context.profile.run_timeout_seconds)
            recorded = complete and await service.wait_recorded(RECORD_TIMEOUT_SECONDS)
        finally:
            sampler.cancel()
        peaks = [peak_rss_bytes(pid) for pid in service.delivering_pids]
        service.check_running()
        await reader.settle()
        record = drain_record(reader, count, complete and recorded, recorded=recorded)
        return {
            **record,
            "rate": record["value"],
            "value": (record["last_receipt"] - started) if record["last_receipt"] else float("nan"),
            "peak_rss_mib": sum(peak for peak in peaks if peak is not None) / MEBIBYTE,
            "rss_at_first_receipt_mib": _size_at(
                samples, (record["first_receipt"] or started) - started
            ),
            "rss_samples_mib": samples[:: max(1, len(samples) // MAX_CHART_SAMPLES)],
        }
    finally:
        service.close()


def _size_at(samples: list[tuple[float, float]], seconds: float) -> float:
    """Return the first sample taken at or after `seconds`, once the processes were running."""
    return next((size for at, size in samples if at >= seconds), float("nan"))


async def run(context: BenchContext) -> list[ScenarioResult]:
    count = context.profile.recovery_deliveries
    recovery = ScenarioResult(
        "recovery",
        "time to drain",
        "s",
        "lower",
        f"{count:,} deliveries due for retry after an outage, "
        "from the service's start to the last receipt",
    )
    memory = ScenarioResult(
        "memory",
        "peak RSS while draining",
        "MiB",
        "lower",
        f"resident set size of the delivery processes, summed over workers, "
        f"while draining {count:,} deliveries",
    )
    for topology in TOPOLOGIES:
        label = f"ours: {topology.label}"
        record = await guarded(one_run(context, topology), topology.name)
        recovery.add(topology.name, label, record)
        memory_fields: dict[str, Any] = {
            key: record[key]
            for key in ("complete", "rss_at_first_receipt_mib", "error")
            if key in record
        }
        memory.add(
            topology.name,
            label,
            {**memory_fields, "value": record.get("peak_rss_mib", float("nan"))},
        )
    return [recovery, memory]
