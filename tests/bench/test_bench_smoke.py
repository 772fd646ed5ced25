"""The benchmark suite still runs end to end: a tiny run must write a complete record.

This times nothing. It runs two scenarios of the smoke profile, which between them
start every system (the bare client, each topology of the service, both peers) and
the HTTP publisher, and checks the shape of the record the report and docs read.
It needs nginx, PostgreSQL and Redis, as `make bench` does, and skips without them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 110
SCENARIOS = ("throughput", "ingestion")
RECORD_KEYS = {
    "schema_version",
    "started_at",
    "finished_at",
    "profile",
    "machine",
    "settings",
    "scenarios",
}
SCENARIO_KEYS = {"metric", "unit", "better", "description", "systems"}
SYSTEM_KEYS = {"label", "runs", "median", "medians", "complete"}
THROUGHPUT_SYSTEMS = {"limit", "ours-sqlite", "ours-pg-1w", "ours-pg-2w", "celery", "arq"}


def _missing_service() -> str | None:
    pytest.importorskip(
        "celery", reason="the bench extra is not installed: pip install -e '.[bench]'"
    )
    pytest.importorskip("arq", reason="the bench extra is not installed: pip install -e '.[bench]'")
    from bench.preflight import PreflightError, check_services
    from bench.sink import SinkError

    try:
        check_services()
    except (PreflightError, SinkError) as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = _missing_service()
    if missing:
        pytest.skip(missing)
    results = tmp_path_factory.mktemp("bench-results")
    command = [
        sys.executable,
        "-m",
        "bench",
        "--profile",
        "smoke",
        "--no-profiler",
        "--results-dir",
        str(results),
    ]
    for scenario in SCENARIOS:
        command += ["--scenario", scenario]
    completed = subprocess.run(
        command, cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    [path] = results.glob("*.json")
    assert path.with_suffix(".md").exists(), "the Markdown report was not written"
    return dict(json.loads(path.read_text()))


def test_smoke_record_top_level_keys(record: dict[str, Any]) -> None:
    assert set(record) >= RECORD_KEYS
    assert record["profile"]["name"] == "smoke"
    assert set(record["scenarios"]) == set(SCENARIOS)


def test_smoke_record_scenario_keys(record: dict[str, Any]) -> None:
    for name, scenario in record["scenarios"].items():
        assert set(scenario) >= SCENARIO_KEYS, name
        for system, entry in scenario["systems"].items():
            assert set(entry) >= SYSTEM_KEYS, f"{name} {system}"


def test_smoke_throughput_every_system(record: dict[str, Any]) -> None:
    systems = record["scenarios"]["throughput"]["systems"]
    assert set(systems) == THROUGHPUT_SYSTEMS
    for system, entry in systems.items():
        errors = [run.get("error") for run in entry["runs"] if run.get("error")]
        assert not errors, f"{system}: {errors}"
        assert entry["median"] is not None and entry["median"] > 0, system
