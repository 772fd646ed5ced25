"""`wp-llm listen`, as a real subprocess between the real service and a real local app."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import pytest

import wp_llm
from tests.conftest import Account
from tests.sdk.conftest import GENERATION_STARTED
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess
from wp_llm.webhooks import Webhook

READY_SECONDS = 30.0
EXIT_SECONDS = 15.0


class Listener:
    """A running `wp-llm listen`; its output lines are collected by background threads."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "wp_llm", "listen", *args]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._stderr: queue.Queue[str] = queue.Queue()
        for stream, lines in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self._stderr),
        ):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line.rstrip("\n"))

    def wait_for_stderr(self, phrase: str, timeout: float = READY_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._stderr.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self._stderr.empty():
                    break
                continue
            self.stderr_lines.append(line)
            if phrase in line:
                return line
        raise AssertionError(f"no stderr line with {phrase!r}; got {self.stderr_lines}")

    def next_stdout(self, timeout: float = READY_SECONDS) -> str:
        return self.stdout.get(timeout=timeout)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=EXIT_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_listener(account: Account) -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(*args: str, base_url: str | None = None) -> Listener:
        env = {
            "WP_LLM_API_KEY": account.key,
            "WP_LLM_BASE_URL": base_url or account.service.base_url,
        }
        listener = Listener(list(args), env)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.kill()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_listen_forwards_exact_delivery(
    start_listener: Callable[..., Listener],
    client: wp_llm.Client,
    receiver: Receiver,
    account: Account,
) -> None:
    receiver.reply_with(Reply(status=202, body=b"accepted by the app"))
    listener = start_listener("--forward-to", receiver.url, "--events", "generation.*")
    listener.wait_for_stderr("ready")

    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    [forwarded] = receiver.wait_for(1)
    line = listener.next_stdout()

    # The stored envelope, byte for byte, is what every delivery of the event carries.
    assert forwarded.body == account.client.get(f"/v1/events/{event.id}").content
    assert forwarded.headers["webhook-id"] == event.id
    assert forwarded.headers["x-wp-llm-signature"]
    assert forwarded.headers["webhook-signature"].startswith("v1,")
    assert forwarded.headers["content-type"] == "application/json"
    assert "generation.started" in line
    assert event.id in line
    assert "-> 202" in line


def test_listen_responds_with_app_status(
    start_listener: Callable[..., Listener], client: wp_llm.Client, receiver: Receiver
) -> None:
    receiver.reply_with(Reply(status=202, body=b"accepted by the app"))
    listener = start_listener("--forward-to", receiver.url)
    listener.wait_for_stderr("ready")

    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)
    listener.next_stdout()

    [delivery] = client.deliveries.list(event_id=event.id)
    # The service records the attempt after the response arrives, so it can lag the listener.
    deadline = time.monotonic() + 10
    detailed = client.deliveries.retrieve(delivery.id)
    while not detailed.attempts and time.monotonic() < deadline:
        time.sleep(0.05)
        detailed = client.deliveries.retrieve(delivery.id)
    assert detailed.attempts is not None
    assert detailed.attempts[0].status_code == 202
    assert detailed.attempts[0].response_body == "accepted by the app"


def test_listen_signs_with_given_secret(
    start_listener: Callable[..., Listener], client: wp_llm.Client, receiver: Receiver
) -> None:
    secret = "listen-test-secret-1234"
    listener = start_listener("--forward-to", receiver.url, "--secret", secret)
    listener.wait_for_stderr("ready")

    client.events.create(type="generation.started", data=GENERATION_STARTED)
    [forwarded] = receiver.wait_for(1)

    event = Webhook(secret).verify(forwarded.body, forwarded.headers)
    assert event.type == "generation.started"


def test_listen_reports_unreachable_app_as_502(
    start_listener: Callable[..., Listener], client: wp_llm.Client
) -> None:
    listener = start_listener("--forward-to", f"http://127.0.0.1:{closed_port()}/hooks")
    listener.wait_for_stderr("ready")

    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    line = listener.next_stdout()

    assert "-> 502" in line
    assert "ConnectError" in line
    [delivery] = client.deliveries.list(event_id=event.id)
    deadline = time.monotonic() + 10
    while (
        client.deliveries.retrieve(delivery.id).last_status_code is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert client.deliveries.retrieve(delivery.id).last_status_code == 502


def test_listen_deletes_webhook_on_sigterm(
    start_listener: Callable[..., Listener], client: wp_llm.Client, receiver: Receiver
) -> None:
    listener = start_listener("--forward-to", receiver.url)
    ready = listener.wait_for_stderr("through webhook")
    webhook_id = ready.rsplit(" ", 1)[-1]
    listener.wait_for_stderr("ready")

    assert [webhook.id for webhook in client.webhooks.list()] == [webhook_id]
    assert listener.stop() == 0
    listener.wait_for_stderr(f"deleted the temporary webhook {webhook_id}")
    assert client.webhooks.list().data == []


def test_listen_deletes_webhook_on_ctrl_c(
    start_listener: Callable[..., Listener], client: wp_llm.Client, receiver: Receiver
) -> None:
    listener = start_listener("--forward-to", receiver.url)
    listener.wait_for_stderr("ready")

    listener.process.send_signal(signal.SIGINT)

    assert listener.process.wait(timeout=EXIT_SECONDS) == 0
    assert client.webhooks.list().data == []


def test_listen_port_in_use_says_what_to_do(
    start_listener: Callable[..., Listener], receiver: Receiver
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        listener = start_listener("--forward-to", receiver.url, "--port", port)

        assert listener.process.wait(timeout=EXIT_SECONDS) == 2
    line = listener.wait_for_stderr("cannot listen")
    assert "pass another --port" in line


def test_listen_refused_by_service_names_the_flag(
    make_service: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    strict = make_service(env={"WP_LLM_ALLOW_PRIVATE_NETWORKS": "0"})
    key = strict.create_key()
    env = {"WP_LLM_API_KEY": key, "WP_LLM_BASE_URL": strict.base_url}
    listener = Listener(["--forward-to", receiver.url], env)
    try:
        assert listener.process.wait(timeout=EXIT_SECONDS) == 1
        listener.wait_for_stderr("--allow-private-networks")
        output = " ".join(listener.stderr_lines)
        assert "refused the listener's address" in output
        assert "Traceback" not in output
    finally:
        listener.kill()


def test_listen_forwards_same_headers_as_direct_delivery(
    start_listener: Callable[..., Listener], client: wp_llm.Client, receiver: Receiver
) -> None:
    direct = Receiver().start()
    try:
        client.webhooks.create(url=direct.url, events=["generation.started"])
        listener = start_listener("--forward-to", receiver.url, "--events", "generation.started")
        listener.wait_for_stderr("ready")

        client.events.create(type="generation.started", data=GENERATION_STARTED)
        [forwarded] = receiver.wait_for(1)
        [delivered] = direct.wait_for(1)
    finally:
        direct.stop()

    assert set(forwarded.headers) == set(delivered.headers)
    for name in ("content-type", "user-agent", "x-wp-llm-event", "webhook-id"):
        assert forwarded.headers.get(name) == delivered.headers.get(name), name
