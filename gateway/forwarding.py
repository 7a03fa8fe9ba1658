"""Rules for forwarding: hop-by-hop removal, the X-Forwarded-* family, what a valid Host is,
the bypass cookie kept from Django, and which paths a bypass prefix covers.

Kept apart from the proxy loop so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from gateway.bounded_cache import BoundedCache
from gateway.http import Headers
from gateway.settings import Network

# RFC 9110 7.6.1 and the older names still seen in the wild. ``expect`` is answered
# by the gateway's own server (100 Continue), so it must not reach the upstream too.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# The gateway's own word to Django about maintenance (upcoming, read-only, partial): a
# client's copy is always dropped, so Django can trust the one the gateway adds.
NOTICE_HEADER = b"x-maintenance-notice"
REQUEST_DROPPED = HOP_BY_HOP | {b"expect", NOTICE_HEADER}

# Set by proxies in front of the gateway: believed only from trusted peers.
FORWARDING_HEADERS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"forwarded", b"x-real-ip"}
)


# Fields a Connection option never removes: an option names a field meant for the next hop
# only, and these are meant for Django (RFC 9110 7.6.1: a field "intended for all recipients"
# is never a connection option). Without this, "Connection: host" would send Django a request
# with no Host, and "Connection: x-forwarded-for" would hide the proxy chain.
NEVER_CONNECTION_OPTIONS = frozenset(
    {b"close", b"keep-alive", b"host", b"content-length", b"content-type", b"content-encoding"}
) | FORWARDING_HEADERS


def connection_named(value: bytes) -> set[bytes]:
    """Header names listed in a Connection header (RFC 9110 7.6.1), lower-cased, minus the
    end-to-end fields no option may remove."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()} - NEVER_CONNECTION_OPTIONS


# RFC 9112 3.2 / RFC 3986 3.2.2: Host = uri-host [ ":" port ], where uri-host is an IP literal
# in brackets or a reg-name (unreserved, sub-delims, %HH); empty is allowed (no authority).
_HOST_VALUE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")


def _well_formed_host(value: bytes) -> bool:
    return _HOST_VALUE.fullmatch(value) is not None


_valid_hosts: BoundedCache[bytes, bool] = BoundedCache(_well_formed_host)


def valid_host(value: bytes) -> bool:
    """Whether ``value`` is a well-formed Host field value; the few values a site sees are remembered."""
    return _valid_hosts[value]


def without_cookie(value: bytes, name: bytes) -> bytes:
    """A Cookie header value minus every pair named ``name`` (the other pairs byte for byte)."""
    return b"; ".join(
        pair for pair in (part.strip() for part in value.split(b";")) if pair and pair.partition(b"=")[0].strip() != name
    )


def bypass_prefixes(paths: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Bypass path prefixes as whole segments: ("/webhooks/", "/health") lets through
    "/webhooks", "/webhooks/..." and "/health", "/health/...", never "/healthXYZ".

    Returns what ``matches_bypass_path`` needs: the prefixes with their slash, and the exact paths.
    """
    stems = {path.rstrip("/") for path in paths}
    return tuple(stem + "/" for stem in sorted(stems)), frozenset(stem or "/" for stem in stems)


def matches_bypass_path(path: str, prefixes: tuple[str, ...], exact: frozenset[str]) -> bool:
    """Whether the (percent-decoded) ``path`` is under a bypass prefix, by whole segments.

    A path with a dot-segment ("." or "..", also when sent as %2e or around %2f) never
    matches: "/webhooks/../admin" is not under "/webhooks", whatever resolves it later.
    """
    if not (path.startswith(prefixes) or path in exact):
        return False
    return not has_dot_segment(path)


def has_dot_segment(path: str) -> bool:
    """Whether the (percent-decoded) ``path`` has a "." or ".." segment."""
    if "/." in path:
        for segment in path.split("/"):
            if segment == "." or segment == "..":
                return True
    return False


class TrustedPeers:
    """Which peers may speak for the client in X-Forwarded-* (``GATEWAY_FORWARDED_ALLOW_IPS``)."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._trusted: BoundedCache[str, bool] = BoundedCache(self._decide)

    def trusts(self, host: str) -> bool:
        return self._trusted[host]

    def _decide(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a unix socket path or garbage: never trusted
        return any(address in network for network in self.networks)

    def client_ip(self, peer: str, forwarded_for: bytes | None) -> str:
        """The client's address: walk X-Forwarded-For from the right while the hop is trusted."""
        if forwarded_for is None or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",")]
        client = peer
        for hop in reversed(hops):
            if not hop:
                break
            client = hop
            if not self.trusts(hop):
                break
        return client

    def client_address(self, scope: Mapping[str, Any]) -> str:
        """The client's address for a request: the one rule every decision about a client uses
        (the bypass IPs, the admin failure limit). Several X-Forwarded-For lines are one list,
        in order (RFC 9110 5.3), so a trusted proxy that adds its own line is walked past too.
        """
        client = scope.get("client")
        forwarded_for: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        return self.client_ip(client[0] if client else "", forwarded_for)


def response_headers(headers: Headers, status: int) -> Headers:
    """The upstream's response headers minus hop-by-hop ones (and a 204/304's length)."""
    kept: Headers = []
    named: set[bytes] | None = None
    for name, value in headers:
        if name in HOP_BY_HOP:
            if name == b"connection":
                named = connection_named(value) if named is None else named | connection_named(value)
            continue
        kept.append((name, value))
    if named:
        kept = [(name, value) for name, value in kept if name not in named]
    if status in (204, 304):
        # Such answers have no body; a length would make the server wait for one.
        kept = [(name, value) for name, value in kept if name != b"content-length"]
    return kept
