"""Runs the selected scenarios in one go against one sink and writes the run's record."""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bench import profiler
from bench.context import BenchContext
from bench.machine import describe_machine
from bench.preflight import check_services
from bench.profiles import Profile
from bench.record import ScenarioResult
from bench.scenarios import fanout, ingestion, isolation, latency, recovery, throughput
from bench.sink import NginxSink

logger = logging.getLogger(__name__)

RECORD_SCHEMA_VERSION = 1
Scenario = Callable[[BenchContext], Awaitable[list[ScenarioResult]]]
SCENARIOS: dict[str, Scenario] = {
    "throughput": throughput.run,
    "fanout": fanout.run,
    "latency": latency.run,
    "isolation": isolation.run,
    "ingestion": ingestion.run,
    "recovery": recovery.run,
}


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinity, which JSON cannot hold, with null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def new_record(profile: Profile, context: BenchContext, started: datetime) -> dict[str, Any]:
    """Start a record with what the run measured on and with which settings."""
    settings = context.service_environment() | {"WP_LLM_SECRET_KEY": "(generated per run)"}
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "started_at": started.isoformat(),
        "profile": asdict(profile),
        "machine": describe_machine(),
        "settings": settings,
        "scenarios": {},
    }


async def run_scenarios(
    context: BenchContext, selected: Sequence[str], record: dict[str, Any]
) -> None:
    """Run each scenario; one that fails outright is logged and listed under `errors`."""
    for name in selected:
        began = time.monotonic()
        logger.info("scenario %s started", name)
        try:
            for result in await SCENARIOS[name](context):
                record["scenarios"][result.name] = result.as_dict()
        except Exception as error:  # noqa: BLE001 - later scenarios still run and are recorded
            logger.exception("scenario %s failed", name)
            record.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"[:2000]
        logger.info("scenario %s finished in %.1f s", name, time.monotonic() - began)


async def run_suite(
    profile: Profile,
    selected: Sequence[str],
    results_dir: Path,
    *,
    with_profiler: bool,
    keep_work: bool,
) -> Path:
    """Run the scenarios and return the path of the JSON record written into `results_dir`."""
    check_services()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="wp-llm-bench-"))
    sink = NginxSink().start()
    context = BenchContext(profile, sink, work_dir, Fernet.generate_key().decode())
    record = new_record(profile, context, started)

    try:
        await run_scenarios(context, selected, record)
        if with_profiler:
            record["profile_samples"] = await profiler.profile_hot_path(context, results_dir, stamp)
    finally:
        sink.stop()
        if keep_work:
            logger.info("work folder kept at %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    record["finished_at"] = datetime.now(UTC).isoformat()
    path = results_dir / f"{stamp}.json"
    path.write_text(json.dumps(_json_safe(record), indent=2) + "\n")
    return path
