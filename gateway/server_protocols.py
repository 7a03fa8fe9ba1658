"""uvicorn's HTTP protocols with the limits a reverse proxy needs and uvicorn lacks.

uvicorn times out idle keep-alive connections but not a request whose headers
trickle in (slowloris), and its httptools protocol puts no bound on the size of
the header block. These subclasses add both, for either parser:

- ``GATEWAY_CLIENT_HEADER_TIMEOUT``: a request's head must arrive within this many
  seconds of its first byte (or of the connection opening), or the connection is
  closed;
- ``GATEWAY_MAX_HEADER_BYTES``: a bigger header block is refused with a 400
  (httptools: counted here; h11: its own incomplete-event limit, set by the server).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import Any

import httptools
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings, load_settings

logger = logging.getLogger("gateway.server")


@functools.cache
def _settings() -> Settings:
    # The server exported the validated settings to the environment before starting.
    return load_settings()


class HeadersTooLarge(httptools.HttpParserError):
    """A parser error, so uvicorn handles it as it handles any malformed request."""


class _RequestHeadGuard:
    """The head-of-request timer and checks, shared by both protocols (a mixin placed before
    the uvicorn protocol, whose methods it extends)."""

    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop

    def _init_guard(self) -> None:
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_timeout = _settings().client_header_timeout
        self._max_header_bytes = _settings().max_header_bytes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if not self._request_in_progress():
            self._arm_head_timer()
            if self._refuse_head(data):
                return
        super().data_received(data)  # type: ignore[misc]
        if self._request_in_progress():
            self._disarm_head_timer()
            self._head_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _refuse_head(self, data: bytes) -> bool:
        """Whether to refuse the request head ``data`` belongs to (and close the connection)."""
        return False

    def _head_complete(self) -> None:
        pass

    def _request_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._request_in_progress() and not self.transport.is_closing():
            logger.info(
                "closing a connection whose request head did not arrive within %g s",
                self._head_timeout,
                extra={"event": "client_header_timeout"},
            )
            self.transport.close()


class GatewayHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a header-size limit and a head timeout that cost a request almost nothing.

    Instead of a timer per request, the start of each request head is noted
    (two attribute writes) and one sweeper per process closes the connections
    whose head has been arriving for too long.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self._max_header_bytes = settings.max_header_bytes
        self._header_bytes = 0
        self._head_started: float | None = None
        self._cycle_at_head_start: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_started = self.loop.time()  # silence counts too: a client that never speaks
        self._cycle_at_head_start = None
        _HeadSweeper.ensure_running(self.loop, self.connections)

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        self._head_started = self.loop.time()
        self._cycle_at_head_start = self.cycle  # a new cycle appears once the head is complete
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._max_header_bytes:
            # Raised inside the parser's callback: uvicorn answers 400 and closes the connection.
            raise HeadersTooLarge(f"request headers larger than {self._max_header_bytes} bytes")
        # uvicorn's own on_header (0.30 to 0.54), inlined: this runs for every header of every request.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def head_overdue(self, now: float, timeout: float) -> bool:
        started = self._head_started
        return started is not None and self.cycle is self._cycle_at_head_start and now - started > timeout


class _HeadSweeper:
    """One task per event loop that closes connections whose request head is overdue."""

    _running: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    def ensure_running(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        task = cls._running.get(loop)
        if task is None or task.done():
            # Held in the class: the loop keeps only a weak reference to tasks.
            cls._running[loop] = loop.create_task(cls._sweep(connections), name="gateway-head-sweeper")

    @staticmethod
    async def _sweep(connections: set[Any]) -> None:
        timeout = _settings().client_header_timeout
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = loop.time()
            for protocol in list(connections):
                if isinstance(protocol, GatewayHttpToolsProtocol) and protocol.head_overdue(now, timeout):
                    if not protocol.transport.is_closing():
                        logger.info(
                            "closing a connection whose request head did not arrive within %g s",
                            timeout,
                            extra={"event": "client_header_timeout"},
                        )
                        protocol.transport.close()


class GatewayH11Protocol(_RequestHeadGuard, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()
        self._previous_bytes = b""  # the end of the last piece, for a CR LF split between two
        self._head_size = 0

    def _head_complete(self) -> None:
        self._head_size = 0

    def _refuse_head(self, data: bytes) -> bool:
        """Refuse a request head over the size limit, or with bare LF line ends or folded lines
        (as llhttp does).

        h11 accepts both; a front proxy might read them otherwise, and two parsers
        that split a byte stream differently are how requests get smuggled
        (RFC 9112 2.2, 5.2).
        """
        end = data.find(b"\r\n\r\n")
        head = self._previous_bytes + (data if end < 0 else data[:end])
        self._previous_bytes = data[-2:]
        # h11's own limit only counts a head still incomplete; a whole one in one piece passes it.
        self._head_size += len(data) if end < 0 else end
        if _MALFORMED_HEAD.search(head) is None and self._head_size <= self._max_header_bytes:
            return False
        logger.info("refusing a malformed or oversized request head", extra={"event": "bad_request"})
        self.transport.write(_BAD_HEAD_ANSWER)
        self.transport.close()
        return True


# A LF without its CR, or a line that starts with white space (obsolete folding).
_MALFORMED_HEAD = re.compile(rb"(?<!\r)\n|\r\n[ \t]")
_BAD_HEAD_BODY = b"Invalid HTTP request received."
_BAD_HEAD_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BAD_HEAD_BODY), _BAD_HEAD_BODY)
)

PROTOCOLS = {
    "httptools": "gateway.server_protocols:GatewayHttpToolsProtocol",
    "h11": "gateway.server_protocols:GatewayH11Protocol",
}
