"""A hanging endpoint: a loopback port that completes TCP handshakes but never responds.

The socket listens and is never accepted from, so the kernel finishes each handshake
and buffers the request, and the client waits until its own timeout.
"""

from __future__ import annotations

import socket

# Connections the kernel keeps waiting; it is capped by net.core.somaxconn.
LISTEN_BACKLOG = 4096


class HangingEndpoint:
    """Listens on a free loopback port until stopped."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(LISTEN_BACKLOG)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}{path}"

    def stop(self) -> None:
        self._socket.close()
