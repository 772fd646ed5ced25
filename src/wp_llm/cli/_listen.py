"""A loopback HTTP server that hands each delivery on to a local URL, for `wp-llm listen`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

logger = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
# Below the service's default delivery timeout (15 s), so a slow app yields a clear 504 here.
FORWARD_TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 16 * 1024 * 1024
# Statuses sent to the service when the local app gave no response; both make it retry later.
BAD_GATEWAY = 502
GATEWAY_TIMEOUT = 504
# Headers that describe one connection rather than the message (RFC 9110, section 7.6.1),
# and the two that httpx sets itself for the forwarded body.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class ForwardedDelivery:
    """The outcome of one forwarded delivery: its ids and the local app's response."""

    event_type: str
    event_id: str
    delivery_id: str
    status_code: int
    latency_ms: int
    error: str | None = None


class ForwardingServer:
    """Receives deliveries on 127.0.0.1 and forwards body and headers unchanged to `forward_to`."""

    def __init__(
        self, forward_to: str, port: int, on_delivery: Callable[[ForwardedDelivery], None]
    ) -> None:
        self.forward_to = forward_to
        self._on_delivery = on_delivery
        self._http = httpx.Client(timeout=FORWARD_TIMEOUT_SECONDS, follow_redirects=False)
        # Without this, httpx would add its own Accept, Accept-Encoding and User-Agent headers.
        self._http.headers.clear()
        # Raises OSError when the port is taken; the command turns that into a message.
        self._server = ThreadingHTTPServer((LISTEN_HOST, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="wp-llm-listen", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LISTEN_HOST}:{self._server.server_address[1]}/"

    def start(self) -> ForwardingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def forward(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[httpx.Response | None, ForwardedDelivery]:
        """Forward one delivery; return the app's response (None on failure) and a summary."""
        kept = {
            name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP_HEADERS
        }
        started = time.monotonic()
        response: httpx.Response | None = None
        error = None
        try:
            response = self._http.post(self.forward_to, content=body, headers=kept)
            status_code = response.status_code
        except httpx.TimeoutException as failure:
            status_code, error = (
                GATEWAY_TIMEOUT,
                f"timed out after {FORWARD_TIMEOUT_SECONDS:.0f} s: {failure}",
            )
        except httpx.HTTPError as failure:
            status_code, error = BAD_GATEWAY, f"{type(failure).__name__}: {failure}"
        latency_ms = int((time.monotonic() - started) * 1000)

        summary = ForwardedDelivery(
            event_type=_header(headers, "x-wp-llm-event"),
            event_id=_header(headers, "webhook-id"),
            delivery_id=_header(headers, "x-wp-llm-delivery"),
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
        )
        return response, summary

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._respond(413, b"body too large for wp-llm listen", "text/plain")
                    return
                body = self.rfile.read(length)
                response, summary = server.forward(body, dict(self.headers.items()))
                if response is None:
                    self._respond(summary.status_code, (summary.error or "").encode(), "text/plain")
                else:
                    content_type = response.headers.get("Content-Type", "text/plain")
                    self._respond(response.status_code, response.content, content_type)
                server._report(summary)

            def _respond(self, status_code: int, body: bytes, content_type: str) -> None:
                self.send_response(status_code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    def _report(self, summary: ForwardedDelivery) -> None:
        try:
            self._on_delivery(summary)
        except Exception:
            # A failing printer must not break the delivery, which has its response already.
            logger.exception("delivery report failed", extra={"delivery_id": summary.delivery_id})


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return "-"
