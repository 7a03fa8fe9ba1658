"""The gateway's HTTP/1.1 connection protocol, with the connection limits a reverse proxy
needs and uvicorn lacks, and the hand-off of each request to what answers it.

Requests are parsed by httptools (llhttp, as Node.js uses), the only parser. What answers a
request is chosen when its head is complete (gateway/exchange.py): the callback path for
forwarded requests and the gateway's own answers, with no ASGI scope, task or messages; the
ASGI application (through uvicorn's request-response cycle) for the admin API, the bypass
form and streamed uploads; uvicorn's WebSocket protocol for a handshake.

Besides the keep-alive timeout, every other state a connection can be in is bounded:

- a request head (request line and headers) must arrive within
  ``GATEWAY_CLIENT_HEADER_TIMEOUT`` seconds of its first byte (or of the
  connection opening), and may not be larger than ``GATEWAY_MAX_HEADER_BYTES``
  (400, connection closed, after the answers owed to pipelined requests before it).
  The limit applies to each head, whatever else a read holds; the bytes are counted
  as they arrive, so an endless request line or header value holds no more memory
  than the limit and one read;
- a request body the answer did not wait for (a 503 to an upload, a 401 from the
  admin API) must be finished within ``GATEWAY_CLIENT_BODY_TIMEOUT`` seconds, as
  nginx's ``lingering_time``; bytes after an answer that start no new request count
  the same (the keep-alive timer stops on any byte);
- an answer the client does not read: once the gateway's unsent bytes have not
  moved for ``GATEWAY_CLIENT_SEND_TIMEOUT`` seconds the connection is dropped, as
  nginx's ``send_timeout`` (``close()`` alone would wait for ever to flush them);
- while a request is handled, its own timeouts apply (a body's pieces, the
  upstream's answer); as a backstop for a route that reads a body without one, a
  request whose body has not moved for twice ``GATEWAY_CLIENT_BODY_TIMEOUT`` while
  the server was reading is closed.

One sweeper task per event loop looks at every connection a few times a second:
no timer per request, and no work per request beyond a few attribute writes and a
byte count while a head is arriving.

The protocol also refuses what llhttp would take but RFC 9112 does not: a missing or
repeated Host, and versions other than HTTP/1.0 and 1.1. A request body that ends after
its answer was sent leaves the connection idle again: the keep-alive timer, which those
bytes stopped, is armed again.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from gateway.settings import Settings, load_settings

if TYPE_CHECKING:
    from gateway.exchange import CallbackRoutes

logger = logging.getLogger("gateway.server")

INVALID_REQUEST = "Invalid HTTP request received."


@functools.cache
def server_settings() -> Settings:
    # The server exported the validated settings to the environment before starting.
    return load_settings()


class HeadersTooLarge(httptools.HttpParserError):
    """A parser error, so it is answered as any malformed request is."""


class _ConnectionLimits:
    """The per-connection state the sweeper reads, and the graceful stop's drain."""

    # Slots, here and in the protocol: a connection has more attributes than CPython keeps
    # inline, and a dict-backed attribute costs a dict insert at every store on the hot path.
    __slots__ = (
        "_header_timeout", "_linger_timeout", "_send_timeout", "_phase_key", "_phase_since",
        "_unsent_bytes", "_unsent_since", "_write_resumed", "_bytes_received", "_drain_deadline",
    )

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def _init_limits(self, settings: Settings) -> None:
        self._header_timeout = settings.client_header_timeout
        self._linger_timeout = settings.client_body_timeout
        self._send_timeout = settings.client_send_timeout
        # The phase the sweeper last saw this connection in, and since when.
        self._phase_key: object = None
        self._phase_since = 0.0
        # Unsent bytes: how many at the last sweep, since when they have not moved.
        self._unsent_bytes = 0
        self._unsent_since: float | None = None
        self._write_resumed = False
        # Bytes read from the client: the sweeper tells a stalled request body by them.
        self._bytes_received = 0

    def shutdown(self) -> None:
        """uvicorn's graceful stop closes every connection without a request in progress, a
        fresh one too; but a client that just connected has its request on the way (or already
        unread in the socket, and closing over unread bytes resets the connection). Such a
        connection gets ``DRAIN_GRACE`` seconds for its request to begin, is answered, then closed.
        """
        if self.cycle is not None:
            self._close_if_idle()
            return
        self._drain_deadline = self.loop.time() + DRAIN_GRACE
        self._drain_step()

    def _drain_step(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None:
            if self.loop.time() > self._drain_deadline and not self._request_begun():
                self.transport.close()
                return
        elif cycle.response_complete:
            self._close_if_idle()
            return
        else:
            cycle.keep_alive = False  # the connection closes after this answer
            return
        self.loop.call_later(0.02, self._drain_step)

    def _request_begun(self) -> bool:
        raise NotImplementedError

    def _close_if_idle(self) -> None:
        raise NotImplementedError

    def _phase(self) -> tuple[object, float | None, float, str] | None:
        """What the connection is waiting for, when no one else times it: a key that changes
        with the phase, when it began (None: when first seen), its bound, and what it means."""
        raise NotImplementedError

    def _sweep(self, now: float) -> None:
        transport = self.transport
        if transport is None:
            return
        unsent = transport.get_write_buffer_size()
        if unsent == 0:
            self._unsent_since = None
        else:
            if self._unsent_since is None or unsent < self._unsent_bytes or self._write_resumed:
                self._unsent_since = now
                self._write_resumed = False
            self._unsent_bytes = unsent
            if now - self._unsent_since > self._send_timeout:
                _log_cut("a client that left %d bytes of its answer unread for %g s", unsent, self._send_timeout)
                transport.abort()  # close() would wait for the client to read them
                return
        if transport.is_closing():
            return
        phase = self._phase()
        if phase is None:
            self._phase_key = None
            return
        key, started, bound, what = phase
        if started is None:
            if key != self._phase_key:
                self._phase_key, self._phase_since = key, now
            started = self._phase_since
        if now - started > bound:
            if what is not _IDLE:
                _log_cut("a connection whose %s within %g s", what, bound)
            transport.close()


# Seconds a connection accepted just before a graceful stop gets for its request to begin.
DRAIN_GRACE = 1.0

_HEAD_PENDING = "request head did not arrive"
_IDLE = "next request did not begin"  # the keep-alive time: closed without a log line, as uvicorn does
_BODY_STALLED = "request body stopped arriving"
_BODY_OWED = "request body, not waited for by the answer, did not end"


def _log_cut(message: str, *args: object) -> None:
    logger.info("closing " + message, *args, extra={"event": "client_connection_limit"})


class _HeldFlow(FlowControl):
    """uvicorn's flow control, except that reading stays paused while bytes already read wait
    unparsed behind PIPELINE_DEPTH requests: more would only join them. The ASGI cycle resumes
    reading whenever its application asks for the body, however whole the body is; without
    this, each such request could add a read to the unparsed bytes, and a client sending
    small POSTs would grow them without end."""

    def __init__(self, transport: asyncio.Transport, protocol: GatewayHttpProtocol) -> None:
        super().__init__(transport)
        self._protocol = protocol

    def resume_reading(self) -> None:
        if not self._protocol._unfed:
            super().resume_reading()


class AsgiCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, for the requests the ASGI application answers (the
    admin API, the bypass form, streamed uploads), with the calls every cycle takes."""

    app: Any
    spawn: Any  # the protocol's protocol_task: the task is held by the server's set of tasks

    def start(self) -> None:
        self.spawn(self.run_asgi(self.app))

    def feed_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        self.message_event.set()

    def feed_end(self) -> None:
        self.more_body = False
        self.message_event.set()

    def lost(self) -> None:
        if not self.response_complete:
            self.disconnected = True
        self.message_event.set()

    def resume_writing(self) -> None:
        pass  # the cycle's send waits on the flow control, which the protocol resumes


class GatewayHttpProtocol(_ConnectionLimits, asyncio.Protocol):
    """The gateway's HTTP/1.1 connection: httptools (llhttp) parsing, the connection limits, and
    each request handed to what answers it: the callback path (gateway/exchange.py) for
    forwarded requests and the gateway's own answers, the ASGI application for the rest, or
    uvicorn's WebSocket protocol for a handshake.

    Built by uvicorn (``--http``) as its own protocols are, from its Config and ServerState,
    so uvicorn still runs the sockets, workers, signals, lifespan and graceful stop. Under an
    ASGI application that is not the gateway (tests drive the limits so) every request goes
    to the application.
    """

    __slots__ = (
        "config", "app", "routes", "loop", "logger", "access_logger", "access_log", "parser",
        "ws_protocol_class", "root_path", "app_state", "_asgi", "keep_alive_wait", "_waits",
        "timeout_keep_alive", "server_state", "connections", "tasks", "transport", "flow", "server",
        "client", "scheme", "pipeline", "url", "headers", "scope", "expect_100_continue", "cycle",
        "answering", "_continue_when_drained", "_max_header_bytes", "_head_size",
        "_head_bytes_received", "_head_started", "_cycle_at_head_start", "_chunk_line_cycle",
        "_host_fields", "_upgrade_asked", "_unfed", "_starting", "_turn_owed", "__weakref__",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.routes: CallbackRoutes | None = getattr(self.app, "callback_routes", None)
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.access_logger = logging.getLogger("uvicorn.access")
        self.access_log = self.access_logger.hasHandlers()
        self.parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even when a later one says "Connection: close".
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.ws_protocol_class = config.ws_protocol_class
        self.root_path = config.root_path
        self.app_state = app_state
        self._asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        # Set while the connection waits, idle, for its next request (the keep-alive time, timed by
        # the sweeper: a timer armed after every answer and cancelled by the next request would
        # cost more than the rest of a 503). A fresh value each time, so each wait is timed anew.
        self.keep_alive_wait: int | None = None
        self._waits = 0
        self.timeout_keep_alive = config.timeout_keep_alive
        self.server_state = server_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        # Requests whose head is complete, waiting for the answers before theirs (pipelining).
        self.pipeline: collections.deque[Any] = collections.deque()
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = None  # type: ignore[assignment]
        self.scope: dict[str, Any] = None  # type: ignore[assignment]
        self.expect_100_continue = False
        self.cycle: Any = None  # the newest request
        # The request being answered: the newest, or the oldest of those pipelined behind it.
        self.answering: Any = None
        # An answer was complete while the client was not reading: the next request waits for it.
        self._continue_when_drained = False
        # The rest of a read not parsed yet: PIPELINE_DEPTH requests already wait their turn.
        self._unfed = b""
        # Answers' turns are taken in a loop (``_next_request``), not by recursion: an answer
        # completed while the next one starts owes the loop another turn.
        self._starting = False
        self._turn_owed = False
        settings = server_settings()
        self._init_limits(settings)
        self._max_header_bytes = settings.max_header_bytes
        self._head_size = 0  # the request line and the complete headers, as the parser reports them
        self._head_bytes_received = 0  # raw bytes of reads that found a head arriving
        self._head_started: float | None = None
        self._cycle_at_head_start: Any = None
        # The request whose chunk line (or, after the last chunk, trailer section) is arriving:
        # llhttp keeps an unfinished trailer value whole, so those bytes count as a head's do.
        self._chunk_line_cycle: Any = None
        self._host_fields = 0  # Host fields in the request head (RFC 9112 3.2: exactly one in HTTP/1.1)
        self._upgrade_asked = False  # the latest head asked for an upgrade (or was CONNECT)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connections.add(self)  # type: ignore[arg-type]
        self.transport = transport
        self.flow = _HeldFlow(transport, self)
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._head_started = self.loop.time()  # silence counts too: a client that never speaks
        self._cycle_at_head_start = None
        _Sweeper.ensure_running(self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        # Every request on the connection hears of it: the one being answered (which may hold an
        # upstream connection and a place in flight), those pipelined behind it, and the newest.
        answering = self.answering
        if answering is not None:
            answering.lost()
        for cycle in self.pipeline:
            cycle.lost()
        self.pipeline.clear()
        self._unfed = b""
        if self.cycle is not None and self.cycle is not answering:
            self.cycle.lost()
        if self.flow is not None:
            self.flow.resume_writing()
        if exc is None:
            self.transport.close()
        self.keep_alive_wait = None
        self.parser = None  # type: ignore[assignment]

    def eof_received(self) -> None:
        pass  # half-closed: the answers owed are still sent

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        # The client read enough for the transport's buffer to drain below its low mark.
        self._write_resumed = True
        self.flow.resume_writing()
        answering = self.answering
        if answering is not None and not answering.response_complete:
            answering.resume_writing()
        if self._continue_when_drained:
            self._continue_when_drained = False
            self._next_request()

    def data_received(self, data: bytes) -> None:
        # A head is arriving while the newest request is the one it started after. The
        # parser keeps an unfinished header value (or URL) in memory whole, so its bytes
        # are counted here, before the parser sees them. The read in which a head begins
        # is not counted (the head's start in it is not known); the parser's own reports
        # (on_url, on_header) measure every complete head exactly. Bytes that wait unparsed
        # behind PIPELINE_DEPTH requests (at most a read's worth) are not a head's yet.
        cycle = self.cycle
        if (
            (cycle is self._cycle_at_head_start or cycle is self._chunk_line_cycle)
            and not self._unfed
            and len(self.pipeline) < PIPELINE_DEPTH
        ):
            received = self._head_bytes_received + len(data)
            if received > self._max_header_bytes:
                self._receive_past_head_limit(data)
                return
            self._head_bytes_received = received
        self._bytes_received += len(data)
        if self._unfed or len(data) > _PIECE or len(self.pipeline) >= PIPELINE_DEPTH:
            self._feed(data)
            return
        # Nearly every read: a request or two, parsed at once (what _feed does, without its checks).
        self.keep_alive_wait = None
        self._parse(data)

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` after whatever of an earlier read is still unparsed; a read holding more
        than a few pipelined requests is parsed a piece at a time, no further than
        PIPELINE_DEPTH requests ahead of their turn (the rest waits here, unparsed)."""
        # Any byte ends the idle wait (a body the answer did not wait for is then timed as such).
        self.keep_alive_wait = None
        if self._unfed:
            data = self._unfed + data
            self._unfed = b""
        if len(data) <= _PIECE and len(self.pipeline) < PIPELINE_DEPTH:
            self._parse(data)
            return
        view = memoryview(data)
        for offset in range(0, len(data), _PIECE):
            if len(self.pipeline) >= PIPELINE_DEPTH:
                self._unfed = data[offset:]
                self.flow.pause_reading()
                return
            if not self._parse(view[offset : offset + _PIECE]) or self.transport.is_closing():
                return

    def _parse(self, data: bytes | memoryview) -> bool:
        """Feed the parser; False when the connection left it (refused, or upgraded)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade()
            return False
        except httptools.HttpParserError:
            self._refuse_malformed()
            return False
        return True

    def _upgrade(self) -> None:
        if self._should_upgrade():
            self.handle_websocket_upgrade()
        else:
            self._unsupported_upgrade_warning()

    def _refuse_malformed(self) -> None:
        self.logger.warning(INVALID_REQUEST)
        self.send_400_response(INVALID_REQUEST)

    def _receive_past_head_limit(self, data: bytes) -> None:
        """A read that would take the arriving head past the limit: fed in pieces of at most the
        room left, so the limit applies to each head whatever else the read holds (pipelined
        requests, a body). A head that begins in a piece starts its count again at the next
        one (``on_message_begin``); a head still arriving with no room left is refused."""
        while data:
            if self.cycle is not self._cycle_at_head_start and self.cycle is not self._chunk_line_cycle:
                # The head (or trailer) ended within the limit; the rest is a body or the next request.
                self.data_received(data)
                return
            room = self._max_header_bytes - self._head_bytes_received
            if room <= 0:
                logger.info(
                    "refusing a request head larger than %d bytes", self._max_header_bytes, extra={"event": "bad_request"}
                )
                self.send_400_response(INVALID_REQUEST)
                return
            piece, data = data[:room], data[room:]
            self._head_bytes_received += len(piece)  # reset by on_message_begin if a head begins in it
            self._bytes_received += len(piece)
            self._feed(piece)
            if self.transport.is_closing():
                return
            if self._unfed:
                # Enough requests wait their turn: the rest waits, unparsed, with what _feed
                # kept back (the parser's own reports bound each head as it is parsed).
                self._unfed += data
                self._bytes_received += len(data)
                return

    # -- the answers' turns, keep-alive and the stop

    def on_response_complete(self) -> None:
        """A request's answer is sent: the next pipelined request's turn, or the keep-alive wait."""
        self.server_state.total_requests += 1
        if self._starting:
            # Answered within the start of its turn (the gateway's own answers are written
            # whole): the loop that started it takes the next turn.
            self._turn_owed = True
            return
        self._next_request()

    def _next_request(self) -> None:
        self._starting = True
        try:
            while True:
                self._turn_owed = False
                if self.transport.is_closing():
                    return
                if self.flow.write_paused:
                    # The client is not reading its answers: nothing more is read or answered
                    # until it does (``resume_writing``), so a connection holds the answers in its
                    # buffer and at most PIPELINE_DEPTH parsed requests. GATEWAY_CLIENT_SEND_TIMEOUT
                    # bounds the wait.
                    self._continue_when_drained = True
                    if not self.flow.read_paused:
                        self.flow.pause_reading()
                    return
                if self._unfed and len(self.pipeline) < PIPELINE_DEPTH:
                    answering = self.answering
                    self._feed(b"")
                    if self._turn_owed:
                        continue
                    if self.answering is not answering or self.transport.is_closing():
                        return  # a request parsed just now is being answered
                if self.pipeline:
                    self.keep_alive_wait = None
                    cycle = self.answering = self.pipeline.pop()
                    cycle.start()
                    if self._turn_owed:
                        continue
                    return
                # Nothing owed: read again, and wait for the next request (_wait_idle, inlined).
                if self.flow.read_paused:
                    self.flow.resume_reading()
                self._waits += 1
                self.keep_alive_wait = self._waits
                return
        finally:
            self._starting = False

    def _wait_idle(self) -> None:
        self._waits += 1
        self.keep_alive_wait = self._waits

    def _close_if_idle(self) -> None:
        # uvicorn's graceful stop, for a connection with no request in progress.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    def asgi_cycle(self, scope: dict[str, Any], keep_alive: bool, expect_100: bool, app: Any) -> AsgiCycle:
        """A cycle that runs ``app`` (ASGI) for this request."""
        scope["type"] = "http"
        scope["asgi"] = self._asgi
        scope["root_path"] = self.root_path
        scope["state"] = self.app_state.copy()
        cycle = AsgiCycle(
            scope=scope,  # type: ignore[arg-type]
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=expect_100,
            keep_alive=keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.app = app
        cycle.spawn = self.protocol_task
        return cycle

    def protocol_task(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    # -- WebSocket handshakes and other upgrades

    def _should_upgrade(self) -> bool:
        if self.ws_protocol_class is None:
            return False
        connection: list[bytes] = []
        upgrade = None
        for name, value in self.headers:
            if name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
            elif name == b"upgrade":
                upgrade = value.lower()
        return b"upgrade" in connection and upgrade == b"websocket"

    def handle_websocket_upgrade(self) -> None:
        """The connection becomes uvicorn's WebSocket protocol's (the gateway's subclass of it),
        which reads the handshake again and runs the application's WebSocket scope."""
        self.connections.discard(self)
        output = [self.scope["method"].encode("ascii"), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        assert self.ws_protocol_class is not None
        protocol = self.ws_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(output))
        self.transport.set_protocol(protocol)

    def _unsupported_upgrade_warning(self) -> None:
        # llhttp parses nothing more after a request that asks for an upgrade (or CONNECT):
        # later bytes would be ignored until the keep-alive timer. Answer it, then close.
        self.logger.warning("Unsupported upgrade request.")
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    # -- refusals

    def send_400_response(self, msg: str) -> None:
        # A malformed request behind pipelined ones still being answered: their answers go
        # first (closing now would cut the one being written, mid-answer), then the 400. The
        # latest request's answer is the last of them; reading stops until it is sent.
        cycle = self.cycle
        if cycle is not None and cycle.more_body and cycle.response_started and not cycle.response_complete:
            # The request's own body went bad while its answer is still being sent: a 400 now
            # would land inside that answer's body. The connection is cut instead.
            self.transport.abort()
            return
        if cycle is None or cycle.more_body or cycle.response_complete or self.transport.is_closing():
            # No request before this one is owed an answer (or its own body is the malformed part).
            self._write_400(msg)
            return
        self.flow.pause_reading()
        answered = cycle.on_response

        def refuse_after_answer() -> None:
            answered()
            if not self.transport.is_closing():
                self._write_400(msg)

        cycle.on_response = refuse_after_answer

    def _write_400(self, msg: str) -> None:
        body = msg.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

    # -- the parser's callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._head_size = 0
        self._head_bytes_received = 0
        self._host_fields = 0
        self._head_started = self.loop.time()
        self._cycle_at_head_start = self.cycle  # a new cycle appears once the head is complete
        # An idle wait begun when the body before ended (on_message_complete) stops here: from
        # now on the head's timeout applies, then the cycle's.
        self.keep_alive_wait = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_size += len(url)
        if self._head_size > self._max_header_bytes:
            raise HeadersTooLarge(f"request target larger than {self._max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_header_bytes:
            # Raised inside the parser's callback: answered with a 400, the connection closed.
            raise HeadersTooLarge(f"request head larger than {self._max_header_bytes} bytes")
        name = name.lower()
        if name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_100_continue = True
        elif name == b"host":
            self._host_fields += 1
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        if version not in HTTP_1_VERSIONS:
            # llhttp takes HTTP/0.9 (no version at all), 2.0 and the RTSP/ICE protocols too.
            raise httptools.HttpParserError(f"unsupported protocol version {version}")
        if self._host_fields != 1 and (self._host_fields or version == "1.1"):
            # RFC 9112 3.2: a request without Host in HTTP/1.1, or with more than one, is a 400;
            # llhttp takes both, and the gateway's own answers would otherwise take what the
            # proxy refuses.
            raise httptools.HttpParserError("no Host field, or more than one")
        method = parser.get_method().decode("ascii")
        headers = self.headers
        upgrade = self._upgrade_asked = parser.should_upgrade()
        if upgrade:
            if self._should_upgrade():
                # The WebSocket protocol reads the head again (handle_websocket_upgrade).
                self.scope = {"method": method}
                return
        else:
            # Trailers are never header fields (RFC 9110 6.5.1), but llhttp reports a chunked
            # body's trailer fields through on_header too: from here on, on_header fills a fresh
            # list that nothing reads (still counted against the head-size limit).
            self.headers = []
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope = {
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": method,
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": headers,
        }
        keep_alive = version != "1.0" and parser.should_keep_alive()
        routes = self.routes
        if routes is None:
            cycle = self.asgi_cycle(scope, keep_alive, self.expect_100_continue, self.app)
        else:
            cycle = routes.cycle(self, scope, keep_alive, self.expect_100_continue)
        existing = self.cycle
        self.cycle = cycle
        if (existing is None or existing.response_complete) and not self._continue_when_drained:
            self.answering = cycle
            cycle.start()
        else:
            # Pipelined: answered in order, after the answers before it (and once the client
            # reads them).
            self.flow.pause_reading()
            self.pipeline.appendleft(cycle)

    def on_body(self, body: bytes) -> None:
        self._chunk_line_cycle = None  # chunk data, not a line: bounded by the body limits
        cycle = self.cycle
        if not cycle.response_complete:
            cycle.feed_body(body)

    def on_chunk_header(self) -> None:
        # A chunk's size line has been read; for the last chunk the trailer section follows.
        self._chunk_line_cycle = self.cycle
        self._head_bytes_received = 0

    def on_chunk_complete(self) -> None:
        self._chunk_line_cycle = None

    def on_message_complete(self) -> None:
        upgrade = self._upgrade_asked
        if upgrade and self._should_upgrade():
            return
        cycle = self.cycle
        if cycle.response_complete:
            if self.keep_alive_wait is None and not upgrade and not self.transport.is_closing():
                # The rest of a body the answer did not wait for has come: the connection is idle
                # again, and the keep-alive wait, ended by those bytes, begins again. Without it
                # the connection would be cut as owing a body. (A handshake, or CONNECT, leaves
                # this protocol: no wait for it.)
                self._wait_idle()
            return
        if cycle.more_body:  # else nothing was awaited (a request without a body forwarded)
            cycle.feed_end()

    def _request_begun(self) -> bool:
        return self.headers is not None  # set when a message begins

    def _phase(self) -> tuple[object, float | None, float, str] | None:
        if self._continue_when_drained:
            return None  # waiting for the client to read its answers: the send timeout applies
        if self.keep_alive_wait is not None:
            return (_IDLE, self.keep_alive_wait), None, self.timeout_keep_alive, _IDLE
        cycle = self.cycle
        if cycle is self._cycle_at_head_start:
            return _HEAD_PENDING, self._head_started, self._header_timeout, _HEAD_PENDING
        if cycle.response_complete:
            # Answered, and bytes came since that began no new request (the keep-alive wait
            # ends on any byte): the rest of a body the answer did not wait for, or what the
            # parser ignores after an upgrade request.
            return cycle, None, self._linger_timeout, _BODY_OWED
        if cycle.more_body and not cycle.response_complete and not self.flow.read_paused:
            # The cycle waits for a body (or will): the proxy answers a stalled one with a 408
            # after GATEWAY_CLIENT_BODY_TIMEOUT; this catches a route without such a timer.
            return (cycle, self._bytes_received), None, 2 * self._linger_timeout, _BODY_STALLED
        return None


# Requests parsed ahead of their turn at most (give or take one piece's worth): a client that
# pipelines thousands in one read holds these and the unparsed bytes, not an exchange for each.
PIPELINE_DEPTH = 32
# How much of a read is parsed at a time when it holds more than one request's worth.
_PIECE = 4096

# The versions answered; anything else gets a 400 (RFC 9112 2.3: HTTP/1.x only here).
HTTP_1_VERSIONS = frozenset({"1.1", "1.0"})


class _Sweeper:
    """One task per event loop that closes the connections past one of their limits."""

    _running: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    def ensure_running(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        task = cls._running.get(loop)
        if task is None or task.done():
            # Held in the class: the loop keeps only a weak reference to tasks.
            cls._running[loop] = loop.create_task(cls._sweep(connections), name="gateway-connection-sweeper")

    @staticmethod
    async def _sweep(connections: set[Any]) -> None:
        settings = server_settings()
        shortest = min(settings.client_header_timeout, settings.client_body_timeout, settings.client_send_timeout)
        interval = min(1.0, shortest / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for protocol in list(connections):
                if isinstance(protocol, _ConnectionLimits):
                    protocol._sweep(now)


# The protocol class uvicorn is given (--http).
PROTOCOL = "gateway.server.http_protocol:GatewayHttpProtocol"
