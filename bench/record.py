"""The JSON shape of results: per scenario, per system, every run and the median of their values."""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Awaitable
from typing import Any, Literal

from bench.stats import median

logger = logging.getLogger(__name__)

Better = Literal["higher", "lower"]


class ScenarioResult:
    """Runs of one scenario grouped by system, in the order the systems first ran."""

    def __init__(self, name: str, metric: str, unit: str, better: Better, description: str) -> None:
        self.name = name
        self.metric = metric
        self.unit = unit
        self.better = better
        self.description = description
        self.systems: dict[str, dict[str, Any]] = {}

    def add(self, system: str, label: str, run: dict[str, Any]) -> None:
        """Add one run; the system's medians cover every number that all its runs report."""
        entry = self.systems.setdefault(system, {"label": label, "runs": []})
        entry["runs"].append(run)
        entry["median"] = _median_of(entry["runs"], "value")
        shared = set.intersection(*(set(r) for r in entry["runs"]))
        entry["medians"] = {
            key: _median_of(entry["runs"], key) for key in sorted(shared) if _numeric(run.get(key))
        }
        entry["complete"] = all(r.get("complete", False) for r in entry["runs"])
        value = run.get("value", math.nan)
        logger.info("%s %s: %s = %.4g %s", self.name, system, self.metric, value, self.unit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": self.unit,
            "better": self.better,
            "description": self.description,
            "systems": self.systems,
        }


def _numeric(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    return median(float(r[key]) for r in runs if _numeric(r.get(key)))


async def guarded(run: Awaitable[dict[str, Any]], what: str) -> dict[str, Any]:
    """Await one run; a failure becomes a run record with the error, so the suite goes on."""
    try:
        return await run
    except Exception as error:  # noqa: BLE001 - one broken system must not end the whole suite
        logger.error("%s failed: %s", what, error)
        logger.debug("%s", traceback.format_exc())
        return {
            "value": math.nan,
            "complete": False,
            "error": f"{type(error).__name__}: {error}"[:2000],
        }


async def guarded_section(section: Awaitable[None], system: str, result: ScenarioResult) -> None:
    """Await one system's whole part of a scenario; if it fails, record the failure as a run."""

    async def as_record() -> dict[str, Any]:
        await section
        return {}

    record = await guarded(as_record(), system)
    if "error" in record:
        result.add(system, system, record)
