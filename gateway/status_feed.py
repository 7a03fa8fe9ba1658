"""What the gateway tells front ends and Django about maintenance, without a token.

``GET /_gateway/status`` is the public status feed a browser app polls: a tiny JSON
body saying no more than the 503 does, cacheable for a second, with an ETag so that a
poll that changed nothing is a bodiless 304. Like the 503, everything in it is built
when the state changes (and once a second while ``retry_after`` counts down); per
request the feed only picks a prebuilt answer for the request's Origin and ETag.

While maintenance applies, a request the bypass rules let through (the bypass cookie or
header, an address in GATEWAY_BYPASS_IPS: the rule and failure limit requests get) is
told so, ``"bypassed": true``, in an answer for that browser alone (``private, no-store``):
the cookie is HttpOnly, so the front end cannot see it and learns it here.

``notice_line`` is the ``X-Maintenance-Notice`` request header Django receives while a
window is upcoming, or read-only or partial maintenance applies, so a server-rendered
page can show the same banner.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from starlette.types import Receive, Scope, Send

from gateway.bounded_cache import ANSWER_CACHE_LIMIT, BoundedCache
from gateway.bypass import COOKIE_NAME_BYTES as BYPASS_COOKIE
from gateway.bypass import EXPIRED_COOKIE_HEADER
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.cors import GATEWAY_EXPOSED_HEADERS, CorsPolicy
from gateway.forwarding import NOTICE_HEADER
from gateway.http import JSON_TYPE, NO_STORE, VARY_ORIGIN, Answer, Headers, body_headers, json_bytes
from gateway.maintenance import MaintenanceResponder
from gateway.refresher import StateHolder
from gateway.settings import Settings
from gateway.state import MaintenanceState, format_time

# Browsers and shared caches may reuse an answer for a second: a thousand tabs polling
# every few seconds mostly cost a cache hit or a 304.
CACHE_CONTROL = (b"cache-control", b"public, max-age=1")
# The answer to one browser's bypass cookie or header: never stored, never shared.
PRIVATE_CACHE_CONTROL = (b"cache-control", b"private, no-store")
# With a bypass secret the answer depends on the cookie and the header too: a shared cache
# must not hand the public answer to a browser whose cookie lets it through.
VARY_ORIGIN_AND_BYPASS = (b"vary", b"Origin, Cookie, X-Maintenance-Bypass")
# Given the request (its scope, bypass header and Cookie header): whether it passes maintenance.
LetsThrough = Callable[[Scope, bytes | None, bytes | None], bool]
# The answers the feed has: the public one, its 304, the one to a client let through, and the
# public body with the bypass cookie expired (one that no longer lets the browser through).
Kind = Literal["public", "not_modified", "bypassed", "cookie_refused"]
_METHODS = b"GET, HEAD, OPTIONS"
_NOT_ALLOWED_BODY = json_bytes({"error": "method_not_allowed", "message": "the status feed answers GET and HEAD"})
# The request body, if any, is not read: the connection cannot carry another request.
_NOT_ALLOWED = Answer(
    405,
    [*body_headers(JSON_TYPE, _NOT_ALLOWED_BODY), NO_STORE, (b"allow", _METHODS), (b"connection", b"close")],
    _NOT_ALLOWED_BODY,
)


def status_payload(state: MaintenanceState, now: float, message: str, default_retry_after: int) -> dict[str, Any]:
    """The feed's body: nothing the 503 does not already say (no reason, no names, no version)."""
    active = state.active(now)
    upcoming = state.upcoming(now)
    if not (active or upcoming):
        return {
            "maintenance": False,
            "mode": "full",
            "scope": None,
            "label": None,
            "message": None,
            "starts_at": None,
            "ends_at": None,
            "upcoming": False,
            "retry_after": None,
            "bypassed": False,
        }
    retry_after = None
    if active:
        until_end = state.seconds_until_end(now)
        retry_after = default_retry_after if until_end is None else until_end
    return {
        "maintenance": active,
        "mode": state.mode,
        "scope": list(state.scope) if state.scope is not None else None,
        # What to call the scope for people, as the 503 says it (only with a scope).
        "label": (state.label or None) if state.scope is not None else None,
        "message": message,
        "starts_at": format_time(state.starts_at),
        "ends_at": format_time(state.ends_at),
        "upcoming": upcoming,
        "retry_after": retry_after,
        # The public answer: the one to a client the bypass rules let through says true.
        "bypassed": False,
    }


