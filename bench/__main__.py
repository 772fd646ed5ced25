"""Command line of the bench: `python -m bench [--profile smoke] [--scenario NAME ...]`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvloop

from bench.profiles import PROFILES
from bench.report import publish_to_docs, write_report
from bench.suite import SCENARIOS, run_suite

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Loggers whose info lines would bury the bench's own: alembic prints one per migration
# of every fresh database, and the service's store helpers run inside this process too.
QUIET_LOGGERS = ("alembic", "wp_llm")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the delivery service."
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="full",
        help="Scenario sizes [default: full].",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="Run only this scenario; repeat the flag for several [default: all].",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="Where records go."
    )
    parser.add_argument(
        "--no-profiler", action="store_true", help="Skip the py-spy profiles of the hot paths."
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="Keep the temp folder with service logs."
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="Publish the run to docs/benchmarks.md and bench/latest/ (make bench does this).",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="Log debug details, such as tracebacks."
    )
    return parser.parse_args()


def main() -> None:
    arguments = _arguments()
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    record = uvloop.run(
        run_suite(
            PROFILES[arguments.profile],
            arguments.scenario or list(SCENARIOS),
            arguments.results_dir,
            with_profiler=not arguments.no_profiler,
            keep_work=arguments.keep_work,
        )
    )
    written = [record, *write_report(record)]
    if arguments.update_docs:
        written.append(publish_to_docs(record, [path for path in written if path.suffix == ".png"]))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
