"""A description of the machine and the software versions, stored with every result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = (
    "wp-llm",
    "aiohttp",
    "uvloop",
    "uvicorn",
    "fastapi",
    "sqlalchemy",
    "psycopg",
    "celery",
    "kombu",
    "arq",
    "redis",
    "requests",
    "py-spy",
)
COMMAND_TIMEOUT_SECONDS = 10.0


def _command_output(*command: str) -> str:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (completed.stdout or completed.stderr).strip()


def _lscpu_field(output: str, name: str) -> str:
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """Return cores, CPU model, memory, OS and the versions of everything that was measured."""
    lscpu = _command_output("lscpu")
    return {
        "nproc": int(_command_output("nproc") or os.cpu_count() or 0),
        "cpu_model": _lscpu_field(lscpu, "Model name"),
        "threads_per_core": _lscpu_field(lscpu, "Thread(s) per core"),
        "hypervisor": _lscpu_field(lscpu, "Hypervisor vendor"),
        "memory_bytes": _memory_bytes(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "nginx": _command_output("nginx", "-v") or _command_output("/usr/sbin/nginx", "-v"),
        "postgresql": _command_output("psql", "--version"),
        "redis": _command_output("redis-server", "--version"),
        "packages": {package: _version(package) for package in PACKAGES},
    }
