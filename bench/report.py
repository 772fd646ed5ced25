"""Turns a run's JSON record into a Markdown table with ratios and PNG charts."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from bench.charts import draw_charts
from bench.formatting import format_number, format_ratio
from bench.targets import check_targets

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = REPOSITORY_ROOT / "docs" / "benchmarks.md"
# The record and charts that the docs page shows; bench/results/ itself is not committed.
PUBLISHED_DIR = REPOSITORY_ROOT / "bench" / "latest"
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"

LIMIT = "limit"
PEERS = ("celery", "arq")
MEBIBYTE = 1024 * 1024


def _is_ours(system: str) -> bool:
    return system.startswith("ours")


def scenario_table(name: str, scenario: dict[str, Any]) -> list[str]:
    """Render one scenario: one row per system, our rows with ratios to the limit and each peer."""
    systems = scenario["systems"]
    better = "Higher" if scenario["better"] == "higher" else "Lower"
    references = {key: systems[key].get("median") for key in (LIMIT, *PEERS) if key in systems}
    header = ["system", f"{scenario['metric']} ({scenario['unit']}, median)", "runs", "complete"]
    header += [f"ours / {key}" for key in references]
    lines = [
        f"### {name}",
        "",
        f"{scenario['description']}. {better} is better.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for system, entry in systems.items():
        values = ", ".join(format_number(run.get("value")) for run in entry["runs"])
        row = [
            entry["label"],
            format_number(entry.get("median")),
            values,
            "yes" if entry.get("complete") else "**no**",
        ]
        row += [
            format_ratio(entry.get("median"), reference) if _is_ours(system) else ""
            for reference in references.values()
        ]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, *_scenario_notes(name, systems), ""]


def _scenario_notes(name: str, systems: dict[str, Any]) -> list[str]:
    """Render the medians that the main column does not show, such as p50 next to p99."""
    keys = {
        "latency": ("p50_ms", "p99_ms", "publish_p99_ms", "cpu_ms_per_event"),
        "latency at a lower rate": ("p50_ms", "p99_ms", "publish_p99_ms", "cpu_ms_per_event"),
        "isolation": ("baseline_p99_ms", "with_hanging_p99_ms", "healthy_undelivered"),
        "recovery": ("rate", "peak_rss_mib"),
        "memory": ("rss_at_first_receipt_mib",),
        "fanout": ("first_receipt_ms",),
        "throughput": ("cpu_ms_per_delivery",),
        "ingestion": ("cpu_ms_per_event",),
    }.get(name, ())
    if not keys:
        return []
    lines = ["", "| system | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for entry in systems.values():
        medians = entry.get("medians", {})
        lines.append(
            "| "
            + entry["label"]
            + " | "
            + " | ".join(format_number(medians.get(key)) for key in keys)
            + " |"
        )
    return lines


def profile_section(profiles: dict[str, Any]) -> list[str]:
    lines = ["### py-spy profiles", ""]
    for system, summary in profiles.items():
        if "error" in summary:
            lines += [f"{system}: profile failed: {summary['error']}", ""]
            continue
        rate = summary.get("rate_while_profiled")
        during = f" at {format_number(rate)} deliveries/s" if rate is not None else ""
        lines += [
            f"**{system}**: {summary['samples']:,} busy samples{during} (`{summary['file']}`).",
            "",
            "| where the busy samples were | % |",
            "|---|---|",
        ]
        lines += [f"| {item['name']} | {item['percent']:.1f} |" for item in summary["by_thread"]]
        lines += [
            f"| package `{item['name']}` (self) | {item['percent']:.1f} |"
            for item in summary["self_by_package"][:8]
        ]
        lines += ["", "| project function (inclusive) | % |", "|---|---|"]
        lines += [
            f"| `{item['name']}` | {item['percent']:.1f} |"
            for item in summary["inclusive_by_project_function"][:12]
        ]
        lines += ["", "| function (self) | % |", "|---|---|"]
        lines += [
            f"| `{item['name']}` | {item['percent']:.1f} |"
            for item in summary["self_by_function"][:10]
        ]
        lines.append("")
    return lines


def machine_section(record: dict[str, Any]) -> list[str]:
    machine = record["machine"]
    memory = machine.get("memory_bytes") or 0
    load = ", ".join(f"{value:.2f}" for value in machine.get("load_average_at_start", []))
    cpu = (
        f"{machine.get('cpu_model', '?')}, {machine.get('threads_per_core', '?')} thread per core, "
        f"{machine.get('hypervisor') or 'bare metal'}"
    )
    return [
        f"Machine: {machine['nproc']} cores ({cpu}), {memory / MEBIBYTE / 1024:.0f} GiB memory, "
        f"Linux {machine.get('kernel')}, Python {machine.get('python')}; "
        f"load average at start {load}.",
        f"Profile `{record['profile']['name']}`, started {record['started_at']}.",
        "",
    ]


def render_markdown(record: dict[str, Any]) -> str:
    lines = [
        "# WP LLM Webhooks benchmark run",
        "",
        *machine_section(record),
        *check_targets(record),
        "",
    ]
    for name, scenario in record["scenarios"].items():
        lines += scenario_table(name, scenario)
    if record.get("profile_samples"):
        lines += profile_section(record["profile_samples"])
    return "\n".join(lines).rstrip() + "\n"


def write_report(record_path: Path) -> list[Path]:
    """Write `<stamp>.md` and the charts next to the record; return the paths written."""
    record = json.loads(record_path.read_text())
    markdown = record_path.with_suffix(".md")
    markdown.write_text(render_markdown(record))
    return [markdown, *draw_charts(record, record_path.parent, record_path.stem)]


def publish_to_docs(record_path: Path, charts: list[Path]) -> Path:
    """Copy the record and charts to bench/latest/ and put the tables into docs/benchmarks.md.

    Only the part of the page between the results markers is replaced.
    """
    record = json.loads(record_path.read_text())
    PUBLISHED_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(record_path, PUBLISHED_DIR / "record.json")
    images = []
    for chart in charts:
        name = chart.name.removeprefix(record_path.stem + "-")
        shutil.copyfile(chart, PUBLISHED_DIR / name)
        images.append(f"![{name.removesuffix('.png')}](../bench/latest/{name})")

    body = (
        render_markdown(record)
        .split("\n", 2)[2]
        .replace("### ", "#### ")
        .replace("## Targets", "### Targets")
    )
    section = "\n".join([RESULTS_START, "", body, *images, "", RESULTS_END])
    page = DOCS_PAGE.read_text()
    start, end = page.index(RESULTS_START), page.index(RESULTS_END) + len(RESULTS_END)
    DOCS_PAGE.write_text(page[:start] + section + page[end:])
    return DOCS_PAGE


def main() -> None:
    parser = argparse.ArgumentParser(description="Render a bench record as Markdown and charts.")
    parser.add_argument("record", type=Path, help="A JSON record from bench/results/.")
    parser.add_argument(
        "--update-docs", action="store_true", help="Also publish it to docs/benchmarks.md."
    )
    arguments = parser.parse_args()
    written = write_report(arguments.record)
    if arguments.update_docs:
        written.append(
            publish_to_docs(arguments.record, [path for path in written if path.suffix == ".png"])
        )
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
