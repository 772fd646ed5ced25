"""Loopback HTTP servers on aiohttp for engine tests, each in its own thread and event loop.

`ScriptedReceiver` responds to every request with a handler the test picks, and records
what arrived and how many requests were open at once. aiohttp keeps up with the
service where the threaded receiver of `tests.support` would fall behind.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived; header names are lower-cased."""

    headers: dict[str, str]
    body: bytes
    received_at: float
    # The TLS server name the client sent, for HTTPS servers.
    server_name: str | None = None


async def no_content(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


def answer(status: int, *, delay: float = 0.0, headers: dict[str, str] | None = None) -> Handler:
    """Return a handler that waits `delay` seconds, then responds `status` with no body."""

    async def handle(_request: web.Request) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers)

    return handle


class ScriptedReceiver:
    """Records every POST and lets `handler` respond to it; tests may swap `handler` at any time."""

    def __init__(
        self,
        handler: Handler = no_content,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._ssl_context = ssl_context
        self._server_names: dict[int, str | None] = {}
        self._lock = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}/hook"

    def start(self) -> ScriptedReceiver:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(START_TIMEOUT_SECONDS)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            future.result(START_TIMEOUT_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_SECONDS)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait until `count` requests arrived; fail with the number that did otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} requests within {timeout}s, got {len(self.requests)}"
                    )
                self._lock.wait(remaining)
            return list(self.requests)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # A request whose client hung up stops counting as open, as it would in production.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        context = self._ssl_context
        if context is not None:
            context.sni_callback = self._remember_server_name
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _remember_server_name(self, ssl_object: ssl.SSLObject, name: str | None, _ctx) -> None:  # type: ignore[no-untyped-def]
        self._server_names[id(ssl_object)] = name

    def _server_name(self, request: web.Request) -> str | None:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        return None if ssl_object is None else self._server_names.get(id(ssl_object))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        received = Received(headers, body, time.time(), self._server_name(request))
        with self._lock:
            self.requests.append(received)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._lock.notify_all()
        try:
            return await self.handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1
