"""The gateway as one ASGI application: dispatch, the maintenance check, lifespan.

Whether maintenance covers a request is decided in gateway/decision.py; the connection
protocol's callback path (gateway/server/http_protocol.py) asks the same object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from gateway.admin.context import AdminContext, upstream_probe
from gateway.admin.routes import build_admin_app
from gateway.admin.state_changes import StateChanges
from gateway.bypass import BypassSecret
from gateway.cors import CorsPolicy
from gateway.failure_limit import FailureLimiter
from gateway.decision import MaintenanceDecision
from gateway.exchange import CallbackRoutes
from gateway.forwarding import TrustedPeers
from gateway.instance import local_instance, read_instance
from gateway.maintenance import MaintenanceResponder
from gateway.metrics import Metrics
from gateway.override import Serving
from gateway.proxy import Proxy
from gateway.refresher import Refresher, StateHolder
from gateway.settings import Settings, load_settings
from gateway.state import MaintenanceState
from gateway.status_feed import StatusFeed
from gateway.stores import Store, call_off_loop, open_store
from gateway.upstream import UpstreamPool
from gateway.websocket import WebSocketRelay

logger = logging.getLogger("gateway")
audit = logging.getLogger("gateway.audit")

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
        self.proxy: Proxy = Proxy(
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
        # Whether maintenance covers a request and who passes: one rule for every path.
        self.decision: MaintenanceDecision = MaintenanceDecision(
            settings, self.holder, self.responder, self.trusted, self.bypass, self.failure_limiter, self.metrics, self.proxy
        )
        # The feed tells a client the bypass rules let through so, by the rule requests follow.
        self.status_feed: StatusFeed = StatusFeed(settings, self.cors, self.responder, self.holder, lets_through=self.decision.lets_through)
        self.admin = build_admin_app(self._admin_context())
        self.admin_prefix = settings.admin_prefix
        self._admin_prefix_slash = settings.admin_prefix + "/"
        self._status_path = settings.admin_prefix + "/status"
        self.in_flight: int = 0
        self.max_in_flight: int = settings.max_in_flight
        # Last: the relay reads the bypass rules, the responder and the proxy set up above.
        self.websockets = WebSocketRelay(settings, self.decision, self.proxy, self.metrics)
        # What the gateway's connection protocol answers without ASGI (the hot path).
        self.callback_routes = CallbackRoutes(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole gateway as ASGI: what any ASGI server (and an in-process test client) runs.
        Under the gateway's own connection protocol (gateway/server/http_protocol.py) requests
        take the callback path instead, and come here only for the admin API, WebSockets and
        bodies too big to buffer."""
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(self._admin_prefix_slash) or path == self.admin_prefix:
                if path == self._status_path:
                    # Polled by every open browser tab: raw ASGI, not the Starlette routes.
                    await self.status_feed.answer(scope).send(send)
                    return
                await self.admin(scope, receive, send)
                return
            if self.in_flight >= self.max_in_flight:
                # Shed load at once rather than queue without bound; health checks above still answer.
                self.metrics.overloaded += 1
                await self.proxy.answer_error(503, scope, send)
                return
            answer = self.decision.answer_for(scope)
            if answer is not None:
                await answer.send(send)
                return
            await self.forward(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            # Only "websocket" is left (ASGI has three scope types): relayed to Django.
            await self.websockets(scope, receive, send)

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request through the ASGI proxy, counted against GATEWAY_MAX_IN_FLIGHT."""
        self.in_flight += 1
        try:
            await self.proxy(scope, receive, send)
        finally:
            self.in_flight -= 1

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

