"""The hot path as callbacks on the client's connection: no ASGI scope task, no receive or send
messages, no coroutine per request.

``CallbackRoutes.cycle`` decides, when a request head is complete, what answers it:

- the gateway's own answers (the maintenance 503 and its preflights, the status feed, load
  shedding, a refused head): an ``AnsweredCycle``, one prebuilt ``Answer`` written whole;
- a request forwarded to Django with its body in hand or on the way (up to
  GATEWAY_REQUEST_BUFFER_BYTES, with a length): a ``ForwardExchange``, driven by the
  client protocol's parser callbacks on one side and the upstream connection's on the other;
- everything else (the admin API and bypass form, bodies too big to buffer or chunked):
  the ASGI application, through the connection protocol's ASGI cycle.

Every rule is the ASGI path's: the head Django gets (``forwarding.request_head``), the decision
(``decision.MaintenanceDecision``), the error answers and their CORS headers
(``Proxy.error_answer``), the body limits, the retry of a reused connection the upstream
closed, and the upstream's timeouts. gateway/proxy.py keeps the ASGI path for streamed bodies.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from gateway.errors import BadRequest, UpstreamClosed, UpstreamError, UpstreamTimeout
from gateway.forwarding import FIELD_LINE, LENGTH_BODY, NO_BODY, request_head, response_headers
from gateway.http import CLOSE, STATUS_LINES, Answer
from gateway.upstream import READ_HIGH_WATER, UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.decision import MaintenanceDecision
    from gateway.metrics import Metrics
    from gateway.proxy import Proxy
    from gateway.status_feed import StatusFeed
    from gateway.server.http_protocol import GatewayHttpProtocol

access_logger = logging.getLogger("uvicorn.access")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
# Statuses whose answers never have a body (RFC 9110 6.4.1).
_BODILESS = frozenset({204, 304})


def reset(transport: asyncio.Transport) -> None:
    """Close the connection with a reset (RST), not a close: the one way an HTTP/1.0 client is
    told that a body ended by the close was cut short."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # then a plain close: the client may take the body for whole
    transport.abort()


def log_access(scope: dict[str, Any], status: int) -> None:
    """uvicorn's access line, as its own cycle writes it (GATEWAY_ACCESS_LOG)."""
    client = scope.get("client")
    query = scope["query_string"]
    path = scope["path"] + ("?" + query.decode("ascii", "replace") if query else "")
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d',
        "%s:%d" % tuple(client) if client else "",
        scope["method"],
        path,
        scope["http_version"],
        status,
    )


