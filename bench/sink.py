"""The fast local sink: an nginx started by the bench that returns 204 to every POST.

nginx writes one access-log line per request with `$msec` (Unix time in seconds with
millisecond resolution, taken when the request is logged) and the event and delivery
ids from the request headers. Every timing in the suite reads those lines, so the
clock that stops a measurement is the receiver's, for every system alike.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NGINX_BINARY_NAMES = ("nginx",)
NGINX_FALLBACK_PATHS = ("/usr/sbin/nginx",)
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05
# nginx buffers log lines and writes them at least this often.
LOG_FLUSH_MILLISECONDS = 100
LOG_BUFFER_BYTES = 256 * 1024
# One worker, so the sink uses at most one core and the system under test keeps the rest.
NGINX_WORKER_PROCESSES = 1
NGINX_WORKER_CONNECTIONS = 8192
MISSING = "-"

_CONFIG_TEMPLATE = """\
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;

events {{
    worker_connections {connections};
}}

http {{
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    log_format receipt '$msec $status $http_webhook_id $http_x_wp_llm_delivery $uri';

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        access_log {root}/receipts.log receipt buffer={buffer} flush={flush}ms;
        location / {{
            return 204;
        }}
    }}
}}
"""


class SinkError(RuntimeError):
    """nginx is missing or failed to start."""


@dataclass(frozen=True)
class Receipt:
    """One request as the sink logged it; ids are `-` when the header was absent."""

    at: float
    status: int
    event_id: str
    delivery_id: str
    path: str


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_nginx() -> str:
    """Locate the nginx binary, which Debian installs outside a normal user's PATH."""
    for name in NGINX_BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in NGINX_FALLBACK_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise SinkError("nginx is not installed; run `apt-get install -y nginx` (make bench does this)")


def parse_receipt(line: str) -> Receipt | None:
    parts = line.split(" ")
    if len(parts) != 5:
        return None
    at, status, event_id, delivery_id, path = parts
    return Receipt(float(at), int(status), event_id, delivery_id, path)


class NginxSink:
    """An nginx on a free loopback port with its own config, logs and pid file in a temp dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wp-llm-bench-nginx-"))
        # The nginx workers drop root privileges and must still reach the temp paths.
        self.root.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "receipts.log"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> NginxSink:
        config = self.root / "nginx.conf"
        config.write_text(
            _CONFIG_TEMPLATE.format(
                root=self.root,
                port=self.port,
                workers=NGINX_WORKER_PROCESSES,
                connections=NGINX_WORKER_CONNECTIONS,
                buffer=LOG_BUFFER_BYTES,
                flush=LOG_FLUSH_MILLISECONDS,
            )
        )
        command = [find_nginx(), "-p", str(self.root), "-c", str(config), "-g", "daemon off;"]
        errors = (self.root / "stderr.log").open("wb")
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SinkError(f"nginx exited at start: {self._errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(POLL_INTERVAL_SECONDS)
        raise SinkError(f"nginx did not listen on port {self.port} within {START_TIMEOUT_SECONDS}s")

    def _errors(self) -> str:
        texts = [
            (self.root / name).read_text(errors="replace")
            for name in ("stderr.log", "error.log")
            if (self.root / name).exists()
        ]
        return " | ".join(text.strip() for text in texts if text.strip())[-2000:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def reader(self, prefix: str) -> ReceiptReader:
        """Follow the log from its current end, keeping requests whose path starts with `prefix`."""
        return ReceiptReader(self.log_path, prefix)


class ReceiptReader:
    """Reads new access-log lines of one scenario run, identified by its path prefix."""

    def __init__(self, path: Path, prefix: str) -> None:
        self._path = path
        self._prefix = prefix
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""
        self.receipts: list[Receipt] = []
        self.delivery_ids: set[str] = set()

    def poll(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._add(line.decode("ascii", errors="replace"))

    def _add(self, line: str) -> None:
        receipt = parse_receipt(line)
        if receipt is None or not receipt.path.startswith(self._prefix):
            return
        self.receipts.append(receipt)
        self.delivery_ids.add(receipt.delivery_id)

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Wait for `count` distinct deliveries; return False if the timeout came first."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if len(self.delivery_ids) >= count:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL_SECONDS)

    async def settle(self) -> None:
        """Wait out nginx's log buffer so late lines of this run are read too."""
        await asyncio.sleep(2 * LOG_FLUSH_MILLISECONDS / 1000)
        self.poll()
