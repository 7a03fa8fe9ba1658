"""The gateway's own endpoints under the admin prefix (Starlette, off the hot path).

``/health`` is liveness for the ALB and ECS: it stays 200 in maintenance, since a
503 there would make ECS replace every task; without a token it says only what a
load balancer and a front end need, the details need an admin token, as metrics
do. ``/ready`` says whether this task can serve. ``/maintenance`` reads and
changes the state (bearer tokens, ETag and If-Match on the version), ``/bypass``
trades the bypass secret for a cookie (``bypass_login``).
Every refusal is a JSON 4xx naming what is wrong (a browser posting the bypass form gets
the form again with the reason); none is a 500. The app sees only an ``AdminContext``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from gateway.admin.answers import SafeJSONResponse, check_failure_limit, error_response, read_body
from gateway.admin.auth import TokenAuth
from gateway.admin.bypass_login import BypassLogin
from gateway.admin.changes import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, next_state, parse_if_match, parse_json_body, whole_number
from gateway.admin.context import AdminContext, StateReadings
from gateway.admin.override_routes import override_details, override_gauges, override_routes
from gateway.admin.state_changes import ChangeOutcome
from gateway.admin.updates import UPDATE_FIELDS, updated_state
from gateway.errors import ConflictError, RequestError, StoreBlocksChange, StoreError
from gateway.http import NO_STORE_FIELDS
from gateway.metrics import render as render_metrics
from gateway.state import MAX_REASON_LENGTH, MaintenanceState, safe_text

# Readiness answers are reused this long: a flood of /ready calls opens at most one connection to Django a second.
READY_PROBE_CACHE_SECONDS = 1.0


def public_health_payload(holder: StateReadings) -> dict[str, Any]:
    """What anyone may read: what a load balancer and a front end need, nothing the 503 does not say."""
    now = time.time()
    state = holder.state
    return {
        "status": "ok",
        "maintenance": state.active(now),
        "mode": state.mode,
        "upcoming": state.upcoming(now),
        "store": {"status": holder.store_status()},
    }


def health_payload(context: AdminContext) -> dict[str, Any]:
    """The details for operators (an admin token): the state, the store, this process."""
    holder = context.holder
    # First: an override past its TTL is dropped here, before anything below reads what is served.
    served = override_details(context.serving, holder) if context.serving is not None else {}
    now = time.time()
    # As stored (what `on --wait` compares); what is served, and why, is in "served".
    state = holder.stored
    age = holder.age()
    return {
        **public_health_payload(holder),
        **served,
        "state": state.describe(now) if holder.loaded else None,
        "store": {
            "kind": context.store_description,
            "status": holder.store_status(),
            "failures": holder.failures,
            "reads": holder.reads,
            "error": None if holder.last_error is None else safe_text(holder.last_error),
            # The last time the store was confirmed to hold a lower version than this process
            # did (a deleted item or file, a restored backup), which it then followed.
            "went_back": holder.last_went_back,
        },
        "state_age_seconds": None if age is None else round(age, 3),
        "pid": os.getpid(),
    }


class UpstreamProbe:
    """The gateway's upstream probe, its answer cached briefly and shared by concurrent callers."""

    def __init__(self, probe: Callable[[], Awaitable[str | None]], ttl: float = READY_PROBE_CACHE_SECONDS) -> None:
        self.probe = probe
        self.ttl = ttl
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._result: str | None = None

    async def problem(self) -> str | None:
        """None when the upstream accepts a connection, else why not (at most ``ttl`` old)."""
        async with self._lock:  # callers during a probe wait for its answer instead of probing too
            if self._checked_at is None or time.monotonic() - self._checked_at >= self.ttl:
                self._result = await self.probe()
                self._checked_at = time.monotonic()
            return self._result