class AnsweredCycle:
    """A request the gateway answers itself, with an answer built before its turn came."""

    __slots__ = ("connection", "scope", "answer", "keep_alive", "more_body", "response_started", "response_complete", "on_response")

    def __init__(self, connection: GatewayHttpProtocol, scope: dict[str, Any], answer: Answer, keep_alive: bool) -> None:
        self.connection = connection
        self.scope = scope
        self.answer = answer
        self.keep_alive = keep_alive and not answer.closes
        self.more_body = True  # the request's body, if any, is still arriving (it is not read)
        self.response_started = False
        self.response_complete = False
        self.on_response = connection.on_response_complete

    def start(self) -> None:
        connection = self.connection
        answer = self.answer
        self.response_started = True
        if self.scope["method"] == "HEAD":
            connection.transport.write(answer.head + (b"\r\n" if self.keep_alive or answer.closes else CLOSE))
        else:
            connection.transport.write(answer.kept_open if self.keep_alive else answer.closing)
        if connection.access_log:
            log_access(self.scope, answer.status)
        self.response_complete = True
        if not self.keep_alive:
            connection.transport.close()
        self.on_response()

    def feed_body(self, body: bytes) -> None:
        pass  # not read: the answer did not wait for it

    def feed_end(self) -> None:
        self.more_body = False

    def lost(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class CallbackRoutes:
    """What a gateway's connection protocol needs to answer requests by callbacks."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings
        self.decision: MaintenanceDecision = gateway.decision
        self.proxy: Proxy = gateway.proxy
        self.pool: UpstreamPool = gateway.proxy.pool
        self.metrics: Metrics = gateway.metrics
        self.status_feed: StatusFeed = gateway.status_feed
        self.admin_prefix = settings.admin_prefix
        self.admin_prefix_slash = settings.admin_prefix + "/"
        self.status_path = settings.admin_prefix + "/status"
        self.buffer_limit = settings.request_buffer_bytes
        self.read_timeout = settings.upstream_read_timeout
        self.body_timeout = settings.client_body_timeout
        self.body_min_rate = settings.client_body_min_rate

    def cycle(self, connection: GatewayHttpProtocol, scope: dict[str, Any], keep_alive: bool, expect_100: bool) -> Any:
        """The cycle that answers this request: an answer, a forwarded exchange, or the ASGI app."""
        gateway = self.gateway
        path: str = scope["path"]
        if path.startswith(self.admin_prefix_slash) or path == self.admin_prefix:
            if path == self.status_path:
                # Polled by every open browser tab: answered here, not by the Starlette routes.
                return AnsweredCycle(connection, scope, self.status_feed.answer(scope), keep_alive)
            return connection.asgi_cycle(scope, keep_alive, expect_100, gateway.admin)
        if gateway.in_flight >= gateway.max_in_flight:
            # Shed load at once rather than queue without bound; health checks above still answer.
            self.metrics.overloaded += 1
            return AnsweredCycle(connection, scope, self.proxy.error_answer(503, scope), keep_alive)
        answer = self.decision.answer_for(scope)
        if answer is not None:
            return AnsweredCycle(connection, scope, answer, keep_alive)
        try:
            head, body_kind, length = request_head(scope, self.proxy.trusted, self.proxy.upstream_authority, self.proxy.notice)
        except BadRequest as exc:
            return AnsweredCycle(connection, scope, self.proxy.error_answer(exc.status, scope, exc.message), keep_alive)
        if body_kind == NO_BODY:
            return ForwardExchange(self, connection, scope, keep_alive, head + b"\r\n", 0, False)
        if body_kind == LENGTH_BODY:
            size = int(length)
            if size == 0:
                return ForwardExchange(self, connection, scope, keep_alive, head + b"content-length: 0\r\n\r\n", 0, False)
            if size <= self.buffer_limit:
                return ForwardExchange(self, connection, scope, keep_alive, head, size, expect_100)
        # Chunked, or more than is buffered: streamed by the ASGI proxy, with back-pressure.
        return connection.asgi_cycle(scope, keep_alive, expect_100, gateway.forward)


class ForwardExchange:
    """One request forwarded to Django and its answer relayed, by callbacks.

    The request body (with a length, at most GATEWAY_REQUEST_BUFFER_BYTES) is gathered before
    Django is called, as the ASGI proxy does, so a slow upload holds no Django worker; while it
    arrives the request counts against GATEWAY_MAX_BUFFERING_BODIES, not GATEWAY_MAX_IN_FLIGHT,
    and must keep to GATEWAY_CLIENT_BODY_TIMEOUT and GATEWAY_CLIENT_BODY_MIN_RATE. The answer
    streams back with back-pressure both ways: while the client does not read, the upstream
    is not read past the connection's buffer.
    """

    # Defaults read from the class until a request changes them: an exchange is made per
    # request, and most of its state never moves from these for a request without a body.
    response_started = False
    response_complete = False
    _pieces: list[bytes] | None = None
    _received = 0
    _started = False
    _buffering = False
    _body_timer: asyncio.TimerHandle | None = None
    _body_since = 0.0
    _last_piece = 0.0
    upstream: UpstreamConnection | None = None
    _connecting: asyncio.Task[UpstreamConnection] | None = None
    _retried = False
    _sent_at = 0.0
    _chunked = False
    _client_paused = False
    _done = False
    _in_flight = False

    def __init__(
        self,
        routes: CallbackRoutes,
        connection: GatewayHttpProtocol,
        scope: dict[str, Any],
        keep_alive: bool,
        head: bytes,
        length: int,
        expect_100: bool,
    ) -> None:
        self.routes = routes
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.head = head  # the whole message when there is no body; else the head without framing
        self.length = length
        self.expect_100 = expect_100
        self.more_body = length > 0
        self.on_response = connection.on_response_complete
        self._head_request = scope["method"] == "HEAD"

    # -- the request, from the client's parser

    def start(self) -> None:
        """The request's turn has come (the answers before it on the connection are sent)."""
        self._started = True
        if not self.more_body:
            # No body, or all of it came before the request's turn (pipelined).
            if not self.length:
                # _forward_whole and _send_upstream, inlined: nearly every request takes this way.
                self.routes.gateway.in_flight += 1
                self._in_flight = True
                upstream = self.routes.pool.take_idle()
                if upstream is not None:
                    self._begin(upstream)
                else:
                    self._connect()
                return
            self._forward_whole()
            return
        proxy = self.routes.proxy
        if proxy.buffering >= proxy.max_buffering:
            self.routes.metrics.overloaded += 1
            self._answer(proxy.error_answer(503, self.scope, close=True))
            return
        # While its body arrives the request takes no place from requests that are ready.
        proxy.buffering += 1
        self._buffering = True
        if self.expect_100:
            self.connection.transport.write(CONTINUE)
        loop = self.connection.loop
        self._body_since = self._last_piece = loop.time()
        self._body_timer = loop.call_at(self._body_deadline(), self._check_body)
        self.connection.flow.resume_reading()

    def feed_body(self, body: bytes) -> None:
        if self._pieces is None:
            self._pieces = []
        self._pieces.append(body)
        self._received += len(body)
        if self._buffering:
            self._last_piece = self.connection.loop.time()

    def feed_end(self) -> None:
        awaited = self.more_body and self._started and not self._done
        self.more_body = False
        if awaited:
            # The body the request's turn was waiting for is whole.
            self._stop_buffering()
            self._forward_whole()

    def _forward_whole(self) -> None:
        """The request is whole: it takes a place in flight and goes to Django."""
        gateway = self.routes.gateway
        gateway.in_flight += 1
        self._in_flight = True
        if not self.length:
            self._send_upstream(self.head)
            return
        if gateway.in_flight > gateway.max_in_flight:
            self.routes.metrics.overloaded += 1  # ready now, but every place is taken meanwhile
            self._answer(self.routes.proxy.error_answer(503, self.scope, close=True))
            return
        body = b"".join(self._pieces or ())
        self._pieces = None
        self._send_upstream(b"%scontent-length: %d\r\n\r\n%s" % (self.head, len(body), body))

    def _stop_buffering(self) -> None:
        if self._buffering:
            self._buffering = False
            self.routes.proxy.buffering -= 1
        timer = self._body_timer
        if timer is not None:
            timer.cancel()
            self._body_timer = None

    def _body_deadline(self) -> float:
        """GATEWAY_CLIENT_BODY_TIMEOUT after the last piece, and, with GATEWAY_CLIENT_BODY_MIN_RATE,
        no later than the timeout plus what the bytes so far buy at that rate (the ASGI proxy's rule)."""
        routes = self.routes
        deadline = self._last_piece + routes.body_timeout
        if routes.body_min_rate:
            deadline = min(deadline, self._body_since + routes.body_timeout + self._received / routes.body_min_rate)
        return deadline

    def _check_body(self) -> None:
        self._body_timer = None
        if self._done or not self.more_body:
            return
        deadline = self._body_deadline()
        loop = self.connection.loop
        if loop.time() < deadline:
            self._body_timer = loop.call_at(deadline, self._check_body)
            return
        self._stop_buffering()
        self._answer(self.routes.proxy.error_answer(408, self.scope))

    def lost(self) -> None:
        """The client went away: whatever the upstream is doing for it is dropped."""
        if self._done:
            return
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.listener = None
            upstream.abort()
        self._finish_counting()

    def resume_writing(self) -> None:
        """The client read enough of the answer: relay more of it."""
        if self._client_paused and not self._done:
            self._client_paused = False
            upstream = self.upstream
            if upstream is not None:
                upstream.watch(True)
                self.upstream_progress()

    # -- the upstream

    def _send_upstream(self, message: bytes) -> None:
        self.head = message  # kept whole: a reused connection found closed is sent it again
        upstream = self.routes.pool.take_idle()
        if upstream is not None:
            self._begin(upstream)
            return
        self._connect()

    def _connect(self) -> None:
        task = self.connection.loop.create_task(self.routes.pool.connect(), name="gateway-upstream-connect")
        self._connecting = task  # held: the loop keeps only a weak reference to tasks
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        self._connecting = None
        if task.cancelled():
            return
        error = task.exception()
        if self._done:
            if error is None:
                task.result().close()
            return
        if error is not None:
            if isinstance(error, UpstreamError):
                self._fail(error)
                return
            raise error
        self._begin(task.result())

    def _begin(self, upstream: UpstreamConnection) -> None:
        self.upstream = upstream
        self._sent_at = time.perf_counter()
        upstream.begin_listened(self, self.routes.read_timeout, self.head, self._head_request)

    def upstream_timeout(self, error: UpstreamTimeout) -> None:
        self._fail(error)

    def upstream_progress(self) -> None:
        upstream = self.upstream
        if upstream is None or self._done:
            return
        if not upstream.message_complete and upstream._error is not None:
            error = upstream._error
            if not isinstance(error, UpstreamError):
                error = UpstreamClosed(str(error), before_response=not upstream.received_any)
            if (
                isinstance(error, UpstreamClosed)
                and error.before_response
                and upstream.reused
                and not self._retried
                and not self.response_started
            ):
                # Sent again, once, on a new connection: a reused one turned out to have been
                # closed by the upstream before answering, and the whole body is in hand.
                self._retried = True
                upstream.listener = None
                upstream.abort()
                self.upstream = None
                self._connect()
                return
            self._fail(error)
            return
        if not upstream.headers_complete:
            upstream.watch(True)
            return
        connection = self.connection
        if connection.transport.is_closing():
            # The client is gone or being cut (its connection_lost is on the way): nothing
            # more is written to it, and the upstream connection is dropped now.
            self.lost()
            return
        if not self.response_started:
            if not upstream.message_complete and upstream.content_length is not None and upstream.content_length <= READ_HIGH_WATER:
                # Up to 256 KiB with a length: head and body in one write.
                upstream.watch(True)
                return
            self.routes.metrics.observe_upstream(time.perf_counter() - self._sent_at)
            self.response_started = True
            status = upstream.status
            head_request = self._head_request
            # A body without a length is sent chunked (Django's streamed answers, an upstream's
            # chunked one: llhttp took its chunks apart), so that a cut answer shows as cut; to an
            # HTTP/1.0 client, which knows no chunks, it is ended by the close (and a cut one by
            # a reset: see _fail).
            chunked = self._chunked = not (upstream.has_length or head_request or status in _BODILESS) and (
                self.scope["http_version"] != "1.0"
            )
            body = upstream.take_body()
            if head_request:
                body = b""
            elif chunked and body:
                body = b"%x\r\n%s\r\n" % (len(body), body)
            # Names and values as llhttp took them: no CR, LF or other control byte.
            headers = response_headers(upstream.headers, status, upstream.hop_by_hop)
            connection.transport.write(
                b"%s%s%s%s%s%s"
                % (
                    STATUS_LINES[status],
                    b"\r\n".join(map(FIELD_LINE, headers)),
                    b"\r\n" if headers else b"",
                    _CHUNKED if chunked else b"",
                    b"\r\n" if self.keep_alive else CLOSE,
                    body,
                )
            )
            if connection.access_log:
                log_access(self.scope, status)
        elif not self._client_paused:
            body = upstream.take_body()
            if body and not self._head_request:
                connection.transport.write(b"%x\r\n%s\r\n" % (len(body), body) if self._chunked else body)
        if upstream.message_complete and not upstream._chunks:
            self._complete(upstream)
            return
        if connection.flow.write_paused:
            # The client is not reading: the upstream's buffer fills, then its socket is not read.
            self._client_paused = True
            upstream.watch(False)
        else:
            upstream.watch(True)

    def _complete(self, upstream: UpstreamConnection) -> None:
        connection = self.connection
        if self._chunked:
            connection.transport.write(_LAST_CHUNK)
        self.upstream = None
        routes = self.routes
        routes.pool.release(upstream)
        routes.metrics.proxied += 1
        # _finish_counting, inlined.
        if not self._done:
            self._done = True
            if self._buffering or self._body_timer is not None:
                self._stop_buffering()
            if self._in_flight:
                self._in_flight = False
                routes.gateway.in_flight -= 1
        self.response_complete = True
        if not self.keep_alive:
            connection.transport.close()
        self.on_response()

    def _fail(self, error: UpstreamError) -> None:
        routes = self.routes
        routes.metrics.upstream_failed(error.status)
        routes.proxy.errors.report(error, self.scope)
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.listener = None
            upstream.abort()
        if self.response_started:
            # The status line is gone: the connection is closed to show the answer was cut, by a
            # reset when nothing else would show it (a body ended by the close).
            self._finish_counting()
            if self._chunked or upstream is None or upstream.has_length or self._head_request:
                self.connection.transport.close()
            else:
                reset(self.connection.transport)
            return
        answer = routes.proxy.preflight_for_upstream(self.scope) if self.scope["method"] == "OPTIONS" else None
        self._answer(answer or routes.proxy.error_answer(error.status, self.scope))

    def _answer(self, answer: Answer) -> None:
        """The gateway's own answer instead of Django's (nothing of Django's was sent)."""
        self._finish_counting()
        if self.connection.transport.is_closing():
            return  # the client is gone: no one to answer
        self.response_started = True
        self.keep_alive = self.keep_alive and not answer.closes
        cycle = AnsweredCycle(self.connection, self.scope, answer, self.keep_alive)
        cycle.on_response = self._answered
        cycle.start()

    def _answered(self) -> None:
        self.response_complete = True
        self.on_response()

    def _finish_counting(self) -> None:
        """The request no longer holds a place: in flight, or among the bodies being buffered."""
        if not self._done:
            self._done = True
            self._stop_buffering()
            if self._in_flight:
                self._in_flight = False
                self.routes.gateway.in_flight -= 1
