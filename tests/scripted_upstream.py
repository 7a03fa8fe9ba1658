"""A scripted upstream for in-process tests of the pool, the connection and the proxy.

A scripted connector stands in for ``loop.create_connection``: each connection it opens
answers each request head written to it with the next reply of its script, delivered a
piece per turn of the event loop (whole, one byte at a time, or split at a chosen offset).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.upstream import BODY_PIECE, HEAD, UpstreamConnection, UpstreamPool

# A reply step: the upstream closes the connection (after any bytes before it in the reply).
CLOSE = object()
# A reply step: the upstream sends nothing more for this request.
SILENT = object()

Reply = bytes | tuple[Any, ...]


def whole(data: bytes) -> list[bytes]:
    return [data]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(offset: int) -> Callable[[bytes], list[bytes]]:
    return lambda data: [piece for piece in (data[:offset], data[offset:]) if piece]


class FakeTransport(asyncio.Transport):
    """What an asyncio socket transport does for the protocol: writes recorded, close and abort
    reported through ``connection_lost`` on the next turn of the loop, reading paused on demand."""

    def __init__(self, upstream: ScriptedUpstream, protocol: UpstreamConnection, replies: list[Reply]) -> None:
        super().__init__()
        self.upstream = upstream
        self.protocol = protocol
        self.replies = list(replies)
        self.written = bytearray()
        self.requests = 0
        self.closing = False
        self.aborted = False
        self.reading_paused = False
        self._pending: list[Any] = []

    # -- the transport, as the protocol sees it

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            return
        self.written += data
        # A new request head: the upstream answers with its next reply.
        while self.written.count(b"\r\n\r\n") > self.requests:
            self.requests += 1
            reply = self.replies.pop(0) if self.replies else SILENT
            idle = not self._pending
            for step in reply if isinstance(reply, tuple) else (reply,):
                if isinstance(step, bytes):
                    self._pending.extend(self.upstream.pieces(step))
                else:
                    self._pending.append(step)
            if idle:
                asyncio.get_running_loop().call_soon(self._deliver)

    def close(self) -> None:
        self._end()

    def abort(self) -> None:
        self.aborted = True
        self._end()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        asyncio.get_running_loop().call_soon(self._deliver)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    # -- the upstream's side

    def _end(self) -> None:
        if not self.closing:
            self.closing = True
            self._pending.clear()
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def _deliver(self) -> None:
        """One piece of the pending reply, then the next on a later turn."""
        if self.closing or self.reading_paused or not self._pending:
            return
        step = self._pending.pop(0)
        if step is CLOSE:
            self._pending.clear()
            if not self.protocol.eof_received():
                self.close()
            return
        if step is not SILENT:
            self.protocol.data_received(step)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._deliver)


class ScriptedUpstream:
    """A connector: connection number N answers its requests with ``scripts[N]``, in order."""

    def __init__(self, *scripts: list[Reply], pieces: Callable[[bytes], list[bytes]] = whole) -> None:
        self.scripts = list(scripts)
        self.pieces = pieces
        self.transports: list[FakeTransport] = []

    async def __call__(self, protocol_factory: Callable[[], UpstreamConnection]) -> tuple[FakeTransport, UpstreamConnection]:
        protocol = protocol_factory()
        script = self.scripts[len(self.transports)] if len(self.transports) < len(self.scripts) else []
        transport = FakeTransport(self, protocol, script)
        self.transports.append(transport)
        protocol.connection_made(transport)
        await asyncio.sleep(0)  # a real connect takes at least one turn of the loop
        return transport, protocol


class SlowConnector(ScriptedUpstream):
    """Makes the connection, then takes too long to report it: the connect times out after
    ``connection_made`` (the transport is closed, as asyncio's ``create_connection`` does)."""

    async def __call__(self, protocol_factory: Callable[[], UpstreamConnection]) -> tuple[FakeTransport, UpstreamConnection]:
        protocol = protocol_factory()
        transport = FakeTransport(self, protocol, [])
        self.transports.append(transport)
        protocol.connection_made(transport)
        try:
            await asyncio.sleep(10)
        except BaseException:
            transport.close()
            raise
        return transport, protocol


def make_pool(upstream: ScriptedUpstream, *, max_idle: int = 8, idle_timeout: float = 30.0) -> UpstreamPool:
    return UpstreamPool(
        "upstream.test", 8000, connect_timeout=0.5, idle_timeout=idle_timeout, max_idle=max_idle, connector=upstream
    )


def run(scenario: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, 5))


GET = b"GET / HTTP/1.1\r\nhost: upstream.test\r\n\r\n"
HEAD_REQUEST = b"HEAD / HTTP/1.1\r\nhost: upstream.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


async def exchange(pool: UpstreamPool, request: bytes = GET, *, timeout: float = 1.0) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """One exchange as the proxy drives it: (status, headers, body, whether the connection was kept)."""
    connection = pool.take_idle() or await pool.connect()
    try:
        connection.begin(request, head_request=request.startswith(b"HEAD "))
        await connection.wait_for(HEAD, timeout)
        pieces = []
        while True:
            await connection.wait_for(BODY_PIECE, timeout)
            piece = connection.take_body()
            if not piece:
                break
            pieces.append(piece)
        kept = connection.reusable
        pool.release(connection)
        return connection.status, connection.headers, b"".join(pieces), kept
    except BaseException:
        connection.abort()
        raise


async def settle() -> None:
    """Let the loop run the callbacks a close schedules (``connection_lost``)."""
    for _ in range(3):
        await asyncio.sleep(0)
