"""uvicorn's WebSocket protocol, with a stop that drains instead of cutting.

On SIGTERM uvicorn calls ``shutdown()`` on every connection at once; its own WebSocket
protocols answer an open socket with 1012 (Service Restart) there and then, so a task
being replaced would drop every browser's socket at the first second of its drain.
Here an open socket is left to the gateway's relay instead, which lets it run until the
drain timeout and then closes it with 1001 (Going Away), always with a close frame.

It also reads the handshake's request target as an HTTP request's is read (an
absolute-form target by its path and query; anything else without a path is a 400),
and lets a refusal sent through the denial-response extension end the handshake quietly.

And it bounds what one client can make a socket hold, where uvicorn's protocol does not:

- a handshake the ``websockets`` parser refuses after the HTTP parser took it (a body,
  ``Transfer-Encoding``, more than 128 header lines, a line over 8 KiB) is answered 400
  and closed at once; uvicorn's protocol answers nothing and keeps the connection open;
- pings from a client that does not read: while the transport's buffer is over its high
  mark, only the latest ping is owed a pong (RFC 6455 5.5.3), sent when the client reads
  again; a socket whose unsent bytes still pass ``MAX_UNSENT_MARGIN`` beyond the largest
  message is dropped; a socket in its closing handshake answers no pings at all;
- the client's bytes reach the WebSocket parser one frame at a time, and no further ahead
  of the relay than ``MAX_PARSED_AHEAD`` messages or ``MAX_PARSED_AHEAD_BYTES`` (or one
  larger message): uvicorn hands it a whole read (256 KiB), parsed at once, so a read of
  empty messages queued 43,000 of them, and one of compressed frames inflated a megabyte
  each. What is held instead is the unparsed rest of one read, with reading paused; the next
  batch is parsed on the loop's next turn, so a flood from one socket cannot hold the loop;
- a fragmented message is gathered in one buffer (uvicorn keeps one bytes object per
  fragment: 1-byte fragments cost some 40 times the message), each frame counts its
  header against the message limit (so empty fragments count), and an unfinished message
  must end as a request body must: no pause between two frames longer than
  ``GATEWAY_CLIENT_BODY_TIMEOUT``, and all of it within that timeout plus its bytes at
  ``GATEWAY_CLIENT_BODY_MIN_RATE``; otherwise the socket is closed with 1008;
- a text message that is not UTF-8 is closed with 1007 and one warning line, not a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, Protocol, cast

import httptools
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request

from gateway.server.http_protocol import server_settings
from gateway.write_batching import BatchingTransport

logger = logging.getLogger("gateway.websocket")

# Unsent bytes a socket may hold beyond its largest message: the relay writes a message only
# while the transport is below its high mark (64 KiB), so a socket that gets past this is
# one whose client stopped reading while something else (pongs, a flood) kept writing.
MAX_UNSENT_MARGIN = 256 * 1024
# What a client's frame header costs at the least (2 bytes, and the 4-byte mask every client
# frame carries): counted against the message limit, so empty fragments are not free.
CLIENT_FRAME_HEADER_BYTES = 6
# Messages parsed ahead of the relay before reading stops (uvicorn stops after each one, the
# gateway's first bound too; a few at a time cost a turn of the loop per batch, not per message):
# at most this many, and once they hold this many bytes (or one message does) no more.
MAX_PARSED_AHEAD = 32
MAX_PARSED_AHEAD_BYTES = 64 * 1024
# RFC 6455 5.2: opcode 0xA (pong) with FIN, as the server writes it (unmasked, no RSV bits).
_PONG_FIRST_BYTE = b"\x8a"
_POLICY_VIOLATION = 1008
_INVALID_DATA = 1007
_MESSAGE_TOO_BIG = 1009


# A scope key the relay may set to a callable: called when the client's connection is lost,
# so a relay waiting on Django (which is not reading) learns that the client is gone.
CLIENT_LOST = "gateway.client_lost"


class Drains(Protocol):
    def begin_drain(self) -> None: ...


# Told when uvicorn asks an open socket to stop (each worker process has its own relay).
# Weak: a gateway that is gone (one built in a test) is simply forgotten.
_relays: weakref.WeakSet[Drains] = weakref.WeakSet()


def when_server_stops(relay: Drains) -> None:
    """Have ``relay.begin_drain()`` called when the server starts its graceful stop."""
    _relays.add(relay)


def forget_server_stop(relay: Drains) -> None:
    _relays.discard(relay)


def origin_form(target: str) -> str | None:
    """The path and query of a handshake's request target, as uvicorn's httptools protocol
    routes an HTTP request (an absolute-form ``http://host/path?q`` by ``/path?q``; the
    fragment dropped), or None when the target has no path starting with ``/`` (``*``,
    authority-form, ``http://host``): neither origin-form nor absolute-form (RFC 9112 3.2)."""
    try:
        url = httptools.parse_url(target.encode("ascii"))
    except (httptools.HttpParserError, UnicodeEncodeError):
        return None
    if url.path is None or not url.path.startswith(b"/"):
        return None
    path = url.path.decode("ascii")
    return path + "?" + url.query.decode("ascii") if url.query is not None else path


class DrainingWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets``' sans-I/O protocol under uvicorn, minus the immediate 1012 on stop, and
    with a client that stops answering pings dropped for good."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A client has one ping interval to answer a ping (uvicorn's own wait is a fixed 20 s).
        if self.ping_interval:
            self.ping_timeout = self.ping_interval
            # And as long to answer the gateway's close frame (uvicorn's own wait: 10 s).
            self.close_timeout = min(self.close_timeout, self.ping_interval)
        settings = server_settings()
        self.max_message_bytes = self.config.ws_max_size
        self.max_unsent_bytes = self.max_message_bytes + MAX_UNSENT_MARGIN
        self.message_timeout = settings.client_body_timeout
        self.message_min_rate = settings.client_body_min_rate
        # The message whose fragments are arriving: its bytes, what it has cost, since when.
        self.fragments = bytearray()
        self.fragments_cost = 0
        self.fragments_since = 0.0
        self.fragments_last = 0.0
        self.fragments_timer: asyncio.TimerHandle | None = None
        self.pong_owed: bytes | None = None  # the latest ping's pong, while the client does not read
        # Bytes read from the client and not yet given to the parser (from ``held_at`` on), and
        # what is still to come of the frame the parser was last given the start of.
        self.held = b""
        self.held_at = 0
        self.frame_left = 0
        # Messages parsed and queued for the relay, not yet taken: their sizes, and their sum.
        self.parsed_sizes: collections.deque[int] = collections.deque()
        self.parsed_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Messages the relay writes in one pass of the loop leave in one system call.
        super().connection_made(cast(asyncio.Transport, BatchingTransport(cast(asyncio.Transport, transport), self.loop)))

    def data_received(self, data: bytes) -> None:
        if not self.handshake_initiated:
            # The handshake's request, handed over whole by the HTTP protocol.
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None and not self.transport.is_closing():
                self._refuse_handshake(self.conn.handshake_exc)
            return
        self.held = self.held[self.held_at :] + data if self.held else data
        self.held_at = 0
        if not self.handshake_complete:
            # Frames sent before the gateway has answered the handshake (Django is still
            # answering its own): kept unparsed until it is accepted, and no more read till then.
            self.transport.pause_reading()
            return
        self._feed()

    def _feed(self) -> None:
        """Give the parser the held bytes a frame at a time, until they run out or enough waits
        for the relay (``read_paused``, set by ``_deliver``)."""
        data, at = self.held, self.held_at
        end = len(data)
        while at < end and not self.read_paused and not self.transport.is_closing():
            if self.frame_left:
                take = min(self.frame_left, end - at)
            else:
                length = _frame_length(data, at)
                if length is None:
                    break  # the rest of a frame header is on its way: kept until it is whole
                take = min(length, end - at)
                self.frame_left = length
            self.frame_left -= take
            self.conn.receive_data(data[at : at + take])
            at += take
            if self.conn.parser_exc is not None:
                self.held, self.held_at = b"", 0
                self.handle_parser_exception()
                return
            self.handle_events()
        if at >= end:
            self.held, self.held_at = b"", 0
        else:
            self.held_at = at

    def _feed_held(self) -> None:
        """Parse what was held back, then read again unless a message waits again."""
        if self.transport.is_closing():
            return
        self._feed()
        if not self.read_paused:
            self.transport.resume_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if message["type"] == "websocket.receive" and self.parsed_sizes:
            self.parsed_bytes -= self.parsed_sizes.popleft()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if self.held:
                # The next messages are already read: parsed on the loop's next turn, a batch a
                # turn, so that a socket flooding small messages shares the loop with the rest.
                self.loop.call_soon(self._feed_held)
            else:
                self.transport.resume_reading()
        return message

    def _refuse_handshake(self, error: Exception) -> None:
        """A handshake the HTTP parser took and ``websockets``' own parser did not: a 400 and
        the connection closed, as nginx answers such a request (``websockets`` has queued a 431,
        or nothing at all, and uvicorn's protocol would send neither and hold the connection)."""
        self.conn.data_to_send()  # whatever websockets queued for it
        cause = error.__cause__ or error
        text = f"Invalid WebSocket handshake: {cause}.\n".encode("ascii", "replace")
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        logger.info("refusing a WebSocket handshake: %s", cause, extra={"event": "bad_request"})
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text)
        )
        self.transport.close()

    # -- pings ---------------------------------------------------------------------------------

    def handle_ping(self) -> None:
        # websockets has queued a pong for each ping this read brought (the first call takes
        # them all), and perhaps other frames behind them (the echo of a close).
        output = self.conn.data_to_send()
        if not output:
            return
        others = [frame for frame in output if frame[:1] != _PONG_FIRST_BYTE]
        if len(others) == len(output):
            self.transport.write(b"".join(output))
            return
        if self.close_sent or self.transport.is_closing():
            # The closing handshake has begun: pings are answered no more (RFC 6455 5.5.1 leaves
            # them to the endpoint; websockets' own client does the same).
            output = others
        elif not self.writable.is_set():
            # The client is not reading what is already owed to it: only the latest ping gets
            # its pong, once it reads again (RFC 6455 5.5.3).
            self.pong_owed = next(frame for frame in reversed(output) if frame[:1] == _PONG_FIRST_BYTE)
            output = others
        if output:
            self.transport.write(b"".join(output))
        if self.transport.get_write_buffer_size() > self.max_unsent_bytes:
            self._drop("unsent bytes past %d" % self.max_unsent_bytes)

    def resume_writing(self) -> None:
        super().resume_writing()
        pong, self.pong_owed = self.pong_owed, None
        if pong is not None and not self.close_sent and not self.transport.is_closing():
            self.transport.write(pong)

    def _drop(self, why: str) -> None:
        logger.info("dropping a WebSocket client: %s", why, extra={"event": "websocket_dropped"})
        self.transport.abort()

    # -- messages ------------------------------------------------------------------------------

    def handle_text(self, event: Frame) -> None:
        self.curr_msg_data_type = "text"
        self._first_frame(event)

    def handle_bytes(self, event: Frame) -> None:
        self.curr_msg_data_type = "bytes"
        self._first_frame(event)

    def _first_frame(self, event: Frame) -> None:
        if event.fin:
            self._deliver(event.data)
            return
        # One buffer for the whole message: its size is the message's, whatever the fragments.
        self.fragments = bytearray(event.data)
        self.fragments_cost = len(event.data) + CLIENT_FRAME_HEADER_BYTES
        self.fragments_since = self.fragments_last = self.loop.time()
        self._arm_message_deadline()

    def handle_cont(self, event: Frame) -> None:
        self.fragments += event.data
        self.fragments_cost += len(event.data) + CLIENT_FRAME_HEADER_BYTES
        self.fragments_last = self.loop.time()
        if event.fin:
            data = bytes(self.fragments)
            self._end_fragments()
            self._deliver(data)
        elif self.fragments_cost > self.max_message_bytes:
            # websockets counts payload only; the headers make a flood of empty fragments count.
            self._fail(_MESSAGE_TOO_BIG, f"message over {self.max_message_bytes} bytes")

    def _end_fragments(self) -> None:
        self.fragments = bytearray()
        self.fragments_cost = 0
        if self.fragments_timer is not None:
            self.fragments_timer.cancel()
            self.fragments_timer = None

    def _message_deadline(self) -> float:
        """When the unfinished message is too late: a pause between two frames longer than the
        body timeout, or the whole slower than the timeout plus its bytes at the minimum rate."""
        allowed = self.message_timeout
        if self.message_min_rate:
            allowed += self.fragments_cost / self.message_min_rate
        return min(self.fragments_since + allowed, self.fragments_last + self.message_timeout)

    def _arm_message_deadline(self) -> None:
        self.fragments_timer = self.loop.call_at(self._message_deadline(), self._message_deadline_passed)

    def _message_deadline_passed(self) -> None:
        self.fragments_timer = None
        if self.close_sent or self.transport.is_closing() or not self.fragments_cost:
            return
        if self.read_paused:
            # The gateway itself is not reading (the message before this one is still on its
            # way to Django): not the client's delay. It gets the whole timeout again.
            self.fragments_since += self.message_timeout
            self.fragments_last = self.loop.time()
        if self.read_paused or self.loop.time() < self._message_deadline():
            self._arm_message_deadline()
            return
        self._fail(_POLICY_VIOLATION, "message not finished in time")

    def _fail(self, code: int, reason: str, level: int = logging.INFO) -> None:
        """Close the socket for what the client sent: the close frame, then the connection."""
        logger.log(level, "closing a WebSocket (%d): %s", code, reason, extra={"event": "websocket_refused", "code": code})
        self._end_fragments()
        self.conn.fail(code, reason)
        self.handle_parser_exception()

    def handle_parser_exception(self) -> None:
        super().handle_parser_exception()
        # uvicorn closes the transport, which waits for the close frame to be sent; a client
        # that reads nothing would hold the connection for ever.
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_timeout, self._close_or_abort)

    def _deliver(self, data: bytes | bytearray | memoryview) -> None:
        """uvicorn's ``send_receive_event_to_app``, for one whole message (websockets parses
        frames into bytes; the other types are only what its annotations allow)."""
        if self.close_sent:
            # Past `websocket.close`: the message is dropped, reads go on until the close reply.
            return
        if self.curr_msg_data_type == "text":
            try:
                text = str(data, "utf-8")
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: a text message that is not UTF-8 fails the connection. The
                # client's mistake, told in one line, not a traceback per socket.
                self._fail(_INVALID_DATA, f"text message is not UTF-8 ({exc.reason} at byte {exc.start})", logging.WARNING)
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data if type(data) is bytes else bytes(data)})
        self.parsed_sizes.append(len(data))
        self.parsed_bytes += len(data)
        if not self.read_paused and (len(self.parsed_sizes) >= MAX_PARSED_AHEAD or self.parsed_bytes >= MAX_PARSED_AHEAD_BYTES):
            # Enough parsed ahead of the relay: the rest waits unparsed, and unread.
            self.read_paused = True
            self.transport.pause_reading()

    def handle_connect(self, event: Request) -> None:
        # uvicorn's HTTP protocols hand the handshake over with the request target as the
        # client sent it, and this protocol takes the scope's path from it as it stands: an
        # absolute-form target would reach the application as the path "http://host/..." (past
        # every prefix rule), where an HTTP request with the same target is routed by its path.
        target = origin_form(event.path)
        if target is None:
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            self.conn.send_response(self.conn.reject(HTTPStatus.BAD_REQUEST, "Invalid request target.\n"))
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        event.path = target
        super().handle_connect(event)

    def send(self, message: Any) -> Coroutine[Any, Any, None]:
        # No extra coroutine for every relayed message: only an accept, a close and the end of
        # a refusal need the steps below.
        kind = message["type"]
        if kind == "websocket.close":
            return self._send_close(message)
        if kind == "websocket.http.response.body":
            return self._send_refusal_body(message)
        if kind == "websocket.accept":
            return self._send_accept(message)
        return super().send(message)

    async def _send_accept(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and not self.transport.is_closing():
            # Reading stopped at the first frame that came before this answer (data_received).
            self.loop.call_soon(self._feed_held)

    async def _send_refusal_body(self, message: Any) -> None:
        await super().send(message)
        if self.close_sent:
            # The refusal (the denial-response extension's answer) is sent: that ends the
            # handshake. uvicorn's wsproto protocol marks it so; this one does not, and would
            # log "ASGI callable returned without completing handshake" for every refusal.
            self.handshake_complete = True

    async def _send_close(self, message: Any) -> None:
        await super().send(message)
        if self.close_timer is not None:
            # uvicorn closes the transport if the client never answers the close frame; a
            # client that reads nothing would keep that close waiting to flush forever.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self._close_or_abort)

    def _close_or_abort(self) -> None:
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        # A client that stopped answering may have stopped reading too: close() waits for
        # what is still buffered toward it to be sent, which would hold the connection, its
        # memory and Django's side of the relay forever.
        self.transport.abort()

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.disconnected and _relays:
            # The socket stays open (pings go on): the relay closes it with 1001 when the drain time is up.
            for relay in list(_relays):
                relay.begin_drain()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_fragments()
        self.held, self.held_at = b"", 0
        if self.handshake_complete and not self.disconnected and not self.close_sent and self.conn.close_rcvd is None:
            # Gone without a close frame: RFC 6455 7.1.5 calls that 1006. uvicorn reports 1005
            # (which means "a close frame without a code"), and the relay would tell Django
            # that the client closed normally.
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        super().connection_lost(exc)
        scope = getattr(self, "scope", None)
        if scope is not None and CLIENT_LOST in scope:
            scope[CLIENT_LOST]()


def _frame_length(data: bytes, at: int) -> int | None:
    """The length of the client frame that starts at ``data[at]`` (RFC 6455 5.2: header, mask
    key and payload), or None while its header is not all there."""
    available = len(data) - at
    if available < 2:
        return None
    second = data[at + 1]
    length = second & 0x7F
    header = 2
    if length == 126:
        if available < 4:
            return None
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        header = 4
    elif length == 127:
        if available < 10:
            return None
        length = int.from_bytes(data[at + 2 : at + 10], "big")
        header = 10
    if second & 0x80:
        header += 4  # the mask key (a client frame without one is the parser's to refuse)
    return header + length
