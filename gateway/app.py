"""The gateway as one ASGI application: dispatch, the maintenance check, lifespan.

The hot path is ``Gateway.__call__``: a prefix test, one attribute read of the
state, an identity compare to see whether it changed, and (only while maintenance
is enabled) a clock compare, plus a prefix match when only part of the site is in
maintenance; no I/O.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from gateway.admin.context import AdminContext, upstream_probe
from gateway.admin.routes import build_admin_app
from gateway.admin.state_changes import StateChanges
from gateway.bounded_cache import BoundedCache
from gateway.bypass import COOKIE_NAME_BYTES as BYPASS_COOKIE
from gateway.bypass import EXPIRED_COOKIE_HEADER
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.bypass import BypassSecret
from gateway.cors import CorsPolicy
from gateway.failure_limit import FailureLimiter
from gateway.forwarding import TrustedPeers, segment_prefixes, under_segment_prefixes
from gateway.instance import local_instance, read_instance
from gateway.maintenance import MaintenanceResponder
from gateway.metrics import Metrics
from gateway.override import Serving
from gateway.proxy import Proxy
from gateway.refresher import Refresher, StateHolder
from gateway.settings import Settings, load_settings
from gateway.state import MaintenanceState, has_dot_segment
from gateway.status_feed import StatusFeed, next_boundary, notice_line
from gateway.stores import Store, call_off_loop, open_store
from gateway.upstream import UpstreamPool
from gateway.websocket import WebSocketRelay

logger = logging.getLogger("gateway")
audit = logging.getLogger("gateway.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FAIL_CLOSED_REASON = "the maintenance state has not been read yet (GATEWAY_FAIL_MODE=closed)"


class Gateway:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings.store)
        # Until the store is read, fail-closed means "in maintenance" and fail-open "serving".
        closed = settings.fail_mode == "closed"
        self.holder = StateHolder(MaintenanceState(enabled=True, reason=FAIL_CLOSED_REASON) if closed else MaintenanceState())
        # What requests are served of the stored state: an operator's override, GATEWAY_MAX_WINDOW.
        self.serving = Serving(settings.max_window, audit, local_instance(settings.workers))
        self.serving.attach(self.holder)
        self.refresher = Refresher(self.store, self.holder, settings.refresh_interval)
        self.cors = CorsPolicy(settings)
        self.responder = MaintenanceResponder(settings, self.cors)
        host, port = settings.upstream_host_port
        self.pool = UpstreamPool(
            host,
            port,
            connect_timeout=settings.upstream_connect_timeout,
            idle_timeout=settings.upstream_idle_timeout,
            max_idle=settings.upstream_max_idle,
        )
        self.trusted = TrustedPeers(settings.forwarded_allow_ips, settings.forwarded_hops)
        self.metrics = Metrics()
        self.proxy = Proxy(
            self.pool,
            self.cors,
            self.trusted,
            read_timeout=settings.upstream_read_timeout,
            upstream_authority=settings.upstream_url.removeprefix("http://").encode("ascii"),
            metrics=self.metrics,
            body_timeout=settings.client_body_timeout,
            buffer_limit=settings.request_buffer_bytes,
            load=self,
            max_buffering=settings.max_buffering_bodies,
            body_min_rate=settings.client_body_min_rate,
        )
        self.bypass: BypassSecret = BypassSecret(settings.bypass_secret, settings.bypass_cookie_ttl)
        # One budget of failed guesses per client for admin tokens and bypass secrets alike.
        self.failure_limiter: FailureLimiter = FailureLimiter(settings.admin_failure_limit)
        # The feed tells a client the bypass rules let through so, by the rule requests follow.
        self.status_feed = StatusFeed(settings, self.cors, self.responder, self.holder, lets_through=self.client_lets_through)
        self.admin = build_admin_app(self._admin_context())
        self.admin_prefix = settings.admin_prefix
        self._admin_prefix_slash = settings.admin_prefix + "/"
        self._status_path = settings.admin_prefix + "/status"
        # What the hot path needs from the state, decided once per state change (and again when
        # a window starts or ends): the scope's matching rules and the notice Django is sent.
        self._decided_for: MaintenanceState | None = None
        self._decided_until = math.inf
        self._scope_prefixes: tuple[str, ...] = ()
        self._scope_exact: frozenset[str] = frozenset()
        self.in_flight = 0
        self.max_in_flight = settings.max_in_flight
        self.bypass_paths = settings.bypass_paths
        self.bypass_prefixes, self.bypass_exact_paths = segment_prefixes(settings.bypass_paths)
        self.bypass_networks = settings.bypass_ips
        # Whether a client's address is in GATEWAY_BYPASS_IPS, parsed and matched once per address.
        self._bypassing_addresses: BoundedCache[str, bool] = BoundedCache(self._address_bypasses)
        # Last: the relay reads the bypass rules, the responder and the proxy set up above.
        self.websockets = WebSocketRelay(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(self._admin_prefix_slash) or path == self.admin_prefix:
                if path == self._status_path:
                    # Polled by every open browser tab: raw ASGI, not the Starlette routes.
                    await self.status_feed(scope, receive, send)
                    return
                await self.admin(scope, receive, send)
                return
            if self.in_flight >= self.max_in_flight:
                # Shed load at once rather than queue without bound; health checks above still answer.
                self.metrics.overloaded += 1
                await self.proxy.answer_error(503, scope, send)
                return
            self.in_flight += 1
            try:
                state = self.holder.state
                # keep_decided, called only when it has something to do: with maintenance off and
                # the state unchanged (nearly every request) a method call would be all it costs.
                now = self.keep_decided(state) if state.enabled or state is not self._decided_for else 0.0
                if state.enabled and state.active(now) and (state.scope is None or self._in_scope(path)):
                    await self._maintenance(scope, receive, send, state, now)
                    return
                await self.proxy(scope, receive, send)
            finally:
                self.in_flight -= 1
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            # Only "websocket" is left (ASGI has three scope types): relayed to Django.
            await self.websockets(scope, receive, send)

    def keep_decided(self, state: MaintenanceState) -> float:
        """Bring what forwarding needs of ``state`` up to date (the scope's matching rules, the
        notice Django is sent) when the state changed or a window started or ended since; the
        one check for requests and WebSocket handshakes alike. Returns the time it read, or 0.0
        while maintenance is off (nothing then depends on the clock, and it is not read)."""
        if state.enabled:
            now = time.time()
            if state is not self._decided_for or now >= self._decided_until:
                self._decide(state, now)
            return now
        if state is not self._decided_for:
            self._decide(state, time.time())
        return 0.0

    def _decide(self, state: MaintenanceState, now: float) -> None:
        """Work out, once per state (and per window start or end), what requests need of it."""
        if state.scope is not None:
            self._scope_prefixes, self._scope_exact = segment_prefixes(state.scope)
        self.proxy.notice = notice_line(state, now)
        self._decided_until = next_boundary(state, now)
        self._decided_for = state

    def covers(self, state: MaintenanceState, path: str) -> bool:
        """Whether maintenance in ``state`` (when it applies) covers ``path``: the whole site, or
        a path in its scope. For callers off the HTTP hot path (WebSocket handshakes)."""
        if state.scope is None:
            return True
        self.keep_decided(state)
        return self._in_scope(path)

    def _in_scope(self, path: str) -> bool:
        """Whether partial maintenance covers ``path``: under a prefix by whole segments, the
        rule of GATEWAY_BYPASS_PATHS. A path with a dot-segment counts as covered: whatever
        resolves it later may land under a prefix, and maintenance is the safe side."""
        return has_dot_segment(path) or path.startswith(self._scope_prefixes) or path in self._scope_exact

    def _address_bypasses(self, address: str) -> bool:
        """Whether ``address`` is in GATEWAY_BYPASS_IPS (worked out once per address: see __init__)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.bypass_networks)

    def client_lets_through(self, scope: Scope, bypass_header: bytes | None, cookie: bytes | None) -> bool:
        """Whether the client may pass maintenance: its address, the bypass header or cookie
        (requests and WebSockets alike; the caller has read the two headers already).

        A wrong header or bypass cookie counts toward the failure limit the admin API and the
        bypass form use, and a client over that limit is not let through by a secret at all
        (it gets the usual maintenance answer). Requests that present neither cost nothing more.
        """
        # The one rule for the client's address (the admin failure limit uses it too), read once.
        client = None
        if self.bypass_networks:
            client = self.trusted.client_address(scope)
            if self._bypassing_addresses[client]:
                return True
        if not self.bypass.enabled:
            return False
        valid = self.bypass.presented(bypass_header, cookie)
        if valid is None:
            return False
        if client is None:
            client = self.trusted.client_address(scope)
        if self.failure_limiter.retry_after(client):
            return False
        if not valid:
            self.failure_limiter.record_failure(client)
        return valid

    async def _maintenance(self, scope: Scope, receive: Receive, send: Send, state: MaintenanceState, now: float) -> None:
        """Maintenance applies: forward what may pass (read-only reads, bypasses), answer the rest."""
        if (state.mode == "read-only" and scope["method"] in SAFE_METHODS) or (
            self.bypass_paths and under_segment_prefixes(scope["path"], self.bypass_prefixes, self.bypass_exact_paths)
        ):
            self.metrics.bypassed += 1
            await self.proxy(scope, receive, send)
            return
        # One pass over the headers collects what the decision and the answer need (the client's
        # address, when a rule needs it, is read by ``TrustedPeers.client_address``).
        origin = accept = bypass_header = cookie = None
        xhr = preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"accept":
                accept = value
            elif name == b"x-requested-with":
                xhr = value.lower() == b"xmlhttprequest"
            elif name == b"access-control-request-method":
                preflight = True
            elif name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == BYPASS_HEADER:
                bypass_header = value
        if self.client_lets_through(scope, bypass_header, cookie):
            self.metrics.bypassed += 1
            await self.proxy(scope, receive, send)
            return
        if preflight and origin is not None and scope["method"] == "OPTIONS":
            if await self.responder.answer_preflight(send, state, now, origin):
                self.metrics.preflight += 1
                return
        self.metrics.maintenance += 1
        start, body = self.responder.messages(state, now, origin, accept, xhr)
        if cookie is not None and self.bypass.enabled and BYPASS_COOKIE in cookie:
            # A bypass cookie that did not let the request through is expired, so a browser holding
            # one from before a change of secret is counted once, not on every request it makes.
            start = {**start, "headers": [*start["headers"], EXPIRED_COOKIE_HEADER]}
        await send(start)
        await send(body)

    def _admin_context(self) -> AdminContext:
        """What the admin endpoints read and call; they never see the gateway itself."""
        settings = self.settings
        changes = StateChanges(self.store, self.holder, audit)
        return AdminContext(
            prefix=settings.admin_prefix,
            admin_tokens=settings.admin_tokens,
            body_timeout=settings.client_body_timeout,
            fail_closed=settings.fail_mode == "closed",
            store_description=self.store.description,
            holder=self.holder,
            metrics=self.metrics,
            gauges=self._process_gauges,
            trusted=self.trusted,
            failure_limiter=self.failure_limiter,
            bypass=self.bypass,
            change_state=changes.change,
            probe_upstream=upstream_probe(self.pool),
            read_history=changes.history,
            serving=self.serving,
        )

    def _process_gauges(self) -> dict[str, float | None]:
        return {
            # Requests to the gateway's own endpoints, this scrape included, are not counted.
            "gateway_in_flight_requests": float(self.in_flight),
            "gateway_upstream_connections_open": float(self.pool.open_count),
            "gateway_upstream_connections_idle": float(self.pool.idle_count),
        }

    async def startup(self) -> None:
        # Who this process is, named in every answer about the override (ECS task metadata).
        self.serving.instance = instance = await call_off_loop(read_instance, dict(os.environ), self.settings.workers)
        if instance.problem is not None:
            logger.warning("%s; this process is known as %s", instance.problem, instance.id, extra={"event": "instance_unknown", "instance": instance.id})
        # One read before serving, so a normal start never shows the fail-mode default.
        if not await self.refresher.refresh_once():
            logger.warning(
                "starting without the maintenance state (fail-%s): %s",
                self.settings.fail_mode,
                self.holder.last_error,
                extra={"event": "start_without_state", "fail_mode": self.settings.fail_mode},
            )
        self.refresher.start()

    async def shutdown(self) -> None:
        """Stop the sockets, the refresher, the pool and the store: each of them, even when one
        before it fails (a failure must not leave the others open); the failures are raised
        together afterwards."""
        failures: list[Exception] = []
        steps: list[Callable[[], Awaitable[None] | None]] = [
            self.websockets.stop, self.refresher.stop, self.serving.close, self.pool.close, self.store.close
        ]
        for step in steps:
            try:
                outcome = step()
                if outcome is not None:
                    await outcome
            except Exception as exc:  # noqa: BLE001 - collected, then raised together
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise ExceptionGroup("shutdown failed in several steps", failures)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:  # noqa: BLE001 - reported to the server and logged, not raised
                    # Raised, it would reach the server as a crash of the lifespan task, not as an
                    # answer to the shutdown; ASGI's answer for this is shutdown.failed with why.
                    why = "; ".join(f"{type(e).__name__}: {e}" for e in (exc.exceptions if isinstance(exc, ExceptionGroup) else (exc,)))
                    logger.error("shutdown failed: %s", why, exc_info=True, extra={"event": "shutdown_failed", "error": why})
                    await send({"type": "lifespan.shutdown.failed", "message": why})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> Gateway:
    """The factory the server (and each worker process) calls; settings come from the environment."""
    return Gateway(load_settings())