class AdminAPI:
    def __init__(self, context: AdminContext) -> None:
        self.context = context
        self.auth = TokenAuth(context.admin_tokens)
        self.limiter = context.failure_limiter
        self.body_timeout = context.body_timeout
        self.openapi = resources.files("gateway.admin").joinpath("openapi.json").read_bytes()

    def client_ip(self, request: Request) -> str:
        return self.context.trusted.client_address(request.scope)

    def authorize(self, request: Request) -> tuple[str, str]:
        """The token's name and the client's address, or a 404/429/401."""
        if not self.auth.enabled:
            raise RequestError(404, "not_found", "the admin API is off (GATEWAY_ADMIN_TOKENS is empty)")
        client = self.client_ip(request)
        check_failure_limit(self.limiter, client)
        presented = request.headers.getlist("authorization")
        # Two Authorization fields (RFC 9110 11.6.2 allows one) are refused, not one of them
        # picked: a proxy in front may have judged the other.
        name = self.auth.identify(presented[0]) if len(presented) == 1 else None
        if name is None:
            self.limiter.record_failure(client)
            error = RequestError(401, "unauthorized", "send Authorization: Bearer <admin token>")
            error.headers["www-authenticate"] = 'Bearer realm="maintenance-gateway"'
            raise error
        return name, client

    def has_credentials(self, request: Request) -> bool:
        return self.auth.enabled and "authorization" in request.headers

    def state_response(self) -> JSONResponse:
        """The stored state (its version the ETag), and what this process serves of it."""
        holder = self.context.holder
        state = holder.stored
        answer = state.describe(time.time())
        if self.context.serving is not None:
            answer.update(override_details(self.context.serving, holder))
        return SafeJSONResponse(answer, headers={**NO_STORE_FIELDS, "etag": f'"{state.version}"'})

    def change_response(self, outcome: ChangeOutcome) -> JSONResponse:
        """The state the change left (as GET describes it), whether it wrote anything, the
        window it replaced, if any, and the state it was built on (``previous``, so a client can
        say field by field what was kept): a repeated command tells the operator it did nothing."""
        now = time.time()
        state = outcome.new
        answer = state.describe(now)
        answer["changed"] = outcome.changed
        answer["replaced"] = outcome.replaced.describe(now) if outcome.replaced is not None else None
        answer["previous"] = outcome.old.describe(now) if outcome.old is not None else None
        return SafeJSONResponse(answer, headers={**NO_STORE_FIELDS, "etag": f'"{state.version}"'})

    async def get_maintenance(self, request: Request) -> Response:
        self.authorize(request)
        return self.state_response()

    async def put_maintenance(self, request: Request) -> Response:
        name, client = self.authorize(request)
        body = parse_json_body(await read_body(request, self.body_timeout), request.headers.get("content-type"))
        return await self._change(request, body, name, client)

    async def patch_maintenance(self, request: Request) -> Response:
        """Only the fields sent change; the others are kept (``updates``)."""
        name, client = self.authorize(request)
        body = parse_json_body(await read_body(request, self.body_timeout), request.headers.get("content-type"), UPDATE_FIELDS)
        return await self._change(request, body, name, client, build=updated_state)

    async def delete_maintenance(self, request: Request) -> Response:
        name, client = self.authorize(request)
        reason = request.query_params.get("reason", "")[:MAX_REASON_LENGTH]
        body = {"enabled": False, "reason": reason}
        if "by" in request.query_params:
            body["by"] = request.query_params["by"]
        return await self._change(request, body, name, client)

    async def _change(
        self, request: Request, body: dict[str, Any], name: str, client: str, build: Callable[..., MaintenanceState] = next_state
    ) -> Response:
        expected = parse_if_match(request.headers.get("if-match"))
        outcome = await self.context.change_state(
            # The token's name is who wrote it; a "by" in the body is recorded beside it (never instead).
            lambda current: build(current, body, now=time.time(), actor=f"{name} via admin API"),
            expected=expected,
            token_name=name,
            client=client,
        )
        return self.change_response(outcome)

    async def get_history(self, request: Request) -> Response:
        self.authorize(request)
        limit = whole_number(request.query_params.get("limit", str(DEFAULT_HISTORY_LIMIT)), MAX_HISTORY_LIMIT)
        if limit is None or limit < 1:
            raise RequestError(400, "invalid_field", f"limit: expected a whole number from 1 to {MAX_HISTORY_LIMIT}", "limit")
        records = await self.context.read_history(limit)
        return SafeJSONResponse({"changes": records}, headers=NO_STORE_FIELDS)

    async def openapi_document(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")


def build_admin_app(context: AdminContext) -> Starlette:
    """The admin endpoints, mounted once under ``context.prefix``."""
    api = AdminAPI(context)
    bypass = BypassLogin(context)
    probe = UpstreamProbe(context.probe_upstream)
    holder = context.holder

    async def health(request: Request) -> JSONResponse:
        # No credentials: the public view (load balancers, front ends). Credentials are checked
        # like any admin call (a wrong token is a 401 and counts toward the failure limit),
        # so health cannot serve as a token oracle without a limit.
        if not api.has_credentials(request):
            return SafeJSONResponse(public_health_payload(holder), headers=NO_STORE_FIELDS)
        api.authorize(request)
        return SafeJSONResponse(health_payload(context), headers=NO_STORE_FIELDS)

    async def ready(request: Request) -> JSONResponse:
        # As health: without credentials only ready or not and a word for each reason; Django's
        # address, the error it gave and the store are details for an admin token.
        detailed = api.has_credentials(request)
        if detailed:
            api.authorize(request)
        problems: dict[str, str] = {}
        # An override decides what is served whether or not the store was read.
        if not holder.loaded and context.fail_closed and not (context.serving is not None and context.serving.current()):
            problems["state_unread"] = "the maintenance state has not been read yet (fail-closed)"
        upstream_error = await probe.problem()
        if upstream_error:
            problems["upstream_unreachable"] = upstream_error
        payload: dict[str, Any] = {"ready": not problems, "problems": list(problems)}
        if detailed:
            payload.update(details=list(problems.values()), store=holder.store_status())
        return SafeJSONResponse(payload, status_code=503 if problems else 200, headers=NO_STORE_FIELDS)

    def gauges() -> dict[str, float | None]:
        overridden = override_gauges(context.serving, holder)  # first, as in health_payload
        now = time.time()
        state = holder.state
        active = state.active(now)
        return {
            "gateway_maintenance_active": float(active),
            "gateway_maintenance_read_only": float(active and state.mode == "read-only"),
            "gateway_maintenance_upcoming": float(state.upcoming(now)),
            "gateway_state_version": float(state.version),
            "gateway_state_age_seconds": holder.age(),
            "gateway_store_stale": float(holder.failures > 0),
            **overridden,
            **context.gauges(),
        }

    async def metrics(request: Request) -> Response:
        api.authorize(request)
        text = render_metrics(context.metrics, gauges, holder)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8", headers=NO_STORE_FIELDS)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return error_response(exc)

    async def store_failed(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ConflictError):
            error = RequestError(412, "version_conflict", f"the state changed meanwhile (now version {exc.actual}); read it and retry")
        elif isinstance(exc, StoreBlocksChange):
            # Not an outage, and not the request's fault: what the store holds, said as it is.
            error = RequestError(409, "store_blocks_change", str(exc))
        else:
            error = RequestError(503, "store_unavailable", "the store cannot be reached; the state was not changed")
        return error_response(error)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(RequestError(404, "not_found", "no such gateway endpoint"))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        error = RequestError(405, "method_not_allowed", f"{request.method} is not allowed here")
        # RFC 9110 15.5.6: a 405 lists what the resource takes. Starlette's own list names only
        # the first of the routes that share a path, so it is worked out from all of them.
        error.headers["allow"] = ", ".join(sorted(methods_by_path.get(request.url.path.removeprefix(context.prefix), ())))
        return error_response(error)

    endpoints = Router(
        routes=[
            Route("/health", health, methods=["GET", "HEAD"]),
            Route("/ready", ready, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/maintenance", api.get_maintenance, methods=["GET", "HEAD"]),
            Route("/maintenance", api.put_maintenance, methods=["PUT"]),
            Route("/maintenance", api.delete_maintenance, methods=["DELETE"]),
            Route("/maintenance", api.patch_maintenance, methods=["PATCH"]),
            Route("/maintenance/history", api.get_history, methods=["GET"]),
            Route("/bypass", bypass.form, methods=["GET"]),
            Route("/bypass", bypass.login, methods=["POST"]),
            Route("/bypass", bypass.logout, methods=["DELETE"]),
            Route("/openapi.json", api.openapi_document, methods=["GET"]),
            *(override_routes(context.serving, holder, api.authorize, context.body_timeout) if context.serving is not None else ()),
            # /status (the public feed, polled by every open tab) is answered by the gateway
            # before these routes, in raw ASGI: it is not one of them.
        ],
        # Starlette would answer /maintenance/ with a redirect built from the request's Host
        # header (an attacker's name in Location); a JSON 404 is the answer instead. Both
        # routers are told: the mount's own one, and the outer one (which would send the
        # prefix itself to the prefix plus a slash).
        redirect_slashes=False,
    )
    methods_by_path: dict[str, set[str]] = {}
    for route in endpoints.routes:
        assert isinstance(route, Route) and route.methods is not None
        methods_by_path.setdefault(route.path, set()).update(route.methods)
    app = Starlette(
        routes=[Mount(context.prefix, app=endpoints)],
        exception_handlers={
            RequestError: refused,
            StoreError: store_failed,
            404: not_found,
            405: method_not_allowed,
        },
    )
    app.router.redirect_slashes = False
    return app
