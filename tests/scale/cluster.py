"""Processes of the scale-out tests: workers, the fast receiver, and PostgreSQL start and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.support.service import POSTGRES_ADMIN_URL, TEST_ENVIRONMENT, free_port

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
POSTGRES_READY_TIMEOUT_SECONDS = 60.0
WORKER_STARTED_LINE = "delivery worker started"
LISTENER_CONNECTED_LINE = "delivery listener connected"


def scale_environment(**overrides: str) -> dict[str, str]:
    """Settings every process of one test shares: the same secret key, small connection pools."""
    return {
        **TEST_ENVIRONMENT,
        "WP_LLM_SECRET_KEY": Fernet.generate_key().decode(),
        # Long enough that a worker starved of CPU on a loaded 2-core machine still renews its
        # leases in time. A lease that lapses mid-request sends that delivery twice.
        "WP_LLM_LEASE_SECONDS": "15s",
        "WP_LLM_DATABASE_POOL_SIZE": "4",
        # Load tests publish faster than the default per-account API rate limit allows.
        "WP_LLM_RATE_LIMIT": "100000",
        **overrides,
    }


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll `condition` until it is true and return the seconds it took; fail naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"expected {what} within {timeout:g}s")


@dataclass
class WorkerProcess:
    """One `wp-llm worker` subprocess, logging to a file in `data_dir`."""

    database_url: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: "worker-" + uuid.uuid4().hex[:6])
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it to be ready."""
        environment = {**os.environ, **TEST_ENVIRONMENT, **self.env}
        environment.update(
            WP_LLM_DATABASE_URL=self.database_url, WP_LLM_DATA_DIR=str(self.data_dir)
        )
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "wp_llm", "worker"]
        self.process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def start(self, wait_for: str = WORKER_STARTED_LINE) -> WorkerProcess:
        self.launch()
        self.wait_for_log(wait_for, START_TIMEOUT_SECONDS)
        return self

    def wait_for_log(self, line: str, timeout: float, count: int = 1) -> None:
        def logged() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_text()}"
                )
            return self.log_text().count(line) >= count

        wait_until(logged, timeout, f"{line!r} in the log of {self.name}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send SIGTERM and return the exit code; kill the process if it outlives `timeout`."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        """Kill the process with SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass
class FastReceiver:
    """The aiohttp receiver of `tests.scale.fast_receiver`, in its own process."""

    delay_ms: float = 0.0
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> FastReceiver:
        command = [
            sys.executable,
            "-m",
            "tests.scale.fast_receiver",
            "--port",
            str(self.port),
            "--delay-ms",
            str(self.delay_ms),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._ready, START_TIMEOUT_SECONDS, f"the fast receiver on port {self.port}")
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/received", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def received(self) -> dict[str, int]:
        """Map every delivery id received to the number of times it arrived."""
        response = httpx.get(f"http://127.0.0.1:{self.port}/received", timeout=30)
        return dict(response.json())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _pg_ctlcluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def postgresql_accepts_connections() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def start_postgresql() -> None:
    """Start the local cluster (a no-op when it runs) and wait until it takes connections."""
    if not postgresql_accepts_connections():
        _pg_ctlcluster("start")
    wait_until(
        postgresql_accepts_connections,
        POSTGRES_READY_TIMEOUT_SECONDS,
        "PostgreSQL to accept connections",
    )


def stop_postgresql() -> None:
    _pg_ctlcluster("stop")


def restart_postgresql() -> None:
    _pg_ctlcluster("restart")
    wait_until(
        postgresql_accepts_connections,
        POSTGRES_READY_TIMEOUT_SECONDS,
        "PostgreSQL to accept connections",
    )
