"""Starts the real service as a subprocess against a real database, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import uvicorn

from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.store import accounts

POSTGRES_ADMIN_URL = os.environ.get(
    "WP_LLM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
START_TIMEOUT_SECONDS = 30.0

# Short delays so retry tests finish in seconds; jitter off so the schedule is exact.
TEST_ENVIRONMENT = {
    "WP_LLM_RETRY_SCHEDULE": "0.5s,1s,2s",
    "WP_LLM_RETRY_JITTER": "0",
    "WP_LLM_REQUEST_TIMEOUT": "2s",
    "WP_LLM_LEASE_SECONDS": "3s",
    "WP_LLM_POLL_INTERVAL": "0.1s",
    "WP_LLM_CIRCUIT_PROBE_INTERVAL": "0.5s",
    "WP_LLM_ALLOW_PRIVATE_NETWORKS": "1",
    # Tests revoke keys and change limits and check the effect at once.
    "WP_LLM_AUTH_CACHE": "0s",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in this process and yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"the app did not start within {START_TIMEOUT_SECONDS} s")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_SECONDS)


def create_postgres_database() -> str:
    """Create an empty database on the local PostgreSQL and return its URL."""
    name = "wpllm_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServiceProcess:
    """One `wp-llm serve` process; it can be stopped, killed and started again on the same data."""

    database_url: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"service-{self.port}.log"

    def start(self) -> ServiceProcess:
        environment = {**os.environ, **TEST_ENVIRONMENT, **self.env}
        environment.update(
            WP_LLM_DATABASE_URL=self.database_url, WP_LLM_DATA_DIR=str(self.data_dir)
        )
        command = [sys.executable, "-m", "wp_llm", "serve", "--port", str(self.port), *self.args]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"service exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"service not ready after {START_TIMEOUT_SECONDS}s:\n{self.log_path.read_text()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the process with SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def create_key(self, account: str | None = None) -> str:
        engine = create_db_engine(self.database_url)
        try:
            migrate(engine)
            name = account or "acct-" + uuid.uuid4().hex[:10]
            return accounts.create_key(
                engine, account_id=accounts.ensure_account(engine, name), name=name
            ).token
        finally:
            engine.dispose()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)
