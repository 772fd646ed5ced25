"""PNG charts of one run, drawn with matplotlib's non-interactive Agg backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads

FIGURE_SIZE_INCHES = (9.0, 4.5)
DPI = 110
OURS_COLOR = "#1f6feb"
OTHER_COLOR = "#8b949e"


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, float | int) and math.isfinite(value) else math.nan


def _bar_chart(scenario: dict[str, Any], title: str, path: Path) -> Path:
    """Draw one bar per system at its median, with whiskers from the lowest to the highest run."""
    labels, medians, lows, highs, colors = [], [], [], [], []
    for system, entry in scenario["systems"].items():
        runs = [_finite(run.get("value")) for run in entry["runs"]]
        runs = [value for value in runs if not math.isnan(value)]
        median = _finite(entry.get("median"))
        labels.append(entry["label"])
        medians.append(0.0 if math.isnan(median) else median)
        lows.append(median - min(runs) if runs else 0.0)
        highs.append(max(runs) - median if runs else 0.0)
        colors.append(OURS_COLOR if system.startswith("ours") else OTHER_COLOR)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    axes.barh(labels, medians, xerr=[lows, highs], color=colors, capsize=3)
    axes.invert_yaxis()
    axes.set_xlabel(f"{scenario['metric']} ({scenario['unit']}), {scenario['better']} is better")
    axes.set_title(title)
    return _save(figure, path)


def _latency_chart(scenario: dict[str, Any], path: Path) -> Path:
    labels = [entry["label"] for entry in scenario["systems"].values()]
    p50 = [
        _finite(entry.get("medians", {}).get("p50_ms")) for entry in scenario["systems"].values()
    ]
    p99 = [
        _finite(entry.get("medians", {}).get("p99_ms")) for entry in scenario["systems"].values()
    ]
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    positions = range(len(labels))
    axes.barh([p - 0.2 for p in positions], p50, height=0.4, label="p50", color=OURS_COLOR)
    axes.barh([p + 0.2 for p in positions], p99, height=0.4, label="p99", color=OTHER_COLOR)
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("publish-to-receipt latency (ms, log scale), lower is better")
    axes.set_title("Latency at a fixed publish rate")
    axes.legend()
    return _save(figure, path)


def _ingestion_chart(scenario: dict[str, Any], path: Path) -> Path:
    series: dict[str, list[tuple[int, float]]] = {}
    for system, entry in scenario["systems"].items():
        topology, _, clients = system.rpartition("-c")
        if clients.isdigit():
            series.setdefault(topology, []).append((int(clients), _finite(entry.get("median"))))
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    for topology, points in series.items():
        points.sort()
        axes.plot([c for c, _ in points], [v for _, v in points], marker="o", label=topology)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("stored events/s")
    axes.set_title("Ingestion over HTTP")
    axes.legend()
    return _save(figure, path)


def _memory_chart(scenario: dict[str, Any], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    for entry in scenario["systems"].values():
        samples = entry["runs"][0].get("rss_samples_mib") or []
        if samples:
            axes.plot([t for t, _ in samples], [m for _, m in samples], label=entry["label"])
    axes.set_xlabel("seconds since the service started")
    axes.set_ylabel("RSS of delivery processes (MiB)")
    axes.set_title("Memory while draining the recovery backlog")
    axes.legend()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def draw_charts(record: dict[str, Any], folder: Path, stem: str) -> list[Path]:
    """Draw one chart per scenario present in the record; return the files written."""
    scenarios = record["scenarios"]
    written = []
    titles = {
        "throughput": "Sustained delivery throughput",
        "fanout": "Fan-out: one event to many endpoints",
        "isolation": "Healthy endpoint p99 next to a hanging one, relative to alone",
        "recovery": "Draining a backlog after an outage",
    }
    for name, title in titles.items():
        if name in scenarios:
            written.append(_bar_chart(scenarios[name], title, folder / f"{stem}-{name}.png"))
    if "latency" in scenarios:
        written.append(_latency_chart(scenarios["latency"], folder / f"{stem}-latency.png"))
    if "ingestion" in scenarios:
        written.append(_ingestion_chart(scenarios["ingestion"], folder / f"{stem}-ingestion.png"))
    if "recovery" in scenarios:
        written.append(_memory_chart(scenarios["recovery"], folder / f"{stem}-memory.png"))
    return written
