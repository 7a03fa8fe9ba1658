"""WebSockets through the gateway: each socket relayed to Django, and maintenance told to
browsers in the only way their WebSocket API can read it.

A browser's ``WebSocket`` never sees the HTTP status of a refused handshake (only an
error and close code 1006), so during maintenance a socket that is not let through is
accepted and closed at once with 1013 (Try Again Later) and a reason that says
maintenance, when to retry and the message. Clients that send no ``Origin`` (every
browser sends one on a WebSocket handshake) get the JSON 503 instead, through the ASGI
denial-response extension. Read-only maintenance closes sockets too: a socket can carry
writes and the gateway cannot tell which messages do; list a socket path that only reads
in ``GATEWAY_BYPASS_PATHS`` to keep it open.

The upstream side is ``websockets``' asyncio client; the handshake carries the client's
request as HTTP requests are forwarded (the proxy's own rules: raw path and query, Host,
cookies, Origin, X-Forwarded-*, hop-by-hop and the bypass secret removed). Messages are
relayed one at a time each way, so a slow reader on either side stops the other side's
reads (uvicorn pauses reading after each message; ``websockets`` stops at ``max_queue``
frames) and memory stays bounded by the message size limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast
from urllib.parse import urlsplit

from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers as WebSocketHeaders
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from gateway.errors import BadRequest
from gateway.failure_limit import client_group
from gateway.decision import MaintenanceDecision
from gateway.forwarding import HOP_BY_HOP
from gateway.metrics import Metrics
from gateway.proxy import Proxy
from gateway.server.websocket_protocol import CLIENT_LOST, forget_server_stop, when_server_stops
from gateway.settings import Settings
from gateway.state import MaintenanceState
from gateway.write_batching import BatchingTransport

logger = logging.getLogger("gateway.websocket")

# RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the close code.
MAX_CLOSE_REASON_BYTES = 123
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
# A state change reaches open sockets within this many seconds (a scheduled window starts
# by the clock alone, with no store change to announce it).
WATCH_INTERVAL = 0.2
# How long the gateway waits for its own close frame to go out, and for the upstream's
# closing handshake, before it drops the connection.
CLOSE_TIMEOUT = 5.0
# Messages ``websockets`` reads ahead from Django before it stops reading (high, low water):
# one, so a socket holds one message at each step of the relay and no queue of them.
UPSTREAM_MAX_QUEUE = (1, 0)
# What Django's WebSocket server takes in a handshake (``websockets``' parser, which uvicorn and
# the gateway's own side use): a handshake the gateway would forward past these (it adds the
# X-Forwarded-* lines) is refused here, rather than left to wait for an answer that never comes.
UPSTREAM_MAX_HEADER_LINES = 128
UPSTREAM_MAX_LINE_BYTES = 8192
# The drain's last half second is left for the close frames to go out before uvicorn
# cancels what is still running.
DRAIN_MARGIN = 0.5


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry, on a UTF-8 character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return text
    return encoded[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def maintenance_reason(message: str, retry_after: int) -> str:
    """What a page reads in ``CloseEvent.reason``: ``maintenance; retry-after=SECONDS; MESSAGE``."""
    return close_reason(f"maintenance; retry-after={retry_after}; {message}")


OVERLOADED_REASON = "overloaded; retry-after=1; too many open WebSockets"
CLIENT_LIMIT_REASON = "overloaded; retry-after=1; too many open WebSockets from this client"


def sendable_code(code: int) -> int:
    """A close code one side reported, as the other side can be sent it: 1005 (no code) and
    1006/1015 (no close frame at all) are never sent on the wire (RFC 6455 7.4.1)."""
    if code == 1005:
        return 1000
    if code in (1006, 1015) or not (1000 <= code < 5000):
        return INTERNAL_ERROR
    return code


class _ForwardingClientProtocol(ClientProtocol):
    """``websockets``' client handshake, carrying the client's request as the proxy forwards it."""

    def __init__(self, target: str, forwarded: list[tuple[str, str]], **options: Any) -> None:
        super().__init__(**options)
        self.target = target
        self.forwarded = forwarded

    def connect(self) -> Request:
        own = super().connect()
        headers = WebSocketHeaders()
        for name, value in self.forwarded:
            headers[name] = value
        # The WebSocket fields of this hop are websockets' own (its key, the version, the
        # subprotocols offered); extensions are negotiated per hop and none is offered here.
        for name in ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol"):
            for value in own.headers.get_all(name):
                headers[name] = value
        return Request(self.target, headers)


class _UpstreamConnection(ClientConnection):
    """``websockets``' client connection, its writes batched per pass of the event loop."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(BatchingTransport(cast(asyncio.Transport, transport), self.loop))  # type: ignore[arg-type]


class _Socket:
    """One relayed socket: what the gateway needs to close it from outside its own task."""

    __slots__ = ("scope", "send", "upstream", "pump", "ending", "upstream_close", "sending")

    def __init__(self, scope: Scope, send: Send, upstream: ClientConnection) -> None:
        self.scope = scope
        self.send = send
        self.upstream = upstream
        self.pump: asyncio.Task[None] | None = None
        self.ending = False
        self.upstream_close = (GOING_AWAY, "")
        self.sending = False  # a message is on its way to Django (which may not be reading)

    def client_lost(self) -> None:
        if self.sending:
            # Django is not taking the message: nothing else would end the wait.
            self.upstream.transport.abort()


class WebSocketRelay:
    def __init__(self, settings: Settings, decision: MaintenanceDecision, proxy: Proxy, metrics: Metrics) -> None:
        self.decision = decision
        self.holder = decision.holder
        self.responder = decision.responder
        self.proxy = proxy
        self.request_metrics = metrics
        self.metrics = metrics.websockets
        url = settings.websocket_upstream_url or settings.upstream_url
        parts = urlsplit(url)
        assert parts.hostname is not None
        self.host, self.port = parts.hostname, parts.port or 80
        self.uri = parse_uri(f"ws://{parts.netloc}/")
        self.max_connections = settings.websocket_max_connections
        self.max_per_client = settings.websocket_max_per_client
        self.per_client: dict[str, int] = {}  # sockets open or connecting, per client group
        self.max_message_bytes = settings.websocket_max_message_bytes
        self.connect_timeout = settings.upstream_connect_timeout
        self.handshake_timeout = settings.upstream_read_timeout
        self.drain_timeout = settings.drain_timeout
        self.default_retry_after = settings.retry_after
        self.admin_prefix = settings.admin_prefix
        self.admin_subpaths = settings.admin_prefix + "/"
        self.sockets: set[_Socket] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._drain: asyncio.TimerHandle | None = None
        self.connecting = 0  # handshakes with Django under way, counted against the limit too
        when_server_stops(self)

    # -- the handshake -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path: str = scope["path"]
        if path == self.admin_prefix or path.startswith(self.admin_subpaths):
            # The gateway's own endpoints are never forwarded, and none of them is a WebSocket.
            await send({"type": "websocket.close", "code": 1008})
            return
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="gateway-websocket-watcher")
        state = self.holder.state
        # As for a request: the notice Django is sent (and the scope's rules) as they stand now.
        now = self.decision.keep_decided(state)
        if state.enabled and self.refuses(state, now, scope):
            await self._refuse_for_maintenance(scope, send, state, now)
            return
        if len(self.sockets) + self.connecting >= self.max_connections:
            self.metrics.refused["overloaded"] += 1
            await self._refuse(scope, send, OVERLOADED_REASON, 503)
            return
        # The client by the one address rule (bypass IPs, the failure limit), grouped as the
        # failure limit groups it: an IPv6 host holds a whole /64.
        client = client_group(self.decision.trusted.client_address(scope))
        held = self.per_client.get(client, 0)
        if held >= self.max_per_client:
            self.metrics.refused["client_limit"] += 1
            await self._refuse(scope, send, CLIENT_LIMIT_REASON, 503)
            return
        self.per_client[client] = held + 1
        try:
            self.connecting += 1
            try:
                upstream = await self._connect(scope, send)
            finally:
                self.connecting -= 1
            if upstream is not None:
                await self._relay(scope, receive, send, upstream)
        finally:
            left = self.per_client[client] - 1
            if left:
                self.per_client[client] = left
            else:
                del self.per_client[client]  # only clients holding sockets are kept

    def refuses(self, state: MaintenanceState, now: float, scope: Scope) -> bool:
        """Whether maintenance in ``state`` keeps this socket out: it applies now, covers the
        path (the whole site, or a path in a partial maintenance's scope), and no bypass rule
        lets the socket through."""
        return state.active(now) and self.decision.covers(state, scope["path"]) and not self.decision.socket_lets_through(scope)

    def _retry_after(self, state: MaintenanceState, now: float) -> int:
        until_end = state.seconds_until_end(now)
        return self.default_retry_after if until_end is None else until_end

    def _maintenance_reason(self, state: MaintenanceState, now: float) -> str:
        return maintenance_reason(self.responder.message_for(state), self._retry_after(state, now))

    async def _refuse_for_maintenance(self, scope: Scope, send: Send, state: MaintenanceState, now: float) -> None:
        self.metrics.refused["maintenance"] += 1
        self.request_metrics.maintenance += 1
        if _reads_http_answers(scope):
            accept = xhr = None
            for name, value in scope["headers"]:
                if name == b"accept":
                    accept = value
                elif name == b"x-requested-with":
                    xhr = value.lower() == b"xmlhttprequest"
            start, body = self.responder.answer(state, now, None, accept, bool(xhr)).messages()
            await send({**start, "type": "websocket.http.response.start"})
            await send({**body, "type": "websocket.http.response.body"})
            return
        await self._accept_and_close(scope, send, TRY_AGAIN_LATER, self._maintenance_reason(state, now))

    async def _refuse(self, scope: Scope, send: Send, reason: str, status: int) -> None:
        if _reads_http_answers(scope):
            await self.proxy.answer_error(status, scope, _as_denial(send))
        else:
            await self._accept_and_close(scope, send, TRY_AGAIN_LATER, reason)

    async def _accept_and_close(self, scope: Scope, send: Send, code: int, reason: str) -> None:
        # A browser that offered subprotocols fails a handshake that picks none (and reports
        # only 1006): the first one offered is echoed, as the socket closes at once anyway.
        offered = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        await send({"type": "websocket.close", "code": code, "reason": reason})
        self.metrics.closed(code)

    async def _connect(self, scope: Scope, send: Send) -> ClientConnection | None:
        """The upstream connection, handshake done; None when the client was answered instead."""
        try:
            # The handshake is an HTTP GET; X-Forwarded-Proto names the HTTP scheme it came by,
            # as nginx sends it and as Django's SECURE_PROXY_SSL_HEADER expects ("https", not "wss").
            scheme = "https" if scope.get("scheme") == "wss" else "http"
            head, _, _ = self.proxy.request_head({**scope, "method": "GET", "scheme": scheme})
        except BadRequest as exc:
            self.metrics.refused["bad_request"] += 1
            if _reads_http_answers(scope):
                await self.proxy.answer_error(400, scope, _as_denial(send), str(exc))
            else:
                await send({"type": "websocket.close", "code": 1008})
            return None
        request_line, *lines = head.decode("latin-1").split("\r\n")
        forwarded = []
        for line in lines:
            if line:
                name, _, value = line.partition(": ")
                if not name.startswith("sec-websocket-"):
                    forwarded.append((name, value))
        # websockets adds its own Upgrade, Connection, key, version and subprotocol lines.
        if len(forwarded) + 5 > UPSTREAM_MAX_HEADER_LINES or any(len(line) + 2 > UPSTREAM_MAX_LINE_BYTES for line in lines):
            self.metrics.refused["bad_request"] += 1
            if _reads_http_answers(scope):
                await self.proxy.answer_error(400, scope, _as_denial(send), "request head too large for a WebSocket")
            else:
                await send({"type": "websocket.close", "code": 1008})
            return None
        protocol = _ForwardingClientProtocol(
            request_line.split(" ")[1],
            forwarded,
            uri=self.uri,
            subprotocols=[Subprotocol(name) for name in scope.get("subprotocols") or []] or None,
            max_size=self.max_message_bytes,
        )
        upstream = _UpstreamConnection(
            protocol,
            # Django's server pings the gateway; the gateway's own pings go to the client.
            ping_interval=None,
            ping_timeout=None,
            close_timeout=CLOSE_TIMEOUT,
            max_queue=UPSTREAM_MAX_QUEUE,
        )
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: upstream, self.host, self.port), self.connect_timeout)
            await asyncio.wait_for(upstream.handshake(None, None), self.handshake_timeout)
        except InvalidStatus as exc:
            # Django refused the socket (403 from an origin check, 404, ...): its answer is the client's.
            upstream.transport.abort()
            self.metrics.refused["upstream"] += 1
            await self._pass_refusal(scope, send, exc)
            return None
        except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            if getattr(upstream, "transport", None) is not None:
                upstream.transport.abort()
            self.metrics.refused["upstream"] += 1
            status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
            logger.warning(
                "WebSocket upstream unavailable: %s (%s)",
                exc or type(exc).__name__,
                scope["path"],
                extra={"event": "websocket_upstream_error", "status": status},
            )
            # As a proxy answers: the 502/504 itself (a browser sees 1006, as behind nginx), so a
            # page never takes an outage for maintenance.
            if "websocket.http.response" in (scope.get("extensions") or {}):
                await self.proxy.answer_error(status, scope, _as_denial(send))
            else:
                await send({"type": "websocket.close", "code": 1011})
            return None
        return upstream

    async def _pass_refusal(self, scope: Scope, send: Send, error: InvalidStatus) -> None:
        response = error.response
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.raw_items()
            if name.lower().encode("latin-1") not in HOP_BY_HOP and name.lower() != "content-length"
        ]
        await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": response.body or b""})

    # -- the relay -----------------------------------------------------------------------------

    async def _relay(self, scope: Scope, receive: Receive, send: Send, upstream: ClientConnection) -> None:
        response = upstream.response
        headers = []
        if response is not None:
            for name, value in response.headers.raw_items():
                lowered = name.lower()
                if lowered.encode("latin-1") not in HOP_BY_HOP and not lowered.startswith("sec-websocket-"):
                    headers.append((lowered.encode("latin-1"), value.encode("latin-1")))
        socket = _Socket(scope, send, upstream)
        scope[CLIENT_LOST] = socket.client_lost
        client_code = 1005
        try:
            try:
                await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol, "headers": headers})
            except OSError:
                return  # the client left during the handshake
            self.sockets.add(socket)
            self.metrics.open += 1
            socket.pump = asyncio.get_running_loop().create_task(self._pump(socket, upstream))
            # Maintenance may have started while Django was answering the handshake.
            state = self.holder.state
            if state.enabled:
                now = time.time()
                if self.refuses(state, now, scope):
                    self._close_from_gateway(socket, TRY_AGAIN_LATER, self._maintenance_reason(state, now))
            counts = self.metrics
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    client_code = message.get("code", 1005)
                    if not socket.ending:
                        # The client closed (or vanished): Django hears the same code and reason.
                        socket.upstream_close = (sendable_code(client_code), message.get("reason") or "")
                        if client_code in (1006, 1015):
                            socket.upstream_close = (GOING_AWAY, "client went away")
                        counts.closed(client_code)
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                    counts.bytes["client_to_upstream"] += len(data)
                else:
                    counts.bytes["client_to_upstream"] += len(data) if data.isascii() else len(data.encode())
                counts.messages["client_to_upstream"] += 1
                socket.sending = True
                try:
                    await upstream.send(data)
                except ConnectionClosed:
                    pass  # the pump closes the client; its close reaches this loop as a disconnect
                socket.sending = False
        finally:
            await self._finish(socket, upstream)

    async def _pump(self, socket: _Socket, upstream: ClientConnection) -> None:
        """Django to the client, until Django closes; then the client gets Django's close."""
        send = socket.send
        counts = self.metrics
        try:
            while True:
                data = await upstream.recv()
                if isinstance(data, str):
                    counts.bytes["upstream_to_client"] += len(data) if data.isascii() else len(data.encode())
                    await send({"type": "websocket.send", "text": data})
                else:
                    counts.bytes["upstream_to_client"] += len(data)
                    await send({"type": "websocket.send", "bytes": data})
                counts.messages["upstream_to_client"] += 1
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = sendable_code(exc.rcvd.code), exc.rcvd.reason
            elif exc.sent is not None and exc.sent.code != 1000:
                # The gateway failed the upstream (a message over the size limit): the client hears why.
                code, reason = sendable_code(exc.sent.code), exc.sent.reason
            else:
                code, reason = INTERNAL_ERROR, "upstream connection lost"
            socket.ending = True
            socket.upstream_close = (code, reason)
            try:
                await send({"type": "websocket.close", "code": code, "reason": close_reason(reason)})
            except OSError:
                return
            counts.closed(code)
        except OSError:
            pass  # the client is gone; the relay loop sees its disconnect

    async def _finish(self, socket: _Socket, upstream: ClientConnection) -> None:
        socket.scope.pop(CLIENT_LOST, None)
        if socket in self.sockets:
            self.sockets.discard(socket)
            self.metrics.open -= 1
        pump = socket.pump
        if pump is not None and not pump.done():
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                pass
        code, reason = socket.upstream_close
        try:
            await asyncio.wait_for(upstream.close(code, close_reason(reason)), CLOSE_TIMEOUT + 1)
        except asyncio.CancelledError:
            upstream.transport.abort()
            raise
        except Exception:  # noqa: BLE001 - whatever went wrong, the upstream connection is released
            upstream.transport.abort()

    # -- closing from outside: maintenance, the drain ------------------------------------------

    def _close_from_gateway(self, socket: _Socket, code: int, reason: str) -> None:
        if socket.ending:
            return
        socket.ending = True
        socket.upstream_close = (GOING_AWAY, "")
        if socket.pump is not None:
            socket.pump.cancel()
        task = asyncio.get_running_loop().create_task(self._send_close(socket, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _send_close(self, socket: _Socket, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(socket.send({"type": "websocket.close", "code": code, "reason": reason}), CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            return
        self.metrics.closed(code)

    def close_refused_sockets(self, state: MaintenanceState, now: float) -> int:
        """Close every open socket maintenance does not let through; how many were closed."""
        reason = self._maintenance_reason(state, now)
        closed = 0
        for socket in list(self.sockets):
            if not socket.ending and self.refuses(state, now, socket.scope):
                self._close_from_gateway(socket, TRY_AGAIN_LATER, reason)
                closed += 1
        return closed

    async def _watch(self) -> None:
        holder = self.holder
        last: MaintenanceState | None = None
        was_active = False
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            state = holder.state
            now = time.time()
            active = state.enabled and state.active(now)
            if active and (not was_active or state is not last) and self.sockets:
                closed = self.close_refused_sockets(state, now)
                if closed:
                    logger.info(
                        "maintenance closed %d WebSocket(s)", closed, extra={"event": "websockets_closed", "count": closed}
                    )
            was_active, last = active, state

    def begin_drain(self) -> None:
        """The server is stopping: open sockets get the drain time, then 1001 (Going Away)."""
        if self._drain is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self.drain_timeout - DRAIN_MARGIN)
        self._drain = loop.call_later(delay, self.close_all, GOING_AWAY, "server restarting")

    def close_all(self, code: int, reason: str) -> None:
        for socket in list(self.sockets):
            self._close_from_gateway(socket, code, reason)

    async def stop(self) -> None:
        forget_server_stop(self)
        if self._drain is not None:
            self._drain.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
            self._watcher = None
        self.close_all(GOING_AWAY, "server restarting")
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=CLOSE_TIMEOUT)


def _reads_http_answers(scope: Scope) -> bool:
    """A client that can read an HTTP answer to its handshake: the server offers the
    denial-response extension and the client is not a browser (browsers always send Origin
    on a WebSocket handshake, and their WebSocket API never shows the status)."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        return False
    return not any(name == b"origin" for name, _ in scope["headers"])


def _as_denial(send: Send) -> Send:
    """``send`` for an HTTP answer written as the denial-response extension's messages."""

    async def send_denial(message: Message) -> None:
        await send({**message, "type": "websocket." + message["type"]})

    return send_denial
