"""The gateway's own endpoints under the admin prefix (Starlette, off the hot path).

``/health`` is liveness for the ALB and ECS: it stays 200 in maintenance, since a
503 there would make ECS replace every task; without a token it says only what a
load balancer and a front end need, the details need an admin token, as metrics
do. ``/ready`` says whether this task can serve. ``/maintenance`` reads and
changes the state (bearer tokens, ETag and If-Match on the version), ``/bypass``
trades the bypass secret for a cookie.
Every refusal is a JSON 4xx naming what is wrong (a browser posting the bypass form gets
the form again with the reason); none is a 500. The app sees only an ``AdminContext``.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from importlib import resources
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router

from gateway.admin.auth import TokenAuth
from gateway.admin.changes import MAX_BODY_BYTES, next_state, parse_if_match, parse_json_body, whole_number
from gateway.admin.context import AdminContext
from gateway.admin.state_changes import ChangeOutcome
from gateway.bypass import COOKIE_NAME
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.http import NO_STORE_FIELDS
from gateway.errors import ConflictError, RequestError, StoreError
from gateway.metrics import render as render_metrics
from gateway.negotiation import HTML, choose
from gateway.refresher import StateHolder
from gateway.state import format_time, safe_text

logger = logging.getLogger("gateway.admin")

MAX_HISTORY_LIMIT = 500
# Readiness answers are reused this long: a flood of /ready calls opens at most one connection to Django a second.
READY_PROBE_CACHE_SECONDS = 1.0


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: text a store or a client supplied may hold lone surrogates,
    which UTF-8 cannot carry; such a body is sent with ``\\uXXXX`` escapes instead of failing."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


BYPASS_FORM = """<!doctype html>
<meta charset="utf-8"><meta name="robots" content="noindex"><title>Maintenance bypass</title>
<form method="post" style="font-family:system-ui;max-width:24rem;margin:4rem auto">
<p>Enter the bypass secret to use the site while it is in maintenance.</p>{error}
<input type="password" name="secret" autocomplete="off" required style="width:100%">
<button type="submit">Let me in</button></form>
"""


def bypass_page(error: str | None = None) -> str:
    """The bypass form, with a line saying why the last attempt was refused, if one was."""
    line = "" if error is None else f'\n<p role="alert" style="color:#b00020">{html.escape(error)}</p>'
    return BYPASS_FORM.format(error=line)


def wants_html(request: Request) -> bool:
    """Whether the client is a browser (its Accept prefers text/html, as a form post's does)."""
    accept = request.headers.get("accept")
    return accept is not None and choose(accept.encode("latin-1")) == HTML


def public_health_payload(holder: StateHolder) -> dict[str, Any]:
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
    now = time.time()
    state = holder.state
    age = holder.age()
    return {
        **public_health_payload(holder),
        "state": state.describe(now) if holder.loaded else None,
        "store": {
            "kind": context.store_description,
            "status": holder.store_status(),
            "failures": holder.failures,
            "reads": holder.reads,
            "error": None if holder.last_error is None else safe_text(holder.last_error),
        },
        "state_age_seconds": None if age is None else round(age, 3),
        "pid": os.getpid(),
    }


def error_response(error: RequestError) -> JSONResponse:
    headers = {**NO_STORE_FIELDS, **error.headers}
    return SafeJSONResponse(error.payload(), status_code=error.status, headers=headers)


async def read_body(request: Request, timeout: float, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) as soon as it passes ``limit`` instead of reading it all,
    and (408) when it has not all arrived within ``timeout`` seconds (GATEWAY_CLIENT_BODY_TIMEOUT:
    these bodies are small, so the whole of one gets the time a proxied body gets per piece)."""
    declared = request.headers.get("content-length")
    # The server has framed the body by then; only a length it accepted, and a sane one, is looked at.
    declared_length = whole_number(declared.strip(), 2**63) if declared is not None else None
    if declared_length is not None and declared_length > limit:
        raise RequestError(413, "body_too_large", f"the body is larger than {limit} bytes")
    received = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += chunk
                if len(received) > limit:
                    raise RequestError(413, "body_too_large", f"the body is larger than {limit} bytes")
    except ClientDisconnect:
        # The client left before its body was whole: nobody reads an answer, and nothing is wrong
        # with the gateway (a client can do this at will, so it is no error line either).
        logger.debug("client left before sending the whole body", extra={"event": "body_cut_short", "path": request.url.path})
        raise RequestError(400, "incomplete_body", "the connection closed before the whole body arrived") from None
    except TimeoutError:
        error = RequestError(408, "request_timeout", f"the body did not arrive within {timeout:g} s")
        error.headers["connection"] = "close"  # the rest of it is not read: nothing else can follow
        raise error from None
    return bytes(received)


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
        self.bypass = context.bypass
        self.body_timeout = context.body_timeout
        self.openapi = resources.files("gateway.admin").joinpath("openapi.json").read_bytes()

    def client_ip(self, request: Request) -> str:
        return self.context.trusted.client_address(request.scope)

    def _check_rate(self, client: str) -> None:
        wait = self.limiter.retry_after(client)
        if wait:
            error = RequestError(429, "too_many_attempts", f"too many failed attempts; retry in {wait} s")
            error.headers["retry-after"] = str(wait)
            raise error

    def authorize(self, request: Request) -> tuple[str, str]:
        """The token's name and the client's address, or a 404/429/401."""
        if not self.auth.enabled:
            raise RequestError(404, "not_found", "the admin API is off (GATEWAY_ADMIN_TOKENS is empty)")
        client = self.client_ip(request)
        self._check_rate(client)
        name = self.auth.identify(request.headers.get("authorization"))
        if name is None:
            self.limiter.record_failure(client)
            error = RequestError(401, "unauthorized", "send Authorization: Bearer <admin token>")
            error.headers["www-authenticate"] = 'Bearer realm="maintenance-gateway"'
            raise error
        return name, client

    def has_credentials(self, request: Request) -> bool:
        return self.auth.enabled and "authorization" in request.headers

    def state_response(self) -> JSONResponse:
        state = self.context.holder.state
        return SafeJSONResponse(state.describe(time.time()), headers={**NO_STORE_FIELDS, "etag": f'"{state.version}"'})

    def change_response(self, outcome: ChangeOutcome) -> JSONResponse:
        """The state the change left (as GET describes it), whether it wrote anything, and the
        window it replaced, if any: a repeated command tells the operator it did nothing."""
        now = time.time()
        state = outcome.new
        answer = state.describe(now)
        answer["changed"] = outcome.changed
        answer["replaced"] = outcome.replaced.describe(now) if outcome.replaced is not None else None
        return SafeJSONResponse(answer, headers={**NO_STORE_FIELDS, "etag": f'"{state.version}"'})

    async def get_maintenance(self, request: Request) -> Response:
        self.authorize(request)
        return self.state_response()

    async def put_maintenance(self, request: Request) -> Response:
        name, client = self.authorize(request)
        body = parse_json_body(await read_body(request, self.body_timeout), request.headers.get("content-type"))
        return await self._change(request, body, name, client)

    async def delete_maintenance(self, request: Request) -> Response:
        name, client = self.authorize(request)
        reason = request.query_params.get("reason", "")[:500]
        return await self._change(request, {"enabled": False, "reason": reason}, name, client)

    async def _change(self, request: Request, body: dict[str, Any], name: str, client: str) -> Response:
        expected = parse_if_match(request.headers.get("if-match"))
        outcome = await self.context.change_state(
            lambda current: next_state(current, body, now=time.time(), actor=f"{name} via admin API"),
            expected=expected,
            token_name=name,
            client=client,
        )
        return self.change_response(outcome)

    async def get_history(self, request: Request) -> Response:
        self.authorize(request)
        limit = whole_number(request.query_params.get("limit", "20"), MAX_HISTORY_LIMIT)
        if limit is None or limit < 1:
            raise RequestError(400, "invalid_field", f"limit: expected a whole number from 1 to {MAX_HISTORY_LIMIT}", "limit")
        records = await self.context.read_history(limit)
        return SafeJSONResponse({"changes": records}, headers=NO_STORE_FIELDS)

    async def bypass_form(self, request: Request) -> Response:
        if not self.bypass.enabled:
            raise RequestError(404, "not_found", "bypass is off (GATEWAY_BYPASS_SECRET is empty)")
        return HTMLResponse(bypass_page(), headers=NO_STORE_FIELDS)

    async def bypass_login(self, request: Request) -> Response:
        if not self.bypass.enabled:
            raise RequestError(404, "not_found", "bypass is off (GATEWAY_BYPASS_SECRET is empty)")
        try:
            return await self._bypass_login(request)
        except RequestError as error:
            if not wants_html(request):
                raise
            # A browser that posted the form gets it again with the reason, not a page of JSON;
            # the status (and Retry-After) stay what an API client gets.
            headers = {**NO_STORE_FIELDS, **error.headers}
            return HTMLResponse(bypass_page(error.message), status_code=error.status, headers=headers)

    async def _bypass_login(self, request: Request) -> Response:
        client = self.client_ip(request)
        self._check_rate(client)
        try:
            presented, from_form, next_path = await self._presented_secret(request)
        except RequestError:
            # A malformed attempt is still an attempt: it counts, or it would be a free guess.
            self.limiter.record_failure(client)
            raise
        if presented is None or not self.bypass.matches(presented):
            self.limiter.record_failure(client)
            raise RequestError(403, "wrong_secret", "that is not the bypass secret")
        value = self.bypass.make_cookie_value()
        expires = int(value.split(".", 1)[0])
        response: Response
        if from_form:
            response = RedirectResponse(next_path, status_code=303, headers=NO_STORE_FIELDS)
        else:
            response = SafeJSONResponse({"bypass": True, "expires_at": format_time(expires)}, headers=NO_STORE_FIELDS)
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=self.bypass.cookie_ttl,
            httponly=True,
            samesite="lax",
            secure=self._https(request),
        )
        return response

    async def bypass_logout(self, request: Request) -> Response:
        response = Response(status_code=204, headers=NO_STORE_FIELDS)
        response.delete_cookie(COOKIE_NAME, httponly=True, samesite="lax")
        return response

    def _https(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        return self.context.trusted.trusts(peer) and request.headers.get("x-forwarded-proto", "").lower() == "https"

    async def _presented_secret(self, request: Request) -> tuple[bytes | None, bool, str]:
        header = request.headers.get(BYPASS_HEADER.decode())
        if header is not None:
            # RFC 9110 5.5: white space around a field value is not part of it.
            return header.strip(" \t").encode("latin-1"), False, "/"
        raw = await read_body(request, self.body_timeout, 4096)
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            # Browsers send a form as percent-encoded UTF-8 (the form's page is UTF-8); the
            # bytes are kept exactly (surrogateescape), so any byte string is compared, not refused.
            form = parse_qs(raw.decode("latin-1"), encoding="utf-8", errors="surrogateescape")
            next_path = safe_next_path(form.get("next", ["/"])[0])
            secret = form.get("secret", [None])[0]
            return (secret.encode("utf-8", "surrogateescape") if secret is not None else None), True, next_path
        if media == "application/json":
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise RequestError(400, "invalid_json", "the body is not valid JSON") from None
            secret = body.get("secret") if isinstance(body, dict) else None
            if not isinstance(secret, str):
                raise RequestError(400, "invalid_field", "secret: expected a string", "secret")
            # A lone surrogate ("\\ud800") has no UTF-8 form; surrogatepass gives bytes that match no secret.
            return secret.encode("utf-8", "surrogatepass"), False, "/"
        return None, False, "/"

    async def openapi_document(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")


def safe_next_path(candidate: str) -> str:
    """Where the bypass form sends the browser back: a path on this site, else ``/``.

    Never an open redirect: ``//host`` and ``/\\host`` (browsers read a backslash as a
    slash) name another site; control characters and undecodable bytes are refused too.
    """
    if (
        not candidate.startswith("/")
        or candidate[1:2] in ("/", "\\")
        or not candidate.isprintable()  # also refuses lone surrogates (category Cs)
        or len(candidate) > 2000
    ):
        return "/"
    return candidate


def build_admin_app(context: AdminContext) -> Starlette:
    """The admin endpoints, mounted once under ``context.prefix``."""
    api = AdminAPI(context)
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
        problems = []
        if not holder.loaded and context.fail_closed:
            problems.append("the maintenance state has not been read yet (fail-closed)")
        upstream_error = await probe.problem()
        if upstream_error:
            problems.append(upstream_error)
        payload = {"ready": not problems, "problems": problems, "store": holder.store_status()}
        return SafeJSONResponse(payload, status_code=503 if problems else 200, headers=NO_STORE_FIELDS)

    def gauges() -> dict[str, float | None]:
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
            **context.gauges(),
        }

    async def metrics(request: Request) -> Response:
        api.authorize(request)
        text = render_metrics(context.metrics, gauges, holder.errors, holder.reads)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8", headers=NO_STORE_FIELDS)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return error_response(exc)

    async def store_failed(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ConflictError):
            error = RequestError(412, "version_conflict", f"the state changed meanwhile (now version {exc.actual}); read it and retry")
        else:
            error = RequestError(503, "store_unavailable", "the store cannot be reached; the state was not changed")
        return error_response(error)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(RequestError(404, "not_found", "no such gateway endpoint"))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(RequestError(405, "method_not_allowed", f"{request.method} is not allowed here"))

    endpoints = Router(
        routes=[
            Route("/health", health, methods=["GET", "HEAD"]),
            Route("/ready", ready, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/maintenance", api.get_maintenance, methods=["GET", "HEAD"]),
            Route("/maintenance", api.put_maintenance, methods=["PUT"]),
            Route("/maintenance", api.delete_maintenance, methods=["DELETE"]),
            Route("/maintenance/history", api.get_history, methods=["GET"]),
            Route("/bypass", api.bypass_form, methods=["GET"]),
            Route("/bypass", api.bypass_login, methods=["POST"]),
            Route("/bypass", api.bypass_logout, methods=["DELETE"]),
            Route("/openapi.json", api.openapi_document, methods=["GET"]),
            # The gateway answers this path before these routes (raw ASGI, polled by browsers);
            # the route keeps it listed beside the others.
            Route("/status", context.status_feed, methods=["GET", "HEAD"]),
        ],
        # Starlette would answer /maintenance/ with a redirect built from the request's Host
        # header (an attacker's name in Location); a JSON 404 is the answer instead. Both
        # routers are told: the mount's own one, and the outer one (which would send the
        # prefix itself to the prefix plus a slash).
        redirect_slashes=False,
    )
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
