"""Bare TCP peers for the tests where the exact bytes matter (an HTTP library would normalise them)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class RawUpstream:
    """A bare TCP upstream on a free loopback port: each connection is handed to ``serve``, with
    its number (1, 2, ...), in a thread of its own, and closed when ``serve`` returns."""

    def __init__(self, serve: Callable[[socket.socket, int], None]) -> None:
        self._serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(connection, self.connections), daemon=True).start()

    def _run(self, connection: socket.socket, number: int) -> None:
        with connection:
            try:
                self._serve(connection, number)
            except OSError:
                pass  # the gateway went away: nothing to answer

    def close(self) -> None:
        self.listener.close()


def read_head(sock: socket.socket, received: bytes = b"") -> tuple[bytes, bytes]:
    """A message head (up to its blank line) and the bytes read after it; an empty head at EOF."""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", received
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def exchange_until_close(port: int, request: bytes) -> bytes:
    """Send ``request`` to a server on loopback and read everything until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply
