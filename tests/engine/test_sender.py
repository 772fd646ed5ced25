"""The sender against real loopback servers: response caps, redirects, and connect-time checks.

Host names are resolved by resolvers that the tests control, so no lookup leaves the
machine, and every address a test may connect to is on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.engine.servers import Handler, ScriptedReceiver, answer, no_content
from tests.engine.tls import issue_certificates
from wp_llm.server.engine.netguard import AddressPolicy, BlockedAddressError, GuardedResolver
from wp_llm.server.engine.sender import Sender, _Deadline, _Deadlines

BODY_LIMIT = 4096
TIMEOUT_SECONDS = 1.0
TEST_HOST = "hooks.example.test"
LOOPBACK_ONLY = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
# A test server stops streaming after this long even if the client never hangs up.
STREAM_LIMIT_SECONDS = 10.0


class FixedResolver(AbstractResolver):
    """Returns the next list of addresses at each lookup, repeating the last list."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = [list(a) for a in answers]
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers[min(len(self.lookups), len(self.answers) - 1)]
        self.lookups.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[list[ScriptedReceiver]]:
    """Start receivers with `start(handler, ...)`; all stop after the test."""
    started: list[ScriptedReceiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def start(
    started: list[ScriptedReceiver], handler: Handler = no_content, **options: object
) -> ScriptedReceiver:
    receiver = ScriptedReceiver(handler, **options).start()  # type: ignore[arg-type]
    started.append(receiver)
    return receiver


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    policy = AddressPolicy(allow_private=True)
    async with Sender(policy, timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT) as opened:
        yield opened


async def stream_forever(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    deadline = time.monotonic() + STREAM_LIMIT_SECONDS
    while time.monotonic() < deadline:
        try:
            await response.write(b"x" * 65536)
        except (ConnectionResetError, RuntimeError):
            break
        await asyncio.sleep(0)
    return response


async def drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    deadline = time.monotonic() + STREAM_LIMIT_SECONDS
    while time.monotonic() < deadline:
        try:
            await response.write(b"x")
        except (ConnectionResetError, RuntimeError):
            break
        await asyncio.sleep(0.2)
    return response


async def large_body(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, body=b"y" * 1_000_000)


async def test_sender_truncates_large_body(sender: Sender, serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve, large_body)
    result = await sender.send(receiver.url, b"{}", {})
    assert result.succeeded
    assert result.response_truncated
    assert result.response_body == "y" * BODY_LIMIT


async def test_sender_stops_reading_endless_body(
    sender: Sender, serve: list[ScriptedReceiver]
) -> None:
    receiver = start(serve, stream_forever)
    result = await sender.send(receiver.url, b"{}", {})
    assert result.succeeded
    assert result.response_truncated
    assert len(result.response_body or "") == BODY_LIMIT
    assert result.latency_ms < TIMEOUT_SECONDS * 1000


async def test_sender_deadline_covers_slow_body(
    sender: Sender, serve: list[ScriptedReceiver]
) -> None:
    receiver = start(serve, drip)
    started = time.monotonic()
    result = await sender.send(receiver.url, b"{}", {})
    elapsed = time.monotonic() - started
    assert result.failure == "timeout"
    assert result.error == f"timed out after {TIMEOUT_SECONDS:g}s"
    assert elapsed < TIMEOUT_SECONDS + 0.5


async def test_sender_uses_endpoint_timeout(sender: Sender, serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve, answer(204, delay=0.6))
    result = await sender.send(receiver.url, b"{}", {}, timeout=0.3)
    assert result.failure == "timeout"
    assert result.error == "timed out after 0.3s"


async def test_timeout_leaves_task_uncancelled(
    sender: Sender, serve: list[ScriptedReceiver]
) -> None:
    receiver = start(serve, answer(204, delay=0.6))
    result = await sender.send(receiver.url, b"{}", {}, timeout=0.2)
    assert result.failure == "timeout"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    # A later await of the same task runs normally.
    await asyncio.sleep(0.01)


async def test_outside_cancel_propagates(sender: Sender, serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve, answer(204, delay=0.6))
    sending = asyncio.create_task(sender.send(receiver.url, b"{}", {}, timeout=0.3))
    await asyncio.sleep(0.1)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


async def test_deadline_with_outside_cancel() -> None:
    deadlines = _Deadlines()
    started = asyncio.Event()
    timers: list[_Deadline] = []

    async def wait_forever() -> None:
        timers.append(deadlines.start(60.0))
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(wait_forever())
    await started.wait()
    # The deadline fires, and another caller cancels the task before it runs again.
    deadlines._expire(timers[0].when)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.stop(timers[0]) is False


@pytest.mark.parametrize("timeout", [0.01, 0.05, 0.3, 15.0])
async def test_deadline_lateness_bound(timeout: float) -> None:
    deadlines = _Deadlines()
    loop = asyncio.get_running_loop()
    for _ in range(20):
        # The clock moves while `start` runs, so its own reading lies between these two.
        before = loop.time()
        deadline = deadlines.start(timeout)
        after = loop.time()
        assert deadline.when >= before + timeout - 1e-9
        assert deadline.when - (after + timeout) <= min(0.05, timeout / 10) + 1e-6
        deadlines.stop(deadline)
        await asyncio.sleep(0.001)


async def test_deadlines_share_timers(sender: Sender, serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve, answer(204, delay=0.6))
    sending = asyncio.gather(
        *(sender.send(receiver.url, b"{}", {}, timeout=0.2) for _ in range(20))
    )
    await asyncio.sleep(0.05)
    due = sender._deadlines._due
    # Requests started together fall on one grid point, or two if they straddle one.
    assert len(due) <= 2
    assert sum(len(deadlines) for deadlines in due.values()) == 20
    results = await sending
    assert [result.failure for result in results] == ["timeout"] * 20
    assert not any(sender._deadlines._due.values())


async def test_sender_does_not_follow_redirect(
    sender: Sender, serve: list[ScriptedReceiver]
) -> None:
    target = start(serve)
    location = target.url.replace("http://", "http://user:hunter2-secret@")
    receiver = start(serve, answer(307, headers={"Location": location}))
    result = await sender.send(receiver.url, b"{}", {})
    await asyncio.sleep(0.2)
    assert not result.succeeded
    assert result.failure == "redirect"
    assert result.status_code == 307
    assert "redirect not followed" in (result.error or "")
    assert "hunter2-secret" not in (result.error or "")
    assert target.requests == []


async def test_sender_sends_host_header_of_url(serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve)
    resolver = FixedResolver(["127.0.0.1"])
    url = f"http://{TEST_HOST}:{receiver.port}/hook"
    async with Sender(
        LOOPBACK_ONLY, timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT, resolver=resolver
    ) as sender:
        result = await sender.send(url, b"{}", {})
    assert result.succeeded
    assert receiver.requests[0].headers["host"] == f"{TEST_HOST}:{receiver.port}"
    assert resolver.lookups == [TEST_HOST]


async def test_sender_keeps_no_cookies(serve: list[ScriptedReceiver]) -> None:
    # Webhooks of different accounts may share a host: a cookie one endpoint sets must
    # never travel with a later delivery.
    receiver = start(serve, answer(204, headers={"Set-Cookie": "session=account-a; Path=/"}))
    resolver = FixedResolver(["127.0.0.1"])
    async with Sender(
        LOOPBACK_ONLY, timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT, resolver=resolver
    ) as sender:
        first = await sender.send(f"http://{TEST_HOST}:{receiver.port}/a", b"{}", {})
        second = await sender.send(f"http://{TEST_HOST}:{receiver.port}/b", b"{}", {})
    assert first.succeeded and second.succeeded
    assert [request.headers.get("cookie") for request in receiver.requests] == [None, None]


async def test_sender_sends_tls_server_name_of_url(serve: list[ScriptedReceiver]) -> None:
    certificates = issue_certificates(TEST_HOST)
    receiver = start(serve, ssl_context=certificates.server)
    resolver = FixedResolver(["127.0.0.1"])
    url = f"https://{TEST_HOST}:{receiver.port}/hook"
    async with Sender(
        LOOPBACK_ONLY,
        timeout=TIMEOUT_SECONDS,
        body_limit=BODY_LIMIT,
        resolver=resolver,
        ssl_context=certificates.client,
    ) as sender:
        result = await sender.send(url, b"{}", {})
    assert result.succeeded, result.error
    assert receiver.requests[0].server_name == TEST_HOST
    assert receiver.requests[0].headers["host"] == f"{TEST_HOST}:{receiver.port}"


async def test_sender_connects_only_to_allowed_address(serve: list[ScriptedReceiver]) -> None:
    # Both servers listen on one port; the resolver lists the refused address first.
    allowed = start(serve, host="127.0.0.1")
    trap = start(serve, host="127.0.0.2", port=allowed.port)
    resolver = FixedResolver(["127.0.0.2", "127.0.0.1"])
    url = f"http://{TEST_HOST}:{allowed.port}/hook"
    async with Sender(
        LOOPBACK_ONLY, timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT, resolver=resolver
    ) as sender:
        result = await sender.send(url, b"{}", {})
    assert result.succeeded
    assert len(allowed.requests) == 1
    assert trap.requests == []


async def test_sender_refuses_rebound_name(serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve)
    # A public address for a lookup that checks the name, loopback for the sender's own lookup.
    resolver = FixedResolver(["93.184.215.14"], ["127.0.0.1"])
    checked = await resolver.resolve(TEST_HOST)
    assert checked[0]["host"] == "93.184.215.14"

    url = f"http://{TEST_HOST}:{receiver.port}/hook"
    async with Sender(
        AddressPolicy(), timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT, resolver=resolver
    ) as sender:
        result = await sender.send(url, b"{}", {})
    assert result.failure == "blocked"
    assert "may not reach" in (result.error or "")
    assert receiver.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_sender_refuses_blocked_literal(host: str, serve: list[ScriptedReceiver]) -> None:
    receiver = start(serve)
    async with Sender(AddressPolicy(), timeout=TIMEOUT_SECONDS, body_limit=BODY_LIMIT) as sender:
        result = await sender.send(f"http://{host}:{receiver.port}/hook", b"{}", {})
    assert result.failure == "blocked"
    assert receiver.requests == []


async def test_sender_uses_url_credentials_without_showing_them(
    sender: Sender, serve: list[ScriptedReceiver]
) -> None:
    receiver = start(serve)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]

    sent = await sender.send(
        receiver.url.replace("http://", "http://ann:pa55-word-xyz@"), b"{}", {}
    )
    refused = await sender.send(f"http://ann:pa55-word-xyz@127.0.0.1:{closed_port}/", b"{}", {})
    assert sent.succeeded
    assert receiver.requests[0].headers["authorization"] == "Basic YW5uOnBhNTUtd29yZC14eXo="
    assert refused.failure == "connection"
    assert "pa55-word-xyz" not in (refused.error or "")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.1.1",
        "192.168.0.10",
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
async def test_guarded_resolver_drops_blocked_answer(address: str) -> None:
    guarded = GuardedResolver(AddressPolicy(), FixedResolver([address, "93.184.215.14"]))
    answers = await guarded.resolve(TEST_HOST, 443)
    assert [answer["host"] for answer in answers] == ["93.184.215.14"]


async def test_guarded_resolver_raises_when_nothing_is_left() -> None:
    guarded = GuardedResolver(AddressPolicy(), FixedResolver(["127.0.0.1", "169.254.169.254"]))
    with pytest.raises(BlockedAddressError):
        await guarded.resolve(TEST_HOST, 443)
