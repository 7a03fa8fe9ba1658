"""Forwarding one request to the upstream and streaming the answer back (raw ASGI).

The request head is rebuilt byte for byte by ``forwarding.request_head`` (method, raw path,
query, headers minus hop-by-hop ones, X-Forwarded-* set); bodies stream both ways with
back-pressure.
When the upstream cannot be reached or is too slow, the gateway answers 502/504
itself with JSON and the same CORS headers as its maintenance answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from starlette.types import Message, Receive, Scope, Send

from gateway.bounded_cache import ANSWER_CACHE_LIMIT, BoundedCache
from gateway.cors import CorsPolicy
from gateway.errors import BadRequest, BodyTimeout, ClientGone, Overloaded, UpstreamClosed, UpstreamError
from gateway.forwarding import CHUNKED_BODY, NO_BODY, TrustedPeers, request_head, response_headers
from gateway.http import JSON_TYPE, NO_STORE, VARY_ORIGIN, Answer, body_headers, header_value, json_bytes
from gateway.metrics import Metrics
from gateway.upstream import BODY_PIECE, HEAD, WHOLE_BODY, UpstreamConnection, UpstreamPool

logger = logging.getLogger("gateway.proxy")

# The gateway's own error answers: the stable code a script matches, and what people are told.
_ERRORS = {
    400: ("bad_request", "The request is malformed."),
    408: ("request_timeout", "The request body arrived too slowly."),
    502: ("upstream_unavailable", "The application is not reachable right now. Please try again."),
    503: ("overloaded", "Too many requests at once. Please retry in a moment."),
    504: ("upstream_timeout", "The application took too long to answer. Please try again."),
}
# Built once: the usual answers carry the usual message.
_ERROR_BODIES = {status: json_bytes({"error": code, "message": text}) for status, (code, text) in _ERRORS.items()}


class ErrorLog:
    """At most one log line a second for upstream errors, counting the ones it held back."""

    def __init__(self) -> None:
        self._last = 0.0
        self._held = 0

    def report(self, error: UpstreamError, scope: Scope) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        logger.warning(
            "upstream error: %s (%s %s)%s",
            error,
            scope["method"],
            scope["path"],
            f"; {held} more since the last report" if held else "",
            extra={"event": "upstream_error", "status": error.status, "suppressed": held},
        )


class Proxy:
    def __init__(
        self,
        pool: UpstreamPool,
        cors: CorsPolicy,
        trusted: TrustedPeers,
        *,
        read_timeout: float,
        upstream_authority: bytes,
        metrics: Metrics,
        body_timeout: float = 30.0,
        buffer_limit: int = 1 << 20,
        load: Load | None = None,
        max_buffering: int = 128,
        body_min_rate: float = 0.0,
    ) -> None:
        self.metrics = metrics
        self.body_timeout = body_timeout
        self.buffer_limit = buffer_limit
        self.load: Load = load if load is not None else _Unlimited()
        # Requests receiving their body before Django is called: each holds up to
        # ``buffer_limit`` bytes, so this bounds the memory bodies take (max_buffering x buffer_limit).
        self.buffering = 0
        self.max_buffering = max_buffering
        self.body_min_rate = body_min_rate
        self.pool = pool
        self.cors = cors
        # The errors without a message of their own (502, 504, load shedding), built once per
        # status, Origin and whether the connection closes: under an outage or overload every
        # request gets one, and the 503 of maintenance is built once too.
        self._error_answers: BoundedCache[tuple[int, bytes | None, bool], Answer] = BoundedCache(
            self._build_error_answer, ANSWER_CACHE_LIMIT
        )
        self.trusted = trusted
        self.read_timeout = read_timeout
        self.upstream_authority = upstream_authority
        self.errors = ErrorLog()
        # The whole "x-maintenance-notice: ...\r\n" line while a notice applies, else b"": set by
        # the app when the state changes or a window starts or ends, never built per request.
        self.notice = b""

    def request_head(self, scope: Scope) -> tuple[bytes, int, bytes]:
        """``forwarding.request_head`` with this proxy's peers, authority and notice (the WebSocket
        handshake is forwarded with the same head)."""
        return request_head(scope, self.trusted, self.upstream_authority, self.notice)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One coroutine for the whole exchange: every await of a helper coroutine costs the
        # hot path, so the common case (a body in hand, a response in one piece) calls none.
        try:
            head, body_kind, length = request_head(scope, self.trusted, self.upstream_authority, self.notice)
            if body_kind == NO_BODY:
                message = head + b"\r\n"
                more_body = False
            else:
                pace = _BodyPace()
                message, more_body = await self._frame_body(head, body_kind, length, receive, pace)
        except ClientGone:
            return
        except BadRequest as exc:
            await self.answer_error(exc.status, scope, send, exc.message)
            return
        except BodyTimeout:
            await self.answer_error(408, scope, send)
            return
        except Overloaded:
            self.metrics.overloaded += 1
            await self.answer_error(503, scope, send, close=True)
            return

        head_request = scope["method"] == "HEAD"
        response_started = False
        connection: UpstreamConnection | None = None
        started = time.perf_counter()
        try:
            connection = self.pool.take_idle() or await self.pool.connect()
            try:
                connection.begin(message, head_request=head_request)
                if more_body:
                    connection.keep_early_answer()
                    await self._stream_request(connection, body_kind, receive, pace)
                if connection.closed and not connection.received_any:
                    raise UpstreamClosed("the upstream closed the connection", before_response=True)
                if not connection.headers_complete:
                    await connection.wait_for(HEAD, self.read_timeout)
            except UpstreamClosed as exc:
                # A request whose whole body is in hand is sent again, once, on a new connection
                # when a reused one turns out to have been closed by the upstream before answering.
                if not (exc.before_response and connection.reused and not more_body):
                    raise
                connection.abort()
                connection = await self.pool.connect()
                connection.begin(message, head_request=head_request)
                await connection.wait_for(HEAD, self.read_timeout)
            self.metrics.observe_upstream(time.perf_counter() - started)
            if connection.small_body_pending:
                # Up to 256 KiB with a length: one body message, and no disconnect watcher to start.
                await connection.wait_for(WHOLE_BODY, self.read_timeout)
            headers = response_headers(connection.headers, connection.status, connection.hop_by_hop)
            await send({"type": "http.response.start", "status": connection.status, "headers": headers})
            response_started = True
            if connection.message_complete:
                await send({"type": "http.response.body", "body": connection.take_body()})
            else:
                await self._stream_body(connection, receive, send)
            self.pool.release(connection)
            connection = None
            self.metrics.proxied += 1
        except ClientGone:
            pass
        except BodyTimeout:
            if not response_started:
                await self.answer_error(408, scope, send)
        except UpstreamError as exc:
            self.metrics.upstream_failed(exc.status)
            self.errors.report(exc, scope)
            if response_started:
                raise  # the status line is gone; the server closes the connection to show the cut
            answer = self.preflight_for_upstream(scope) if scope["method"] == "OPTIONS" else None
            await (answer or self.error_answer(exc.status, scope)).send(send)
        finally:
            if connection is not None:
                connection.abort()

    async def _frame_body(
        self, head: bytes, body_kind: int, length: bytes, receive: Receive, pace: _BodyPace
    ) -> tuple[bytes, bool]:
        """The head with its framing and the body read so far, and whether more is to come.

        A body of up to ``request_buffer_bytes`` is read whole before Django is
        called, so a slow client holds no Django worker while it uploads; such a
        body is sent with a Content-Length even if the client sent it chunked
        (Django cannot read a chunked body). A bigger one streams.

        While it is read the request does not count against GATEWAY_MAX_IN_FLIGHT: a client
        still sending its body takes no place from requests that are ready (else a thousand
        slow uploads shut everyone else out). It counts against GATEWAY_MAX_BUFFERING_BODIES
        instead, which bounds the memory bodies hold, and must keep to a minimum pace (``_receive``).
        """
        if self.buffering >= self.max_buffering:
            raise Overloaded
        load = self.load
        load.in_flight -= 1
        self.buffering += 1
        try:
            pieces = []
            size = 0
            more_body = True
            while more_body and size <= self.buffer_limit:
                received = await self._receive(receive, pace)
                piece = received.get("body", b"")
                pieces.append(piece)
                size += len(piece)
                more_body = received.get("more_body", False)
        finally:
            self.buffering -= 1
            load.in_flight += 1
        if load.in_flight > load.max_in_flight:
            raise Overloaded  # ready now, but every place is taken meanwhile
        body = b"".join(pieces)
        if not more_body:
            return b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body), False
        if body_kind == CHUNKED_BODY:
            return head + b"transfer-encoding: chunked\r\n\r\n" + _chunk(body), True
        return b"%scontent-length: %s\r\n\r\n%s" % (head, length, body), True

    async def _receive(self, receive: Receive, pace: _BodyPace) -> Message:
        """The next piece of the request body; a client too slow gets a 408.

        Too slow: nothing for GATEWAY_CLIENT_BODY_TIMEOUT seconds (nginx's client_body_timeout),
        or, once that much waiting is spent, less than GATEWAY_CLIENT_BODY_MIN_RATE bytes a
        second on average (Apache's mod_reqtimeout MinRate). The timeout alone lets 100 bytes
        every 10 s hold a request for hours; the rate bounds how long any body can take. Only
        time spent waiting for the client counts, not time the upstream takes to read.
        """
        timeout = self.body_timeout
        if self.body_min_rate:
            timeout = min(timeout, timeout + pace.received / self.body_min_rate - pace.waited)
            if timeout <= 0:
                raise BodyTimeout
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout from None
        pace.waited += time.monotonic() - started
        if message["type"] == "http.disconnect":
            raise ClientGone
        pace.received += len(message.get("body", b""))
        return message

    async def _stream_request(
        self, connection: UpstreamConnection, body_kind: int, receive: Receive, pace: _BodyPace
    ) -> None:
        """The rest of a body too big to buffer, as it arrives."""
        more_body = True
        while more_body:
            received = await self._receive(receive, pace)
            data = received.get("body", b"")
            more_body = received.get("more_body", False)
            if body_kind == CHUNKED_BODY:
                data = _chunk(data) + (b"" if more_body else b"0\r\n\r\n")
            if data:
                await connection.write(data)
            if connection.closed or (connection.headers_complete and not connection.keep_alive):
                # The upstream answered early and is closing (RFC 9112 9.5: stop sending the
                # body), or went away; its response, if any, is what the client gets.
                return

    async def _stream_body(self, connection: UpstreamConnection, receive: Receive, send: Send) -> None:
        """Relay a body that is still arriving, watching for the client leaving meanwhile.

        The server's ``send`` to a gone client returns silently, so without the
        watcher an endless stream (server-sent events) would hold its upstream
        connection for ever.
        """
        finished = False

        def client_left(task: asyncio.Task[None]) -> None:
            if not finished and not task.cancelled() and task.exception() is None:
                connection.cut(ClientGone())

        watcher = asyncio.get_running_loop().create_task(
            _until_disconnect(receive), name="gateway-disconnect-watcher"
        )
        watcher.add_done_callback(client_left)
        try:
            while True:
                await connection.wait_for(BODY_PIECE, self.read_timeout)
                data = connection.take_body()
                if not data:
                    break
                await send({"type": "http.response.body", "body": data, "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b""})
        finally:
            finished = True
            if not watcher.done():
                watcher.cancel()

    def preflight_for_upstream(self, scope: Scope) -> Answer | None:
        """The answer to a preflight Django could not answer, for an allowed origin (None otherwise).

        A browser reports a failed preflight to the page only as a network error, so the
        page could never read the 502/504 that its real request would get; answered here,
        the real request follows and the front end can tell "down" from "offline".
        """
        origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
        if origin is None or preflight is None:
            return None
        allowed = self.cors.preflight_headers(origin)
        if allowed is None:
            return None
        return Answer(204, [NO_STORE, VARY_ORIGIN, *allowed], b"")

    def error_answer(self, status: int, scope: Scope, message: str | None = None, *, close: bool = False) -> Answer:
        """The gateway's own JSON error, with the same CORS headers as its maintenance answer."""
        origin = header_value(scope["headers"], b"origin")
        if message is None:
            return self._error_answers[(status, origin, close)]
        return self._error_answer(status, origin, json_bytes({"error": _ERRORS[status][0], "message": message}), close)

    def _build_error_answer(self, key: tuple[int, bytes | None, bool]) -> Answer:
        status, origin, close = key
        return self._error_answer(status, origin, _ERROR_BODIES[status], close)

    def _error_answer(self, status: int, origin: bytes | None, body: bytes, close: bool) -> Answer:
        headers = body_headers(JSON_TYPE, body) + [NO_STORE, VARY_ORIGIN]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        if close or status in (400, 408):
            # The rest of the request body was not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        headers += self.cors.simple_headers(origin)
        return Answer(status, headers, body)

    async def answer_error(
        self, status: int, scope: Scope, send: Send, message: str | None = None, *, close: bool = False
    ) -> None:
        await self.error_answer(status, scope, message, close=close).send(send)


class Load(Protocol):
    """The requests being handled (the app counts them; ``_frame_body`` lends a place out)."""

    in_flight: int
    max_in_flight: int


class _Unlimited:
    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 1 << 62


class _BodyPace:
    """How much of one request body has arrived, and how long the gateway waited for it."""

    __slots__ = ("received", "waited")

    def __init__(self) -> None:
        self.received = 0
        self.waited = 0.0


async def _until_disconnect(receive: Receive) -> None:
    # A bodiless request still yields one empty http.request message first.
    while (await receive())["type"] != "http.disconnect":
        pass


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""

