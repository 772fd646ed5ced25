"""Run the whole path once on this machine: service, receiver, webhook, three events.

Starts `wp-llm serve` on a fresh SQLite file, starts a receiver that verifies both
signatures of every delivery, registers it, publishes the example payloads of
generation.completed, analysis.completed and usage.limit_exceeded, and prints each
delivery's outcome. With --keep-running the service stays up afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from wp_llm import Client, Delivery, catalog
from wp_llm.webhooks import SignatureVerificationError, Webhook

DEMO_EVENTS = ("generation.completed", "analysis.completed", "usage.limit_exceeded")
HEX_SIGNATURE_HEADER = "x-wp-llm-signature"
STARTUP_TIMEOUT_SECONDS = 30.0
DELIVERY_TIMEOUT_SECONDS = 20.0

# Wide enough for full ids when the output goes to a file or CI log instead of a terminal.
console = Console() if sys.stdout.isatty() else Console(width=140)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VerifyingReceiver:
    """An HTTP endpoint that checks the Standard Webhooks signature and X-WP-LLM-Signature."""

    def __init__(self) -> None:
        self.webhook: Webhook | None = None
        self.results: dict[str, dict[str, str]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/wp-llm"

    def check(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        assert self.webhook is not None
        only_hex = {HEX_SIGNATURE_HEADER: headers.get(HEX_SIGNATURE_HEADER, "")}
        outcome = {}
        for name, subset in (("standard", headers), ("hex", only_hex)):
            try:
                self.webhook.verify(body, subset)
                outcome[name] = "valid"
            except SignatureVerificationError as error:
                outcome[name] = f"invalid: {error}"
        return outcome

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outcome = receiver.check(body, headers)
                receiver.results[headers.get("x-wp-llm-delivery", "")] = outcome
                self.send_response(204 if set(outcome.values()) == {"valid"} else 401)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    def stop(self) -> None:
        self._server.shutdown()


def start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WP_LLM_DATA_DIR": str(data_dir), "WP_LLM_DATABASE_URL": ""}
    log = (data_dir / "service.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "wp_llm",
        "serve",
        "--port",
        str(port),
        "--allow-private-networks",
    ]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the service exited early; see {data_dir / 'service.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    sys.exit(
        f"the service did not start within {STARTUP_TIMEOUT_SECONDS:g}s; "
        f"see {data_dir / 'service.log'}"
    )


def create_key(data_dir: Path) -> str:
    env = {**os.environ, "WP_LLM_DATA_DIR": str(data_dir), "WP_LLM_DATABASE_URL": ""}
    command = [sys.executable, "-m", "wp_llm", "keys", "create", "--account", "demo"]
    return subprocess.run(
        command, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def wait_for_outcome(client: Client, event_id: str) -> Delivery | None:
    """Poll the delivery log until the event's delivery is no longer pending."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    found: list[Delivery] = []
    while time.monotonic() < deadline:
        found = client.deliveries.list(event_id=event_id).data
        if found and found[0].status != "pending":
            return client.deliveries.retrieve(found[0].id)
        time.sleep(0.1)
    return found[0] if found else None


COLUMNS = (
    "event type",
    "delivery",
    "status",
    "HTTP",
    "latency",
    "webhook-signature",
    "X-WP-LLM-Signature",
)


def describe(delivery: Delivery | None, receiver: VerifyingReceiver) -> list[str]:
    """Build one table row: the delivery's outcome and the receiver's signature checks."""
    if delivery is None:
        return ["-", "not created", "-", "-", "-", "-"]
    attempt = delivery.attempts[-1] if delivery.attempts else None
    checks = receiver.results.get(delivery.id, {})
    return [
        delivery.id,
        delivery.status,
        str(attempt.status_code) if attempt else "-",
        f"{attempt.latency_ms} ms" if attempt else "-",
        checks.get("standard", "-"),
        checks.get("hex", "-"),
    ]


def run(data_dir: Path, port: int, keep_running: bool) -> int:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    service = start_service(data_dir, port)
    receiver = VerifyingReceiver()
    try:
        key = create_key(data_dir)
        base_url = f"http://127.0.0.1:{port}"
        with Client(api_key=key, base_url=base_url) as client:
            webhook = client.webhooks.create(
                url=receiver.url, events=list(DEMO_EVENTS), description="demo receiver"
            )
            receiver.webhook = Webhook(webhook.secret or "")
            console.print(f"service  {base_url}  (SQLite file in {data_dir})")
            console.print(f"webhook  {webhook.id} -> {receiver.url}")
            failures = 0
            table = Table(title="Deliveries")
            for column in COLUMNS:
                table.add_column(column, no_wrap=True)
            for event_type in DEMO_EVENTS:
                event = client.events.create(
                    type=event_type, data=catalog.EVENT_TYPES[event_type].example
                )
                delivery = wait_for_outcome(client, event.id)
                failures += delivery is None or delivery.status != "succeeded"
                table.add_row(event_type, *describe(delivery, receiver))
            console.print(table)
        if keep_running:
            console.print(
                f"\nThe service keeps running. API key: {key}\n"
                f"Try: WP_LLM_API_KEY={key} WP_LLM_BASE_URL={base_url} "
                "wp-llm trigger generation.failed\n"
                "Press Ctrl-C to stop."
            )
            service.wait()
        return 1 if failures else 0
    except KeyboardInterrupt:
        return 0
    finally:
        receiver.stop()
        service.terminate()
        service.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="Folder for the demo's SQLite file (wiped first).",
    )
    parser.add_argument("--port", type=int, default=0, help="API port [default: a free port].")
    parser.add_argument(
        "--keep-running", action="store_true", help="Keep the service up after the demo."
    )
    args = parser.parse_args()
    sys.exit(run(args.data_dir.resolve(), args.port or free_port(), args.keep_running))


if __name__ == "__main__":
    main()
