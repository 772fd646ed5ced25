"""py-spy profiles of our two hot paths: the engine draining the throughput backlog, and
the API storing events as fast as the ingestion clients send them.

py-spy samples the engine process from outside (`py-spy record --nonblocking`, so the
process is never paused) and writes collapsed stacks. py-spy leaves out the samples it
detects as idle, and the summary also sets apart those whose leaf is a known waiting
call, so the shares are shares of work. The summary groups samples by function and by package.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.ours import POSTGRES_ONE_WORKER, SQLITE_API_ONLY, SQLITE_ONE_PROCESS, Topology
from bench.publisher import ApiPublisher
from bench.record import guarded
from bench.scenarios.ingestion import publish_flat_out
from bench.seeding import create_tenant, register_webhooks, seed_backlog
from bench.stats import delivery_rate
from wp_llm.server.store import webhooks as webhook_store

PROFILED_TOPOLOGIES = (SQLITE_ONE_PROCESS, POSTGRES_ONE_WORKER)
SAMPLE_RATE_HZ = 100
# A worker process has no readiness endpoint; py-spy cannot attach before the interpreter is up.
WORKER_START_SECONDS = 2.0
ATTACH_ATTEMPTS = 3
ATTACH_CHECK_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 15.0
TOP_FUNCTIONS = 25
# Stacks of threads other than the main one start in this module's bootstrap frame.
THREAD_BOOTSTRAP_FILE = "threading.py"
PROJECT_PACKAGE = "wp_llm/"
# Leaf frames where a thread waits rather than works. py-spy cannot always tell, for
# example for a thread-pool thread blocked on its queue or psycopg waiting for the server.
# `Runner.run` is the leaf while uvloop runs in C, which is mostly its epoll wait.
WAITING_LEAVES = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "_worker (concurrent/futures/thread.py",
    "Runner.run (asyncio/runners.py",
    "EpollSelector.select (selectors.py",
    "Connection.wait (psycopg/connection.py",
)
# Entry-point frames of the project, which are under every sample and so carry no signal.
PROJECT_ENTRY_FRAMES = ("wp_llm/__main__.py", "wp_llm/cli/")


def py_spy_binary() -> str:
    beside_python = Path(sys.executable).with_name("py-spy")
    found = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError(
            "py-spy is not installed; install the bench extra: pip install -e '.[bench]'"
        )
    return found


async def start_py_spy(pid: int, output: Path, seconds: float) -> asyncio.subprocess.Process:
    """Attach py-spy, retrying while the target is too young for py-spy to read its version."""
    command = [
        py_spy_binary(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(SAMPLE_RATE_HZ),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(output),
        "--duration",
        str(int(seconds)),
    ]
    for _ in range(ATTACH_ATTEMPTS):
        spy = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            await asyncio.wait_for(spy.wait(), ATTACH_CHECK_SECONDS)
        except TimeoutError:
            return spy
    error = (await spy.stderr.read()).decode(errors="replace")[:500] if spy.stderr else ""
    raise RuntimeError(f"py-spy could not attach to pid {pid}: {error}")


async def stop_py_spy(spy: asyncio.subprocess.Process) -> None:
    """Stop early with SIGINT, on which py-spy still writes what it sampled."""
    if spy.returncode is None:
        spy.send_signal(signal.SIGINT)
    await asyncio.wait_for(spy.wait(), STOP_TIMEOUT_SECONDS)


def _function(frame: str) -> str:
    """Drop the line number: `send (wp_llm/sender.py:98)` becomes `send (wp_llm/sender.py)`."""
    name, _, location = frame.partition(" (")
    return f"{name} ({location.rsplit(':', 1)[0]})" if location else name


def _package(frame: str) -> str:
    location = frame.partition(" (")[2].rsplit(":", 1)[0]
    parts = Path(location).parts
    if not parts:
        return "?"
    if parts[0] == "wp_llm" and len(parts) > 2:
        return "/".join(parts[:3]).removesuffix(".py")
    return parts[0].removesuffix(".py")


def _is_waiting(leaf: str) -> bool:
    return any(leaf.startswith(prefix) for prefix in WAITING_LEAVES)


def _thread_kind(frames: list[str]) -> str:
    if THREAD_BOOTSTRAP_FILE in frames[0]:
        return "other threads (thread pools)"
    return "main thread (event loop)"


def summarize(collapsed: Path) -> dict[str, Any]:
    """Group py-spy's collapsed stacks by leaf function, by any function and by package.

    Samples whose leaf is a known waiting call are counted apart and left out of the
    shares, so the shares are of work.
    """
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    project: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        if _is_waiting(frames[-1]):
            waiting += count
            continue

        total += count
        self_time[_function(frames[-1])] += count
        packages[_package(frames[-1])] += count
        threads[_thread_kind(frames)] += count
        names = {_function(frame) for frame in frames}
        for name in names:
            inclusive[name] += count
            if PROJECT_PACKAGE in name and not any(entry in name for entry in PROJECT_ENTRY_FRAMES):
                project[name] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": name, "percent": 100.0 * n / total}
            for name, n in counter.most_common(TOP_FUNCTIONS)
        ]

    return {
        "samples": total,
        "waiting_samples": waiting,
        "by_thread": shares(threads),
        "self_by_package": shares(packages),
        "self_by_function": shares(self_time),
        "inclusive_by_function": shares(inclusive),
        "inclusive_by_project_function": shares(project),
    }


async def profile_delivery(
    context: BenchContext, topology: Topology, output: Path
) -> dict[str, Any]:
    count = context.profile.throughput_deliveries
    service = context.our_service(topology)
    try:
        prefix = context.prefix("profile")
        tenant = create_tenant(service.engine, "bench")
        [webhook] = register_webhooks(
            service.engine, service.box, tenant.account_id, [context.sink.url(prefix)]
        )
        # The backlog waits behind a disabled webhook until py-spy is attached.
        webhook_store.update_webhook(service.engine, tenant.account_id, webhook, {"enabled": False})
        await asyncio.to_thread(
            seed_backlog, service.engine, tenant.account_id, [webhook], count, context.data
        )
        await service.start()
        if not topology.api_engine:
            await asyncio.sleep(WORKER_START_SECONDS)
        spy = await start_py_spy(
            service.delivering_pids[0], output, context.profile.profile_seconds
        )
        reader = context.sink.reader(prefix)
        webhook_store.update_webhook(service.engine, tenant.account_id, webhook, {"enabled": True})
        drained = await reader.wait_for(count, context.profile.profile_seconds)
        await stop_py_spy(spy)
        await reader.settle()
        return {
            **summarize(output),
            "file": output.name,
            "drained": drained,
            "rate_while_profiled": delivery_rate(reader.receipts),
        }
    finally:
        service.close()


async def profile_ingestion(context: BenchContext, output: Path) -> dict[str, Any]:
    """Profile the API process alone while the most clients of the ingestion scenario publish."""
    clients = max(context.profile.ingestion_clients)
    service = context.our_service(SQLITE_API_ONLY, api=True)
    try:
        tenant = create_tenant(service.engine, "bench")
        register_webhooks(
            service.engine,
            service.box,
            tenant.account_id,
            [context.sink.url(context.prefix("profile"))],
        )
        await service.start()
        spy = await start_py_spy(service.processes[0].pid, output, context.profile.profile_seconds)
        async with ApiPublisher(service.api_url, tenant.api_key, clients) as publisher:
            await publish_flat_out(
                publisher, context.data, context.profile.ingestion_events, clients
            )
        await stop_py_spy(spy)
        return {**summarize(output), "file": output.name, "clients": clients}
    finally:
        service.close()


async def profile_hot_path(context: BenchContext, results_dir: Path, stamp: str) -> dict[str, Any]:
    """Profile each engine topology and the API once; return a summary per profile."""
    summaries = {}
    for topology in PROFILED_TOPOLOGIES:
        output = results_dir / f"{stamp}-pyspy-{topology.name}.txt"
        run = profile_delivery(context, topology, output)
        summaries[f"delivery {topology.name}"] = await guarded(run, f"profile {topology.name}")
    output = results_dir / f"{stamp}-pyspy-ingestion.txt"
    summaries["ingestion ours-sqlite-api"] = await guarded(
        profile_ingestion(context, output), "profile ingestion"
    )
    return summaries
