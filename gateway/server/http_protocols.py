"""uvicorn's HTTP protocols with the connection limits a reverse proxy needs and uvicorn lacks.

uvicorn times out a keep-alive connection that stays silent after an answer, and
nothing else at the connection level. These subclasses bound every other state a
connection can be in, for either parser:

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
  the same (uvicorn stops its keep-alive timer on any byte and never restarts it);
- an answer the client does not read: once the gateway's unsent bytes have not
  moved for ``GATEWAY_CLIENT_SEND_TIMEOUT`` seconds the connection is dropped, as
  nginx's ``send_timeout`` (``close()`` alone would wait for ever to flush them);
- while the application handles a request, its own timeouts apply (a body's
  pieces, the upstream's answer); as a backstop for a route that reads a body
  without one, a request whose body has not moved for twice
  ``GATEWAY_CLIENT_BODY_TIMEOUT`` while the server was reading is closed.

One sweeper task per event loop looks at every connection a few times a second:
no timer per request, and on the httptools path no work per request beyond a few
attribute writes and a byte count while a head is arriving.

The h11 protocol also reads request lines, targets, methods, Content-Length (and
its pairing with Transfer-Encoding) and chunk lines as the httptools one (llhttp)
does, the httptools one refuses a missing or repeated Host as h11 does, and both
take HTTP/1.0 and 1.1 only, so the same bytes get the same answer whichever
parser runs.

A request body that ends after its answer was sent leaves the connection idle
again: uvicorn's keep-alive timer, which those bytes stopped, is armed again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import Any, NoReturn, cast

import h11
import httptools
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings, load_settings

logger = logging.getLogger("gateway.server")

INVALID_REQUEST = "Invalid HTTP request received."


@functools.cache
def server_settings() -> Settings:
    # The server exported the validated settings to the environment before starting.
    return load_settings()


class HeadersTooLarge(httptools.HttpParserError):
    """A parser error, so uvicorn handles it as it handles any malformed request."""


class _ConnectionLimits:
    """The per-connection state the sweeper reads, shared by both protocols (a mixin placed
    before the uvicorn protocol, whose methods it extends)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive_task: asyncio.TimerHandle | None

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

    def resume_writing(self) -> None:
        # The client read enough for the transport's buffer to drain below its low mark.
        self._write_resumed = True
        super().resume_writing()  # type: ignore[misc]

    def shutdown(self) -> None:
        """uvicorn's graceful stop closes every connection without a request in progress, a
        fresh one too; but a client that just connected has its request on the way (or already
        unread in the socket, and closing over unread bytes resets the connection). Such a
        connection gets ``DRAIN_GRACE`` seconds for its request to begin, is answered, then closed.
        """
        if self.cycle is not None:
            super().shutdown()  # type: ignore[misc]
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
            super().shutdown()  # type: ignore[misc]
            return
        else:
            cycle.keep_alive = False  # uvicorn closes the connection after this answer
            return
        self.loop.call_later(0.02, self._drain_step)

    def _request_begun(self) -> bool:
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
            _log_cut("a connection whose %s within %g s", what, bound)
            transport.close()


# Seconds a connection accepted just before a graceful stop gets for its request to begin.
DRAIN_GRACE = 1.0

_HEAD_PENDING = "request head did not arrive"
_BODY_STALLED = "request body stopped arriving"
_BODY_OWED = "request body, not waited for by the answer, did not end"


def _log_cut(message: str, *args: object) -> None:
    logger.info("closing " + message, *args, extra={"event": "client_connection_limit"})


