"""uvicorn's WebSocket protocol, with a stop that drains instead of cutting.

On SIGTERM uvicorn calls ``shutdown()`` on every connection at once; its own WebSocket
protocols answer an open socket with 1012 (Service Restart) there and then, so a task
being replaced would drop every browser's socket at the first second of its drain.
Here an open socket is left to the gateway's relay instead, which lets it run until the
drain timeout and then closes it with 1001 (Going Away), always with a close frame.

It also reads the handshake's request target as an HTTP request's is read (an
absolute-form target by its path and query; anything else without a path is a 400),
and lets a refusal sent through the denial-response extension end the handshake quietly.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, Protocol, cast

import httptools
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from gateway.write_batching import BatchingTransport


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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Messages the relay writes in one pass of the loop leave in one system call.
        super().connection_made(cast(asyncio.Transport, BatchingTransport(cast(asyncio.Transport, transport), self.loop)))

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
        # No extra coroutine for every relayed message: only a close and the end of a refusal
        # need the steps below.
        kind = message["type"]
        if kind == "websocket.close":
            return self._send_close(message)
        if kind == "websocket.http.response.body":
            return self._send_refusal_body(message)
        return super().send(message)

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
        if self.handshake_complete and not self.disconnected and not self.close_sent and self.conn.close_rcvd is None:
            # Gone without a close frame: RFC 6455 7.1.5 calls that 1006. uvicorn reports 1005
            # (which means "a close frame without a code"), and the relay would tell Django
            # that the client closed normally.
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        super().connection_lost(exc)
        scope = getattr(self, "scope", None)
        if scope is not None and CLIENT_LOST in scope:
            scope[CLIENT_LOST]()