# The notice's value is kept within this many bytes by cutting the message: a request header
# line over 8190 bytes makes gunicorn (limit_request_field_size) refuse every forwarded request,
# and a message of 2000 characters escaped to ASCII (\uXXXX) can take 12 bytes a character.
NOTICE_VALUE_BUDGET = 4096
_CUT_MARK = "\u2026"


def notice_line(state: MaintenanceState, now: float) -> bytes:
    """The ``x-maintenance-notice`` header line for forwarded requests, or b"" when none applies.

    A notice applies while a window is upcoming, or while read-only or partial maintenance
    is on (full maintenance of the whole site forwards nothing but bypasses). The value is
    compact ASCII JSON (escapes for anything else: a header value is Latin-1 at best), keys
    with null values left out; ``message`` is the operator's own (left out when there is
    none, so Django can say it in the reader's language), cut to keep the value within
    ``NOTICE_VALUE_BUDGET``.
    """
    active = state.active(now)
    upcoming = state.upcoming(now)
    if not (upcoming or (active and (state.mode == "read-only" or state.scope is not None))):
        return b""
    fields: dict[str, Any] = {
        "mode": state.mode,
        "scope": list(state.scope) if state.scope is not None else None,
        "starts_at": format_time(state.starts_at),
        "ends_at": format_time(state.ends_at),
        "upcoming": upcoming,
    }
    present = {key: item for key, item in fields.items() if item is not None}
    value = json.dumps(present, separators=(",", ":"))
    if state.message:
        # What the message may take: the budget less the rest and its `,"message":""`.
        room = NOTICE_VALUE_BUDGET - len(value) - len(',"message":""')
        message = _within(state.message, room)
        if message:
            value = json.dumps({**present, "message": message}, separators=(",", ":"))
    return NOTICE_HEADER + b": " + value.encode("ascii") + b"\r\n"


def _within(message: str, room: int) -> str:
    """``message`` whole if its JSON escape fits in ``room`` bytes, else cut on a character
    boundary and marked with an ellipsis; "" when not even that fits."""
    if len(json.dumps(message)) - 2 <= room:
        return message
    room -= len(json.dumps(_CUT_MARK)) - 2
    kept = 0
    for index, char in enumerate(message):
        kept += len(json.dumps(char)) - 2
        if kept > room:
            return message[:index].rstrip() + _CUT_MARK if index else ""
    return message


def next_boundary(state: MaintenanceState, now: float) -> float:
    """The next moment what is said about ``state`` changes by itself (a window starts or ends)."""
    moment = state.next_change(now)
    return math.inf if moment is None else moment


