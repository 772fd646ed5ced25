"""The goals this benchmark checks, evaluated on one run's record for each of our topologies."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bench.formatting import format_number

Goal = Literal[">=", "<=", "<"]
Reader = Callable[[dict[str, Any], str], float | None]

COMPARISONS: dict[Goal, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    """One goal: a number read from a scenario, compared with a threshold."""

    description: str
    scenario: str
    # Reads the number for one of our systems; None when the record lacks it.
    read: Reader
    goal: Goal
    threshold: float
    unit: str


def _median(scenario: dict[str, Any], system: str, key: str = "") -> float | None:
    entry = scenario["systems"].get(system)
    if entry is None:
        return None
    value = entry.get("medians", {}).get(key) if key else entry.get("median")
    return float(value) if isinstance(value, float | int) and math.isfinite(value) else None


def _ratio_to(reference: str) -> Reader:
    def read(scenario: dict[str, Any], system: str) -> float | None:
        ours, other = _median(scenario, system), _median(scenario, reference)
        return ours / other if ours is not None and other else None

    return read


def _field(key: str) -> Reader:
    return lambda scenario, system: _median(scenario, system, key)


def _value(scenario: dict[str, Any], system: str) -> float | None:
    return _median(scenario, system)


TARGETS = (
    Target("throughput vs the bare client", "throughput", _ratio_to("limit"), ">=", 0.6, "x"),
    Target("throughput vs Celery", "throughput", _ratio_to("celery"), ">=", 5.0, "x"),
    Target("throughput vs arq", "throughput", _ratio_to("arq"), ">=", 2.0, "x"),
    Target("latency p50 at the fixed rate", "latency", _field("p50_ms"), "<", 5.0, "ms"),
    Target("latency p99 at the fixed rate", "latency", _field("p99_ms"), "<", 25.0, "ms"),
    Target("fan-out, time to the last delivery", "fanout", _value, "<", 500.0, "ms"),
    Target("healthy p99 next to a hanging endpoint", "isolation", _value, "<=", 1.5, "x"),
    Target("ingestion over HTTP, one process", "ingestion", _value, ">=", 2000.0, "events/s"),
)


def evaluate(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per target and per our system that ran its scenario."""
    rows = []
    for target in TARGETS:
        scenario = record["scenarios"].get(target.scenario)
        if scenario is None:
            continue
        for system, entry in scenario["systems"].items():
            if not system.startswith("ours"):
                continue
            value = target.read(scenario, system)
            met = value is not None and COMPARISONS[target.goal](value, target.threshold)
            rows.append({"target": target, "system": entry["label"], "value": value, "met": met})
    return rows


def check_targets(record: dict[str, Any]) -> list[str]:
    """Render the targets as a Markdown table."""
    lines = [
        "## Targets",
        "",
        "| target | system | goal | measured | met |",
        "|---|---|---|---|---|",
    ]
    for row in evaluate(record):
        target: Target = row["target"]
        goal = f"{target.goal} {target.threshold:g} {target.unit}"
        measured = f"{format_number(row['value'])} {target.unit}"
        met = "yes" if row["met"] else "**no**"
        lines.append(f"| {target.description} | {row['system']} | {goal} | {measured} | {met} |")
    return lines
