"""The maintenance decision: whether maintenance covers a request or a WebSocket handshake,
who the bypass rules let through, and, for a request it covers, the answer it gets.

One module for every path that asks: the connection protocol's callback path, the ASGI
application (in-process servers, streamed uploads) and the WebSocket relay all call
``MaintenanceDecision``, so a rule changed here changes for all of them.

The hot path is ``answer_for``: with maintenance off and the state unchanged (nearly every
request) it reads one attribute and compares two identities; no clock, no I/O.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.bounded_cache import BoundedCache
from gateway.bypass import COOKIE_NAME_BYTES as BYPASS_COOKIE
from gateway.bypass import EXPIRED_COOKIE_HEADER
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.bypass import BypassSecret
from gateway.failure_limit import FailureLimiter
from gateway.forwarding import TrustedPeers, segment_prefixes, under_segment_prefixes
from gateway.http import Answer
from gateway.maintenance import MaintenanceResponder
from gateway.metrics import Metrics
from gateway.refresher import StateHolder
from gateway.settings import Settings
from gateway.state import MaintenanceState, has_dot_segment
from gateway.status_feed import next_boundary, notice_line

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The request fields a maintenance answer is decided by: one lookup tells them from the rest.
_ORIGIN, _ACCEPT, _COOKIE, _REQUESTED_WITH, _PREFLIGHT, _BYPASS = range(6)
_ANSWER_FIELDS = {
    b"origin": _ORIGIN,
    b"accept": _ACCEPT,
    b"cookie": _COOKIE,
    b"x-requested-with": _REQUESTED_WITH,
    b"access-control-request-method": _PREFLIGHT,
    BYPASS_HEADER: _BYPASS,
}

Scope = Mapping[str, Any]


class CarriesNotice(Protocol):
    """What builds the forwarded request heads (the proxy): it adds the notice line it is given."""

    notice: bytes


class MaintenanceDecision:
    """Whether maintenance covers a request or a WebSocket handshake, who passes it, and the
    answer when it does: one rule for the callback path, the ASGI app and the WebSocket relay."""

    def __init__(
        self,
        settings: Settings,
        holder: StateHolder,
        responder: MaintenanceResponder,
        trusted: TrustedPeers,
        bypass: BypassSecret,
        failure_limiter: FailureLimiter,
        metrics: Metrics,
        forwarder: CarriesNotice,
    ) -> None:
        self.holder = holder
        self.forwarder = forwarder
        self.responder = responder
        self.trusted = trusted
        self.bypass = bypass
        self.failure_limiter = failure_limiter
        self.metrics = metrics
        self.bypass_paths = settings.bypass_paths
        self.bypass_prefixes, self.bypass_exact_paths = segment_prefixes(settings.bypass_paths)
        self.bypass_networks = settings.bypass_ips
        # Whether a client's address is in GATEWAY_BYPASS_IPS, parsed and matched once per address.
        self._bypassing_addresses: BoundedCache[str, bool] = BoundedCache(self._address_bypasses)
        # What forwarding needs from the state, decided once per state change (and again when a
        # window starts or ends): the scope's matching rules and the notice Django is sent.
        self._decided_for: MaintenanceState | None = None
        self._decided_until = math.inf
        self._scope_prefixes: tuple[str, ...] = ()
        self._scope_exact: frozenset[str] = frozenset()
        # Whether maintenance applies, as decided: it stays so until _decided_until.
        self._active = False
        # Whether any rule could let a client through (an address or a secret): else not asked.
        self._any_bypass = bool(self.bypass_networks) or bypass.enabled

    # -- the state as requests see it

    def keep_decided(self, state: MaintenanceState) -> float:
        """Bring what forwarding needs of ``state`` up to date (the scope's matching rules, the
        notice Django is sent) when the state changed or a window started or ended since.
        Returns the time it read, or 0.0 while maintenance is off (nothing then depends on the
        clock, and it is not read)."""
        if state.enabled:
            now = time.time()
            if state is not self._decided_for or now >= self._decided_until:
                self._decide(state, now)
            return now
        if state is not self._decided_for:
            self._decide(state, time.time())
        return 0.0

    def _decide(self, state: MaintenanceState, now: float) -> None:
        if state.scope is not None:
            self._scope_prefixes, self._scope_exact = segment_prefixes(state.scope)
        # The whole "x-maintenance-notice: ...\r\n" line while a notice applies, else b"".
        self.forwarder.notice = notice_line(state, now)
        self._active = state.active(now)
        self._decided_until = next_boundary(state, now)
        self._decided_for = state

    def covers(self, state: MaintenanceState, path: str) -> bool:
        """Whether maintenance in ``state`` (when it applies) covers ``path``: the whole site, or
        a path in its scope: under a prefix by whole segments, the rule of GATEWAY_BYPASS_PATHS.
        A path with a dot-segment counts as covered: whatever resolves it later may land under a
        prefix, and maintenance is the safe side."""
        if state.scope is None:
            return True
        self.keep_decided(state)
        return has_dot_segment(path) or path.startswith(self._scope_prefixes) or path in self._scope_exact

    def on_bypass_path(self, path: str) -> bool:
        return bool(self.bypass_paths) and under_segment_prefixes(path, self.bypass_prefixes, self.bypass_exact_paths)

    # -- who passes

    def _address_bypasses(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.bypass_networks)

    def lets_through(self, scope: Scope, bypass_header: bytes | None, cookie: bytes | None) -> bool:
        """Whether the client may pass maintenance: its address, the bypass header or cookie
        (requests and WebSockets alike; the caller has read the two headers already).

        A wrong header or bypass cookie counts toward the failure limit the admin API and the
        bypass form use, and a client over that limit is not let through by a secret at all
        (it gets the usual maintenance answer). Requests that present neither cost nothing more.
        """
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

    def socket_lets_through(self, scope: Scope) -> bool:
        """The bypass rules for a WebSocket handshake: path prefixes, client IPs, header or cookie."""
        if self.on_bypass_path(scope["path"]):
            return True
        bypass_header = cookie = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == BYPASS_HEADER:
                bypass_header = value
        return self.lets_through(scope, bypass_header, cookie)

    # -- requests

    def answer_for(self, scope: Scope) -> Answer | None:
        """The maintenance answer for this request (a 503, or a preflight's 204), or None when
        it is forwarded: maintenance is off, does not cover the path, or lets the request pass."""
        state = self.holder.state
        # keep_decided, inlined: with maintenance off and the state unchanged (nearly every
        # request) two compares are all it costs, and the clock is not read.
        if state is not self._decided_for:
            now = self.keep_decided(state)
        elif state.enabled:
            now = time.time()
            if now >= self._decided_until:
                self._decide(state, now)
        else:
            return None
        if not self._active:
            return None
        path: str = scope["path"]
        if state.scope is not None and not (
            has_dot_segment(path) or path.startswith(self._scope_prefixes) or path in self._scope_exact
        ):
            return None
        method = scope["method"]
        if (state.mode == "read-only" and method in SAFE_METHODS) or (self.bypass_paths and self.on_bypass_path(path)):
            self.metrics.bypassed += 1
            return None
        # One pass over the headers collects what the decision and the answer need (the client's
        # address, when a rule needs it, is read by ``TrustedPeers.client_address``).
        origin = accept = bypass_header = cookie = None
        xhr = preflight = False
        field_of = _ANSWER_FIELDS.get
        for name, value in scope["headers"]:
            field = field_of(name)
            if field is None:
                continue
            if field == _ORIGIN:
                origin = value
            elif field == _ACCEPT:
                accept = value
            elif field == _COOKIE:
                cookie = value if cookie is None else cookie + b"; " + value
            elif field == _REQUESTED_WITH:
                xhr = value.lower() == b"xmlhttprequest"
            elif field == _PREFLIGHT:
                preflight = True
            else:
                bypass_header = value
        if self._any_bypass and self.lets_through(scope, bypass_header, cookie):
            self.metrics.bypassed += 1
            return None
        if preflight and origin is not None and method == "OPTIONS":
            answer = self.responder.preflight_answer(state, now, origin)
            if answer is not None:
                self.metrics.preflight += 1
                return answer
        self.metrics.maintenance += 1
        answer = self.responder.answer(state, now, origin, accept, xhr)
        if cookie is not None and self.bypass.enabled and BYPASS_COOKIE in cookie:
            # A bypass cookie that did not let the request through is expired, so a browser holding
            # one from before a change of secret is counted once, not on every request it makes.
            return answer.with_header(EXPIRED_COOKIE_HEADER)
        return answer