class GatewayHttpToolsProtocol(_ConnectionLimits, HttpToolsProtocol):
    """httptools with a head size limit and connection timeouts that cost a request almost nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_started = self.loop.time()  # silence counts too: a client that never speaks
        self._cycle_at_head_start = None
        _Sweeper.ensure_running(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        # A head is arriving while the newest request is the one it started after. The
        # parser keeps an unfinished header value (or URL) in memory whole, so its bytes
        # are counted here, before the parser sees them. The read in which a head begins
        # is not counted (the head's start in it is not known); the parser's own reports
        # (on_url, on_header) measure every complete head exactly.
        cycle = self.cycle
        if cycle is self._cycle_at_head_start or cycle is self._chunk_line_cycle:
            received = self._head_bytes_received + len(data)
            if received > self._max_header_bytes:
                self._receive_past_head_limit(data)
                return
            self._head_bytes_received = received
        self._bytes_received += len(data)
        _uvicorn_data_received(self, data)  # not super(): this runs for every read

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
            _uvicorn_data_received(self, piece)
            if self.transport.is_closing():
                return

    def on_chunk_header(self) -> None:
        # A chunk's size line has been read; for the last chunk the trailer section follows.
        self._chunk_line_cycle = self.cycle
        self._head_bytes_received = 0

    def on_chunk_complete(self) -> None:
        self._chunk_line_cycle = None

    def on_body(self, body: bytes) -> None:
        self._chunk_line_cycle = None  # chunk data, not a line: bounded by the body limits
        super().on_body(body)

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
            super().send_400_response(msg)
            return
        self.flow.pause_reading()
        answered = cycle.on_response

        def refuse_after_answer() -> None:
            answered()
            if not self.transport.is_closing():
                super(GatewayHttpToolsProtocol, self).send_400_response(msg)

        cycle.on_response = refuse_after_answer

    def on_message_begin(self) -> None:
        self._head_size = 0
        self._head_bytes_received = 0
        self._host_fields = 0
        self._head_started = self.loop.time()
        self._cycle_at_head_start = self.cycle  # a new cycle appears once the head is complete
        # A keep-alive timer armed when the body before ended (on_message_complete) stops here:
        # from now on the head's timeout applies, then the application's. (Tested inline: a
        # method call on every request costs more than the rare timer.)
        if self.timeout_keep_alive_task is not None:
            self._unset_keepalive_if_required()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        # uvicorn's own on_url (0.30 to 0.54), inlined, with the request line counted in the head.
        self.url += url
        self._head_size += len(url)
        if self._head_size > self._max_header_bytes:
            raise HeadersTooLarge(f"request target larger than {self._max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_header_bytes:
            # Raised inside the parser's callback: uvicorn answers 400 and closes the connection.
            raise HeadersTooLarge(f"request head larger than {self._max_header_bytes} bytes")
        # uvicorn's own on_header (0.30 to 0.54), inlined: this runs for every header of every request.
        name = name.lower()
        if name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_100_continue = True
        elif name == b"host":
            self._host_fields += 1
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.parser.get_http_version() not in HTTP_1_VERSIONS:
            # llhttp takes HTTP/0.9 (no version at all), 2.0 and the RTSP/ICE protocols too; uvicorn
            # would answer them as HTTP/1.1, and h11 refuses them.
            raise httptools.HttpParserError(f"unsupported protocol version {self.parser.get_http_version()}")
        if self._host_fields != 1 and (self._host_fields or self.parser.get_http_version() == "1.1"):
            # RFC 9112 3.2: a request without Host in HTTP/1.1, or with more than one, is a 400. h11
            # refuses both; llhttp does not, and the gateway's own answers (the 503, the admin
            # routes) would otherwise take what the proxy refuses.
            raise httptools.HttpParserError("no Host field, or more than one")
        super().on_headers_complete()
        # Trailers are never header fields (RFC 9110 6.5.1), but llhttp reports a chunked body's
        # trailer fields through on_header too, and this list is already the request's
        # scope["headers"]: from here on, on_header fills a fresh list that nothing reads (still
        # counted against the head-size limit). An upgrade request keeps its list: uvicorn
        # reads it again once the parser stops.
        if not self.parser.should_upgrade():
            self.headers = []

    def on_message_complete(self) -> None:
        # uvicorn's own on_message_complete (0.30 to 0.54), inlined as on_header is: it runs for
        # every request, and a call through super() costs more than its body.
        upgrade = self.parser.should_upgrade()
        if upgrade and self._should_upgrade():
            return
        cycle = self.cycle
        if cycle.response_complete:
            if self.timeout_keep_alive_task is None and not upgrade and not self.transport.is_closing():
                # The rest of a body the answer did not wait for has come: the connection is idle
                # again, and uvicorn, which stopped its keep-alive timer on those bytes, would not
                # arm it again. Without it the connection would be cut as owing a body. (A
                # handshake, or CONNECT, leaves this protocol: no timer for it.)
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
            return
        cycle.more_body = False
        cycle.message_event.set()

    def _request_begun(self) -> bool:
        return self.headers is not None  # uvicorn sets it when a message begins

    def _unsupported_upgrade_warning(self) -> None:
        # llhttp parses nothing more after a request that asks for an upgrade (or CONNECT):
        # later bytes would be ignored until the keep-alive timer. Answer it, then close.
        super()._unsupported_upgrade_warning()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    def _phase(self) -> tuple[object, float | None, float, str] | None:
        cycle = self.cycle
        if cycle is self._cycle_at_head_start:
            return _HEAD_PENDING, self._head_started, self._header_timeout, _HEAD_PENDING
        if cycle.response_complete and self.timeout_keep_alive_task is None:
            # Answered, and bytes came since that began no new request (uvicorn's keep-alive
            # timer stops on any byte): the rest of a body the answer did not wait for, or
            # what the parser ignores after an upgrade request.
            return cycle, None, self._linger_timeout, _BODY_OWED
        if cycle.more_body and not cycle.response_complete and not self.flow.read_paused:
            # The application waits for a body (or will): the proxy answers a stalled one with
            # a 408 after GATEWAY_CLIENT_BODY_TIMEOUT; this catches a route without such a timer.
            return (cycle, self._bytes_received), None, 2 * self._linger_timeout, _BODY_STALLED
        return None


_uvicorn_data_received = HttpToolsProtocol.data_received

# The versions both parsers answer; anything else gets a 400 (RFC 9112 2.3: HTTP/1.x only here).
HTTP_1_VERSIONS = frozenset({"1.1", "1.0"})
# The same, as h11 reports them.
_HTTP_1_VERSION_BYTES = frozenset(version.encode("ascii") for version in HTTP_1_VERSIONS)


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


class GatewayH11Protocol(_ConnectionLimits, H11Protocol):
    conn: h11.Connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = server_settings()
        self._init_limits(settings)
        self.conn = _LlhttpCompatibleConnection(settings.max_header_bytes)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _Sweeper.ensure_running(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        self._bytes_received += len(data)
        # uvicorn stops the keep-alive timer on any bytes; bytes that carry no request (the blank
        # lines before a request line that h11 skips) must not buy the connection more time.
        waiting = self.timeout_keep_alive_task
        idle_until = waiting.when() if waiting is not None else None
        super().data_received(data)
        conn = self.conn
        if (
            self.timeout_keep_alive_task is None
            and conn.their_state is h11.IDLE
            and conn.our_state is h11.IDLE
            and self.cycle is not None
            and not conn._receive_buffer
            and not self.transport.is_closing()
        ):
            # As for httptools: the end of a body the answer did not wait for leaves the connection
            # idle, and uvicorn's keep-alive timer, stopped by those bytes, is armed again; after
            # bytes that were only blank lines, with the deadline it had.
            handler = self.timeout_keep_alive_handler
            self.timeout_keep_alive_task = (
                self.loop.call_later(self.timeout_keep_alive, handler) if idle_until is None else self.loop.call_at(idle_until, handler)
            )

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own sends the 400 through h11, which raises once the answer is out (a body
        # gone bad after an answer that did not wait for it): as under httptools, the 400 is
        # then written raw, or, with the answer still being sent, the connection cut.
        state = self.conn.our_state
        if state is h11.SEND_BODY:
            self.transport.abort()
        elif state is not h11.IDLE and state is not h11.SEND_RESPONSE:
            HttpToolsProtocol.send_400_response(cast(HttpToolsProtocol, self), msg)  # its bytes, written raw
        else:
            super().send_400_response(msg)

    def _request_begun(self) -> bool:
        return len(self.conn._receive_buffer) > 0 or self.conn.their_state is not h11.IDLE

    def _unsupported_upgrade_warning(self) -> None:
        # As llhttp (above): nothing after a request asking for an upgrade that is not taken
        # is read as a request; h11 would go on parsing. Answer it, then close.
        super()._unsupported_upgrade_warning()
        self.conn._cstate.process_keep_alive_disabled()

    def _phase(self) -> tuple[object, float | None, float, str] | None:
        if self.timeout_keep_alive_task is not None:
            return None  # silent since the last answer: uvicorn's keep-alive timer
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self.conn.their_state is h11.SEND_BODY and not self.flow.read_paused:
                # As for httptools: a backstop behind the application's own body timeout.
                return (cycle, self._bytes_received), None, 2 * self._linger_timeout, _BODY_STALLED
            return None  # the application's own timeouts
        if self.conn.their_state is h11.IDLE:
            return (_HEAD_PENDING, cycle), None, self._header_timeout, _HEAD_PENDING
        return cycle, None, self._linger_timeout, _BODY_OWED


# What llhttp accepts as a method in HTTP mode (httptools 0.6 to 0.9). PRI is left out:
# llhttp takes it only as HTTP/2's connection preface, which uvicorn refuses.
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH "
    b"UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
    b"UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)

# A LF without its CR, or a line that starts with white space (obsolete folding).
# A bare LF, a bare CR (a CR ending a read may be followed by its LF), a folded line, or a
# control byte in a field value: llhttp refuses each (RFC 9110 5.5), h11 would take them.
_MALFORMED_HEAD = re.compile(rb"(?<!\r)\n|\r(?=[^\n])|\r\n[ \t]|[\x00-\x08\x0e-\x1f\x7f]")
# A request line with runs of spaces between its three parts, which llhttp reads as single ones.
_SPACED_REQUEST_LINE = re.compile(rb"([^ \r\n]+) +([^ \r\n]+) +(HTTP/[0-9]\.[0-9])")
# Each Content-Length field line of a head, with its value.
_CONTENT_LENGTH_FIELD = re.compile(rb"\r\ncontent-length:([^\r\n]*)", re.IGNORECASE)
_TRANSFER_ENCODING_FIELD = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)
# A chunk-size line as llhttp takes it: a size that fits 64 bits, extensions made of tokens and
# quoted strings with nothing around the ";" and "=", then CRLF (RFC 9112 7.1, 7.1.1).
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CHUNK_LINE = re.compile(
    rb"0*[0-9A-Fa-f]{1,16}(?:;" + _TOKEN + rb'(?:=(?:' + _TOKEN + rb'|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~])*"))?)*\r\n'
)


class _LlhttpChunkedReader(ChunkedReader):
    """h11's chunked body reader, refusing the chunk lines llhttp refuses: h11 takes white space
    after the size, any bytes in an extension, 20 hex digits, and waits for ever for the CRLF of
    a line that ends in a bare LF."""

    def __call__(self, buf: ReceiveBuffer) -> Any:
        data: bytearray = buf._data
        if self._reading_trailer:
            end = data.find(b"\r\n\r\n")
            if not data.startswith(b"\r\n") and _MALFORMED_HEAD.search(data, 0, len(data) if end < 0 else end + 2):
                raise h11.RemoteProtocolError("bare LF or folded line in the trailer section", error_status_hint=400)
        elif self._bytes_in_chunk == 0:
            # The next line is a chunk-size line, after the CRLF that ends the chunk before.
            start = len(self._bytes_to_discard)
            end = data.find(b"\n", start)
            if end >= 0 and not _CHUNK_LINE.fullmatch(data, start, end + 1):
                raise h11.RemoteProtocolError("malformed chunk-size line", error_status_hint=400)
        return super().__call__(buf)


class _LlhttpCompatibleConnection(h11.Connection):
    """h11, refusing what llhttp refuses and reading request targets as uvicorn's httptools
    protocol does.

    h11 accepts bare LF line ends, folded lines, any method token and any target;
    llhttp does not, and uvicorn's httptools protocol keeps only the path and query of
    a target (an absolute-form ``http://host/path`` is routed by its path). Two parsers
    that read the same bytes differently are how requests get smuggled or routed past
    a check (RFC 9112 2.2, 3.2, 5.2).
    """

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self._max_head_bytes = max_head_bytes
        self._head_checked = 0  # bytes at the start of the buffer already found well-formed
        self._request_line_read = False  # the head's request line is complete and read as llhttp does

    def next_event(self) -> Any:
        if self.their_state is h11.IDLE:
            self._check_head()
        event = super().next_event()
        if type(event) is h11.Request:
            self._head_checked = 0
            self._request_line_read = False
            if type(self._reader) is ChunkedReader:
                self._reader = _LlhttpChunkedReader()
            return self._as_llhttp_reads_it(event)
        return event

    def _read_request_line_as_llhttp_does(self) -> None:
        """llhttp skips CR and LF before a request line (RFC 9112 2.2 lets a server ignore empty
        lines there) and reads runs of spaces between its parts as one (RFC 9112 3 lets it parse
        on white space); h11 refuses both. The gateway sends Django a request line of its own,
        so taking them here makes nothing ambiguous downstream."""
        receive_buffer = self._receive_buffer
        buffer: bytearray = receive_buffer._data
        skip = 0
        while skip < len(buffer) and buffer[skip] in b"\r\n":
            skip += 1
        if skip:
            receive_buffer._extract(skip)  # also resets h11's search positions
            self._head_checked = 0
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            return
        self._request_line_read = True
        if buffer.find(b"  ", 0, line_end) >= 0:
            spaced = _SPACED_REQUEST_LINE.fullmatch(buffer, 0, line_end)
            if spaced is not None:
                line = b" ".join(spaced.groups())  # before the buffer changes under the match
                receive_buffer._extract(line_end)
                buffer[0:0] = line
                self._head_checked = 0  # what was checked moved: look at the head again

    def _check_head(self) -> None:
        """Refuse a head in the buffer over the size limit (complete or not; h11's own limit
        counts only an incomplete one) or malformed."""
        if not self._request_line_read:
            self._read_request_line_as_llhttp_does()
        buffer: bytearray = self._receive_buffer._data
        # Only the bytes that came since the last look (and the three before them, for a
        # line end split between two reads): a head trickling in is not scanned over and over.
        resume = max(0, self._head_checked - 3)
        end = buffer.find(b"\r\n\r\n", resume)
        size = len(buffer) if end < 0 else end + 2
        if size > self._max_head_bytes:
            self._refuse(f"request head larger than {self._max_head_bytes} bytes")
        if _MALFORMED_HEAD.search(buffer, resume, size):
            self._refuse("bare LF or folded line in the request head")
        self._head_checked = size
        if end >= 0:
            # h11 merges identical Content-Length fields and lists of one value; llhttp refuses
            # them, and a list is how two hops come to disagree on a body's end (RFC 9112 6.3).
            lengths = _CONTENT_LENGTH_FIELD.findall(buffer, 0, size)
            if len(lengths) > 1 or (lengths and b"," in lengths[0]):
                self._refuse("repeated Content-Length")
            # h11 lets Transfer-Encoding win over a Content-Length beside it; llhttp refuses the
            # pair, which RFC 9112 6.1 calls a likely smuggling attempt.
            if lengths and _TRANSFER_ENCODING_FIELD.search(buffer, 0, size):
                self._refuse("Content-Length beside Transfer-Encoding")

    def _as_llhttp_reads_it(self, event: h11.Request) -> h11.Request:
        if event.method not in LLHTTP_METHODS:
            self._refuse("unknown method")
        if event.http_version not in _HTTP_1_VERSION_BYTES:
            self._refuse("unsupported protocol version")
        try:
            url = httptools.parse_url(event.target)
        except httptools.HttpParserError:
            self._refuse("invalid request target")
        if url.path is None:
            self._refuse("request target without a path")
        target = url.path + b"?" + url.query if url.query else url.path
        if target == event.target:
            return event
        return h11.Request(
            method=event.method, headers=event.headers, target=target, http_version=event.http_version, _parsed=True
        )

    def _refuse(self, reason: str) -> NoReturn:
        logger.info("refusing a malformed request: %s", reason, extra={"event": "bad_request"})
        # As h11 does for its own errors: the client's side is broken, and uvicorn may
        # still send its 400 before closing.
        self._process_error(self.their_role)
        raise h11.RemoteProtocolError(reason, error_status_hint=400)


PROTOCOLS = {
    "httptools": "gateway.server.http_protocols:GatewayHttpToolsProtocol",
    "h11": "gateway.server.http_protocols:GatewayH11Protocol",
}
