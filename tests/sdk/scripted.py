"""A loopback HTTP server that responds to any method from a script, to test retries."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class CannedResponse:
    """One scripted response; `drop` closes the connection without responding."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> CannedResponse:
        return cls(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def error(
        cls, status: int, error_type: str, code: str, headers: dict[str, str] | None = None
    ) -> CannedResponse:
        envelope = {
            "error": {
                "type": error_type,
                "code": code,
                "message": f"scripted {code}",
                "details": {},
                "request_id": "req_scripted",
                "timestamp": 0,
            }
        }
        return cls.json(status, envelope, headers)


@dataclass(frozen=True)
class SeenRequest:
    """A request as the server got it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


class ScriptedServer:
    """Responds to requests in order from the script, then with `default`."""

    def __init__(self, default: CannedResponse | None = None) -> None:
        self.requests: list[SeenRequest] = []
        self.default = default or CannedResponse()
        self._responses: deque[CannedResponse] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *responses: CannedResponse) -> None:
        with self._lock:
            self._responses.extend(responses)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, request: SeenRequest) -> CannedResponse:
        with self._lock:
            self.requests.append(request)
            return self._responses.popleft() if self._responses else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                canned = server._take(
                    SeenRequest(self.command, self.path, headers, body, time.monotonic())
                )
                if canned.delay:
                    time.sleep(canned.delay)
                if canned.drop:
                    self.close_connection = True
                    return
                try:
                    self._write(canned)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up first, as the timeout tests intend.
                    self.close_connection = True

            def _write(self, canned: CannedResponse) -> None:
                self.send_response(canned.status)
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = do_PATCH = do_DELETE = _respond  # noqa: N815 - names http.server dispatches to

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler
