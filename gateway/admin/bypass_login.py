"""``{prefix}/bypass``: trading the bypass secret for a signed cookie (a form for browsers,
JSON or the header for scripts), and forgetting it again.

Every attempt counts toward the failure limit the admin API uses; a browser that posted the
form gets the form again with the reason, a script gets JSON.
"""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.admin.answers import SafeJSONResponse, check_failure_limit, read_body
from gateway.admin.context import AdminContext
from gateway.bypass import COOKIE_NAME
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.errors import RequestError
from gateway.http import NO_STORE_FIELDS
from gateway.negotiation import HTML, choose
from gateway.state import format_time

# A bypass secret with its form fields: far below an admin body.
MAX_BYPASS_BODY_BYTES = 4096

BYPASS_FORM = """<!doctype html>
<meta charset="utf-8"><meta name="robots" content="noindex"><title>Maintenance bypass</title>
<form method="post" style="font-family:system-ui;max-width:24rem;margin:4rem auto">
<p>Enter the bypass secret to use the site while it is in maintenance.</p>{error}
<input type="password" name="secret" autocomplete="off" required style="width:100%">
<input type="hidden" name="next" value="{next}">
<button type="submit">Let me in</button></form>
"""


def bypass_page(request: Request, error: str | None = None) -> str:
    """The bypass form, with a line saying why the last attempt was refused, if one was. It
    sends the browser back to ``?next=`` (a path on this site) once the secret is taken."""
    line = "" if error is None else f'\n<p role="alert" style="color:#b00020">{html.escape(error)}</p>'
    next_path = safe_next_path(request.query_params.get("next", "/"))
    return BYPASS_FORM.format(error=line, next=html.escape(next_path, quote=True))


def wants_html(request: Request) -> bool:
    """Whether the client is a browser (its Accept prefers text/html, as a form post's does)."""
    accept = request.headers.get("accept")
    return accept is not None and choose(accept.encode("latin-1")) == HTML


class BypassLogin:
    def __init__(self, context: AdminContext) -> None:
        self.context = context
        self.bypass = context.bypass
        self.limiter = context.failure_limiter
        self.body_timeout = context.body_timeout

    def _require_enabled(self) -> None:
        if not self.bypass.enabled:
            raise RequestError(404, "not_found", "bypass is off (GATEWAY_BYPASS_SECRET is empty)")

    async def form(self, request: Request) -> Response:
        self._require_enabled()
        return HTMLResponse(bypass_page(request), headers=NO_STORE_FIELDS)

    async def login(self, request: Request) -> Response:
        self._require_enabled()
        try:
            return await self._login(request)
        except RequestError as error:
            if not wants_html(request):
                raise
            # A browser that posted the form gets it again with the reason, not a page of JSON;
            # the status (and Retry-After) stay what an API client gets.
            headers = {**NO_STORE_FIELDS, **error.headers}
            return HTMLResponse(bypass_page(request, error.message), status_code=error.status, headers=headers)

    async def _login(self, request: Request) -> Response:
        client = self.context.trusted.client_address(request.scope)
        check_failure_limit(self.limiter, client)
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

    async def logout(self, request: Request) -> Response:
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
        raw = await read_body(request, self.body_timeout, MAX_BYPASS_BODY_BYTES)
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
