"""A lean HTTP/1.1 client for one upstream: keep-alive connections on asyncio + httptools.

Why not httpx: its pool scans every connection on each request, which costs
60-100x nginx's CPU per request (README.md, "Speed"). Here an idle connection is one
``deque.pop()`` away, responses are parsed by httptools (llhttp, C), and body
chunks flow with back-pressure in both directions, so a 100 MB body never sits
in memory.

Errors are translated at this boundary: ``UpstreamConnectError`` (502),
``UpstreamTimeout`` (504), ``UpstreamClosed`` and ``UpstreamProtocolError`` (502).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import httptools

from gateway.errors import GatewayError, UpstreamClosed, UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.forwarding import HOP_BY_HOP
from gateway.http import Headers

# Body bytes buffered from the upstream before its socket stops being read: the
# client's pace, not the upstream's, decides how much is held in memory.
READ_HIGH_WATER = 256 * 1024

# What ``UpstreamConnection.wait_for`` waits for, and its name in a timeout's message.
HEAD, BODY_PIECE, WHOLE_BODY = 0, 1, 2
_STAGE_NAMES = ("response headers", "response body", "response body")

# Opens a connection for the protocol the factory makes, as ``loop.create_connection(factory,
# host, port)`` does (the default); tests pass one that hands the protocol a scripted transport.
Connector = Callable[[Callable[[], "UpstreamConnection"]], Awaitable[tuple[object, "UpstreamConnection"]]]


# What ``UpstreamConnection.on_header`` notes of a response field: its length, its transfer
# coding, or that it is hop-by-hop (RFC 9110 7.6.1) and is not relayed.
_LENGTH_FIELD, _CODING_FIELD, _HOP_FIELD = 1, 2, 3
_NOTED_FIELDS = {
    **{name: _HOP_FIELD for name in HOP_BY_HOP},
    b"content-length": _LENGTH_FIELD,
    b"transfer-encoding": _CODING_FIELD,
}


class Listener(Protocol):
    """What an exchange driven by callbacks (gateway/exchange.py) is told, instead of awaiting
    ``wait_for``: the response made progress (or failed: ``error``), or no progress came in time."""

    def upstream_progress(self) -> None: ...

    def upstream_timeout(self, error: UpstreamTimeout) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time, awaited (``wait_for``) or
    driven by callbacks (``listen``)."""

    # Slots: more attributes than CPython keeps inline, each read and set on every exchange.
    __slots__ = (
        "loop", "pool", "transport", "parser", "closed", "reused", "_spare_fd", "idle_since", "_timer",
        "_deadline", "_timeout", "_waiting_for", "_chunks", "_write_paused", "_drain_waiter",
        "listener", "_progressed", "_watching", "status", "headers", "headers_complete",
        "message_complete", "keep_alive", "received_any", "head_request", "content_length",
        "has_length", "_framed", "hop_by_hop", "_until_eof", "_informational", "_buffered",
        "_read_paused", "_waiter", "_error", "__weakref__",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: UpstreamPool | None = None) -> None:
        self.loop = loop
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self._spare_fd = -1
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._timeout = 0.0
        self._waiting_for = HEAD
        self._chunks: collections.deque[bytes] = collections.deque()
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # The exchange told of progress by callbacks, when one listens (``listen``).
        self.listener: Listener | None = None
        self._progressed = False
        self._watching = False
        self._reset()

    def _reset(self) -> None:
        self._reset_response()
        self._informational = False
        self._until_eof = False
        self._chunks.clear()
        self._buffered = 0
        self._read_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: GatewayError | None = None

    def _reset_response(self) -> None:
        """What each response sets; the rest is as ``_reset`` left it after a reusable exchange
        (no error, no interim answer or body bytes pending, reading not paused, no waiter)."""
        self.status = 0
        self.headers: Headers = []
        self.headers_complete = False
        self.message_complete = False
        self.keep_alive = False
        self.received_any = False
        self.head_request = False
        self.content_length: int | None = None
        self.has_length = False  # the response's body is framed by a Content-Length
        self._framed = False  # by a Content-Length or chunks
        # A hop-by-hop field came (``forwarding.response_headers`` then has fields to drop).
        self.hop_by_hop = False
        self._until_eof = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        # Counted here and uncounted in connection_lost, the one callback every transport that
        # was made reaches, however it ends (also when a connect times out after this).
        if self.pool is not None:
            self.pool.open_count += 1

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.cut(UpstreamProtocolError("the upstream switched protocols, which the gateway does not proxy"))
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own verdict travels as the parser error's context
            if not isinstance(cause, UpstreamError):
                cause = UpstreamProtocolError(f"malformed response from the upstream: {exc}")
            self.cut(cause)
        listener = self.listener
        if listener is not None:
            # Told once per read, after the parser returned: the listener may then hand this
            # connection back to the pool (a fresh parser for a HEAD) without being inside it.
            self._progressed = False
            listener.upstream_progress()

    def _tell_listener(self) -> None:
        self._progressed = False
        listener = self.listener
        if listener is not None:
            listener.upstream_progress()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._spare_fd >= 0:
            if exc is not None and not self.message_complete and self._error is None:
                self._read_what_is_left()
            os.close(self._spare_fd)
            self._spare_fd = -1
        if self.pool is not None:
            self.pool.open_count -= 1
        if self.headers_complete and self._until_eof and not self.message_complete and exc is None:
            # A response without a length ends when the connection does (RFC 9112 6.3): closed,
            # not reset (a reset cuts it).
            self.message_complete = True
            self._wake()
        elif not self.message_complete:
            self.cut(
                UpstreamClosed(
                    "the upstream closed the connection" + (f" ({exc})" if exc else ""),
                    before_response=not self.received_any,
                )
            )
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._progressed:
            self._tell_listener()

    def _read_what_is_left(self) -> None:
        """Parse the bytes the upstream sent before the connection failed (bounded, never blocking)."""
        left = READ_HIGH_WATER
        while left > 0 and not self.message_complete and self._error is None:
            try:
                data = os.read(self._spare_fd, min(left, 65536))
            except OSError:  # nothing more (EAGAIN) or the reset itself
                return
            if not data:
                return
            left -= len(data)
            self.data_received(data)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp reports trailer fields here too; they are never header fields (RFC 9110 6.5.1).
        if not self.headers_complete:
            name = name.lower()
            # The fields that frame the body or go no further are noted as they come: one
            # lookup each, and no second pass over the headers.
            kind = _NOTED_FIELDS.get(name)
            if kind is not None:
                if kind == _LENGTH_FIELD:
                    self.has_length = self._framed = True
                    self.content_length = int(value) if value.isdigit() else None
                else:
                    self.hop_by_hop = True
                    if kind == _CODING_FIELD:
                        # Exactly "chunked", as llhttp reads it (a tab after it makes llhttp read
                        # the body to the close instead).
                        if b"\t" in value or value.strip(b" ").lower() != b"chunked":
                            # llhttp takes the chunks apart and nothing undoes another coding: a
                            # "gzip, chunked" body would reach the client as gzip it was not told of.
                            raise UpstreamProtocolError(f"the upstream sent Transfer-Encoding: {value[:64].decode('latin-1')!r}")
                        self._framed = True
            self.headers.append((name, value))

    def on_message_begin(self) -> None:
        if self.message_complete:
            # A response begins with no request outstanding (RFC 9112 9.3: responses answer
            # requests in order): the bytes are a broken or hostile upstream's, and read as the
            # next answer they would reach another client. The connection is never reused.
            raise UpstreamProtocolError("the upstream sent bytes after a complete response")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status < 100:
                raise UpstreamProtocolError(f"the upstream answered with status {status}")
            # 100 Continue, 103 Early Hints: interim answers the client does not need.
            self._informational = True
            self.headers = []
            self.content_length = None
            self.has_length = self._framed = self.hop_by_hop = False
            return
        if status > 599:
            # Three digits, but no status class (RFC 9110 15): nothing a client can be given.
            raise UpstreamProtocolError(f"the upstream answered with status {status}")
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_complete = True
        if self.head_request:
            # llhttp cannot be told the request was HEAD; the body it would wait for never comes.
            self.message_complete = True
        elif status not in (204, 304):
            self._until_eof = not self._framed
        if self._waiter is not None:  # awaited (wait_for); a listener is told after the read
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        if self._waiter is not None:  # awaited (wait_for); a listener is told after the read
            self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.message_complete = True
        if self._waiter is not None:  # awaited (wait_for); a listener is told after the read
            self._wake()

    # -- the exchange, as the proxy drives it

    def begin(self, head: bytes, *, head_request: bool) -> None:
        """Start an exchange by writing the request head (and any first body bytes)."""
        self._reset_response()
        self.head_request = head_request
        assert self.transport is not None
        self.transport.write(head)

    def keep_early_answer(self) -> None:
        """Before streaming a request body: make sure an answer the upstream sends before
        reading it all (Django's 413 for an upload over its limit) reaches the client.

        Such an upstream closes with the body unread, so its kernel resets the connection;
        the gateway's next write then fails and the transport closes without reading the
        answer, which is still in the kernel's buffer. A second descriptor for the socket
        (taken once per connection that streams a body, kept until it closes) lets
        ``_read_what_is_left`` read it, as nginx reads an early answer.
        """
        if self._spare_fd >= 0 or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        try:
            self._spare_fd = os.dup(sock.fileno()) if sock is not None else -1
        except OSError:
            self._spare_fd = -1  # out of descriptors: the early answer may then be a 502

    async def write(self, data: bytes) -> None:
        """Send request body bytes, waiting while the socket's buffer is full."""
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            return  # the upstream is gone; reading the response will say why
        self.transport.write(data)
        if self._write_paused:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def begin_listened(self, listener: Listener, timeout: float, head: bytes, head_request: bool) -> None:
        """``listen`` and ``begin`` in one call, as the callback path starts every exchange."""
        self._reset_response()
        self.head_request = head_request
        self.listener = listener
        self._timeout = timeout
        self._watching = True
        self._deadline = self.loop.time() + timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
        assert self.transport is not None
        self.transport.write(head)

    def listen(self, listener: Listener, timeout: float) -> None:
        """Drive this exchange by callbacks: ``listener`` is told of every step of the response,
        and of ``timeout`` seconds passing without one while ``watch`` is on."""
        self.listener = listener
        self._timeout = timeout
        self.watch(True)

    def watch(self, on: bool) -> None:
        """Start (again) or stop the listener's progress deadline: stopped while the client is
        not reading the answer (its own send timeout applies then), else moved on at each step."""
        self._watching = on
        if on:
            self._deadline = self.loop.time() + self._timeout
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    @property
    def small_body_pending(self) -> bool:
        """A body with a length that fits the read buffer is still arriving: worth waiting for whole."""
        return not self.message_complete and self.content_length is not None and self.content_length <= READ_HIGH_WATER

    def take_body(self) -> bytes:
        """Every body byte received so far."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def wait_for(self, stage: int, timeout: float) -> None:
        """Wait until the response reaches ``stage``: ``HEAD`` (status and headers in ``status``/
        ``headers``), ``BODY_PIECE`` (body bytes for ``take_body``, or the end) or ``WHOLE_BODY``
        (the end, for a body ``small_body_pending`` said fits the buffer).

        Raises the error that cut the exchange, or UpstreamTimeout after ``timeout`` seconds
        without progress. Not a timer per wait: the connection keeps one timer and moves a
        deadline, re-arming the timer only when it fires early (far fewer timers than waits).
        """
        # A complete response has passed every stage (its head is complete too).
        while not (
            self.message_complete or (self.headers_complete if stage == HEAD else stage == BODY_PIECE and bool(self._chunks))
        ):
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self.loop.create_future()
            self._deadline = self.loop.time() + timeout
            self._waiting_for = stage
            self._timeout = timeout
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            try:
                await waiter
            finally:
                self._waiter = None

    @property
    def reusable(self) -> bool:
        return self.message_complete and self.keep_alive and not self.closed and not self._chunks

    def finish(self) -> None:
        """After a complete exchange: a HEAD leaves llhttp waiting for a body, so it gets a fresh parser."""
        if self.head_request:
            self.parser = httptools.HttpResponseParser(self)

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        """Drop the connection at once (an exchange was cut short; its state is unknown)."""
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    # -- internals

    def cut(self, error: GatewayError) -> None:
        """End the exchange with ``error``: the waiting reader raises it, the socket is dropped."""
        if self._error is None:
            self._error = error
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self.listener is not None:
            self._progressed = True
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_deadline(self) -> None:
        self._timer = None
        listener = self.listener
        if listener is not None:
            if not self._watching or self.closed:
                return  # the next watch arms a new timer
            if self.loop.time() < self._deadline:
                self._timer = self.loop.call_at(self._deadline, self._check_deadline)
                return
            stage = "response body" if self.headers_complete else "response headers"
            listener.upstream_timeout(UpstreamTimeout(f"no {stage} from the upstream within {self._timeout:g} s"))
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing waiting: the next wait arms a new timer
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            return
        waited_for = _STAGE_NAMES[self._waiting_for]
        waiter.set_exception(UpstreamTimeout(f"no {waited_for} from the upstream within {self._timeout:g} s"))


class UpstreamPool:
    """Keep-alive connections to one upstream, reused most-recently-idle first.

    Idle connections older than ``idle_timeout`` are dropped from the old end of
    the deque when a connection is taken, so nothing ever scans the whole pool.
    New connections are opened by ``connector``, ``loop.create_connection`` to
    ``host``:``port`` when it is None.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        idle_timeout: float,
        max_idle: int,
        connector: Connector | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.connector = connector
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: collections.deque[UpstreamConnection] = collections.deque()
        self.open_count = 0  # open now, idle or busy: a leak shows here

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used idle connection still open, or None (then ``connect``)."""
        idle = self._idle
        if idle:
            cutoff = time.monotonic() - self.idle_timeout
            while idle and idle[0].idle_since < cutoff:
                idle.popleft().close()
            while idle:
                connection = idle.pop()
                if not connection.closed:
                    connection.reused = True
                    return connection
        return None

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                connector = self.connector
                if connector is None:
                    _, protocol = await loop.create_connection(
                        lambda: UpstreamConnection(loop, self), self.host, self.port
                    )
                else:
                    _, protocol = await connector(lambda: UpstreamConnection(loop, self))
        except TimeoutError:
            raise UpstreamTimeout(
                f"could not connect to {self.host}:{self.port} within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return protocol

    def release(self, connection: UpstreamConnection) -> None:
        """Return a connection after an exchange: kept if reusable, closed otherwise."""
        connection.listener = None
        connection._watching = False
        # connection.reusable, inlined: this runs after every exchange.
        if (
            connection.message_complete
            and connection.keep_alive
            and not connection.closed
            and not connection._chunks
            and len(self._idle) < self.max_idle
        ):
            if connection.head_request:
                connection.finish()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
