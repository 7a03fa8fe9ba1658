"""Header rules for forwarding: hop-by-hop removal and the X-Forwarded-* family.

Kept apart from the proxy loop so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import ipaddress

from gateway.settings import Network

Headers = list[tuple[bytes, bytes]]

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
REQUEST_DROPPED = HOP_BY_HOP | {b"expect"}

# Set by proxies in front of the gateway: believed only from trusted peers.
FORWARDING_HEADERS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"forwarded", b"x-real-ip"}
)

_CACHE_LIMIT = 1024


def connection_named(value: bytes) -> set[bytes]:
    """Header names listed in a Connection header (RFC 9110 7.6.1), lower-cased."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()} - {b"close", b"keep-alive"}


class TrustedPeers:
    """Which peers may speak for the client in X-Forwarded-* (``GATEWAY_FORWARDED_ALLOW_IPS``)."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._cache: dict[str, bool] = {}

    def trusts(self, host: str) -> bool:
        cache = self._cache
        try:
            return cache[host]
        except KeyError:
            pass
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            trusted = False  # a unix socket path or garbage: never trusted
        else:
            trusted = any(address in network for network in self.networks)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[host] = trusted
        return trusted

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