def _etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 13.1.2: weak comparison against each listed tag, or ``*``."""
    for candidate in if_none_match.split(b","):
        tag = candidate.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


class StatusFeed:
    """``/_gateway/status`` as raw ASGI (GET, HEAD, and preflights from allowed origins)."""

    def __init__(
        self,
        settings: Settings,
        cors: CorsPolicy,
        responder: MaintenanceResponder,
        holder: StateHolder,
        lets_through: LetsThrough | None = None,
    ) -> None:
        self.cors = cors
        self.responder = responder
        self.holder = holder
        self.default_retry_after = settings.retry_after
        # The gateway's own rule for requests (``MaintenanceDecision.lets_through``); None: nobody passes.
        self.lets_through = lets_through
        self._by_secret = lets_through is not None and bool(settings.bypass_secret)
        self._by_address = lets_through is not None and bool(settings.bypass_ips)
        self._vary = VARY_ORIGIN_AND_BYPASS if self._by_secret else VARY_ORIGIN
        # Whether maintenance applies as the answers stand (the only time a bypass means anything).
        self._in_maintenance = False
        self.bypassed_body = b""
        # As the 503 exposes them, plus ETag: a script reads it to send If-None-Match itself.
        self._cors_extra = cors.simple_extra((*GATEWAY_EXPOSED_HEADERS, "ETag"))
        self._built_for: MaintenanceState | None = None
        self._valid_until = 0.0
        self.body = b""
        self.etag = b""
        self._headers: Headers = []
        self._not_modified_headers: Headers = []
        # Ready-to-send answers per (answer kind, Origin), dropped whenever the answer is rebuilt.
        self._answers: BoundedCache[tuple[Kind, bytes | None], Answer] = BoundedCache(self._answer, ANSWER_CACHE_LIMIT)

    def _build(self, state: MaintenanceState, now: float) -> None:
        payload = status_payload(state, now, self.responder.message_for(state), self.default_retry_after)
        self.body = json_bytes(payload)
        self.etag = b'"' + hashlib.blake2b(self.body, digest_size=12).hexdigest().encode("ascii") + b'"'
        self._in_maintenance = payload["maintenance"]
        self.bypassed_body = json_bytes({**payload, "bypassed": True}) if self._in_maintenance else self.body
        # The CORS headers depend on Origin; the public body on nothing in the request.
        common = [CACHE_CONTROL, (b"etag", self.etag), self._vary]
        self._headers = body_headers(JSON_TYPE, self.body) + common
        # RFC 9110 15.4.5: a 304 repeats the validators and caching headers, and has no body.
        self._not_modified_headers = common
        self._answers.clear()
        self._built_for = state
        boundary = next_boundary(state, now)
        # retry_after counts down each second while maintenance with an end applies.
        if payload["retry_after"] is not None and state.ends_at is not None:
            boundary = min(boundary, math.floor(now) + 1.0)
        self._valid_until = boundary

    def current(self, now: float) -> tuple[bytes, bytes]:
        """The body and ETag as they stand at ``now`` (rebuilt only when they change)."""
        state = self.holder.state
        if state is not self._built_for or now >= self._valid_until:
            self._build(state, now)
        return self.body, self.etag

    def _cors_headers(self, origin: bytes | None) -> Headers:
        return self.cors.simple_headers(origin, self._cors_extra)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope).send(send)

    def answer(self, scope: Scope) -> Answer:
        """The feed's answer to this request (synchronous: the connection protocol writes it
        with no ASGI in between)."""
        method = scope["method"]
        origin = if_none_match = bypass_header = cookie = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"access-control-request-method":
                preflight = True
            elif name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == BYPASS_HEADER:
                bypass_header = value
        if method == "OPTIONS":
            allowed = self.cors.preflight_headers(origin) if (preflight and origin is not None) else None
            return _NOT_ALLOWED if allowed is None else Answer(204, [VARY_ORIGIN, *allowed], b"")
        if method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        self.current(time.time())
        kind = self._bypass_kind(scope, bypass_header, cookie) if self._in_maintenance else None
        if kind is None:
            kind = "not_modified" if if_none_match is not None and _etag_matches(if_none_match, self.etag) else "public"
        return self._answers[(kind, origin)]

    def _bypass_kind(self, scope: Scope, bypass_header: bytes | None, cookie: bytes | None) -> Kind | None:
        """The private answer for a request the bypass rules concern, or None for the public one.

        Asked only of a request that presents the bypass header or cookie, or of every request
        when addresses may bypass; a wrong secret counts toward the failure limit, as it does on
        any other path, so the feed is no way round it."""
        presents_cookie = cookie is not None and BYPASS_COOKIE in cookie
        presents = self._by_secret and (bypass_header is not None or presents_cookie)
        if not (presents or self._by_address) or self.lets_through is None:
            return None
        if self.lets_through(scope, bypass_header if self._by_secret else None, cookie if self._by_secret else None):
            return "bypassed"
        # A bypass cookie that does not let the browser through is expired, as the 503 does.
        return "cookie_refused" if presents_cookie and self._by_secret else None

    def _answer(self, key: tuple[Kind, bytes | None]) -> Answer:
        kind, origin = key
        if kind == "not_modified":
            status, headers, body = 304, self._not_modified_headers, b""
        elif kind == "public":
            status, headers, body = 200, self._headers, self.body
        else:
            # For this browser alone: no ETag (nothing is stored to revalidate), never cached.
            body = self.bypassed_body if kind == "bypassed" else self.body
            headers = [*body_headers(JSON_TYPE, body), PRIVATE_CACHE_CONTROL, self._vary]
            if kind == "cookie_refused":
                headers.append(EXPIRED_COOKIE_HEADER)
            status = 200
        return Answer(status, headers + self._cors_headers(origin), body)

