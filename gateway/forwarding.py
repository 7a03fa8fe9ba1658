"""Rules for forwarding: the request head Django gets (framing checks, hop-by-hop removal, the
X-Forwarded-* family, what a valid Host is, the bypass cookie kept from Django), the response
headers the client gets, and which paths a bypass prefix covers.

Kept apart from the proxy loop so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from gateway.bounded_cache import BoundedCache
from gateway.bypass import COOKIE_NAME_BYTES as BYPASS_COOKIE
from gateway.bypass import HEADER_NAME as BYPASS_HEADER
from gateway.errors import BadRequest
from gateway.http import Headers
from gateway.settings import Network
from gateway.state import has_dot_segment

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


def segment_prefixes(paths: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Path prefixes as whole segments (bypass paths, and a partial maintenance's scope):
    ("/webhooks/", "/health") covers "/webhooks", "/webhooks/..." and "/health", "/health/...",
    never "/healthXYZ".

    Returns what ``under_segment_prefixes`` needs: the prefixes with their slash, and the exact paths.
    """
    stems = {path.rstrip("/") for path in paths}
    return tuple(stem + "/" for stem in sorted(stems)), frozenset(stem or "/" for stem in stems)


def under_segment_prefixes(path: str, prefixes: tuple[str, ...], exact: frozenset[str]) -> bool:
    """Whether the (percent-decoded) ``path`` is under one of ``segment_prefixes``' prefixes,
    by whole segments: the rule that lets a bypass path through.

    A path with a dot-segment ("." or "..", also when sent as %2e or around %2f) never
    matches: "/webhooks/../admin" is not under "/webhooks", whatever resolves it later. (A
    maintenance scope takes the other side: such a path counts as covered; see app.py.)
    """
    if not (path.startswith(prefixes) or path in exact):
        return False
    return not has_dot_segment(path)


# The client's address when the X-Forwarded-For entry that names it is not an IP address: it
# matches no GATEWAY_BYPASS_IPS, and every such client shares one failure-limit budget (so
# made-up entries buy no fresh budgets and no log line repeats what a client wrote).
UNKNOWN_CLIENT = "unknown"


def _address_or_unknown(entry: bytes) -> str:
    """One X-Forwarded-For entry as the client's address: the IP address in its usual
    spelling, or UNKNOWN_CLIENT."""
    try:
        return str(ipaddress.ip_address(entry.decode("latin-1").strip(" \t")))
    except ValueError:
        return UNKNOWN_CLIENT


class TrustedPeers:
    """Which peers may speak for the client in X-Forwarded-* (``GATEWAY_FORWARDED_ALLOW_IPS``),
    and how many proxies in front of the gateway append to X-Forwarded-For
    (``GATEWAY_FORWARDED_HOPS``; 0: walk past the trusted ones instead)."""

    def __init__(self, networks: tuple[Network, ...], hops: int = 0) -> None:
        self.networks = networks
        self.hops = hops
        self._trusted: BoundedCache[str, bool] = BoundedCache(self._decide)
        self._addresses: BoundedCache[bytes, str] = BoundedCache(_address_or_unknown)

    def trusts(self, host: str) -> bool:
        return self._trusted[host]

    def _decide(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a unix socket path or garbage: never trusted
        return any(address in network for network in self.networks)

    def client_ip(self, peer: str, forwarded_for: bytes | None) -> str:
        """The client's address, when the peer is trusted, from X-Forwarded-For.

        With ``hops`` (N): the N-th entry from the right, which the outermost of the N proxies
        wrote as its own peer, so nothing a client (or a host beside the proxies) writes to the
        left of it counts; with fewer than N entries, the leftmost, which the closest proxy
        wrote (Django REST framework's NUM_PROXIES rule). An entry that is not an IP address
        gives UNKNOWN_CLIENT. Without ``hops``: walk from the right while the hop is trusted,
        which any host inside a trusted CIDR can steer by adding its own entries.
        """
        if forwarded_for is None or not self.trusts(peer):
            return peer
        if self.hops:
            # rsplit: the entries a client wrote on the left are never split, however many.
            entries = forwarded_for.rsplit(b",", self.hops)
            return self._addresses[entries[-min(self.hops, len(entries))]]
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
        (the bypass IPs, the admin failure limit, the bypass login). Several X-Forwarded-For
        lines are one list, in order (RFC 9110 5.3), so a trusted proxy that adds its own line
        is counted (or walked past) too.
        """
        client = scope.get("client")
        forwarded_for: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        return self.client_ip(client[0] if client else "", forwarded_for)


def response_headers(headers: Headers, status: int, hop_by_hop: bool = True) -> Headers:
    """The upstream's response headers minus hop-by-hop ones (and a 204/304's length).

    ``hop_by_hop`` False says none came (``UpstreamConnection`` notes them as they arrive):
    most of Django's answers are then relayed as they are, with no pass over them."""
    if not hop_by_hop and status != 204 and status != 304:
        return headers
    # A loop, not a comprehension: in Python 3.11 a comprehension is a function call of its own.
    kept: Headers = []
    keep = kept.append
    for header in headers:
        if header[0] not in HOP_BY_HOP:
            keep(header)
    if len(kept) != len(headers):
        # A hop-by-hop field came (rare from Django): a Connection field may name more to drop.
        named: set[bytes] = set()
        for name, value in headers:
            if name == b"connection":
                named |= connection_named(value)
        if named:
            kept = [header for header in kept if header[0] not in named]
    if status in (204, 304):
        # Such answers have no body; a length would make the server wait for one.
        kept = [header for header in kept if header[0] != b"content-length"]
    return kept


# How a client framed its request body (RFC 9112 6).
NO_BODY, LENGTH_BODY, CHUNKED_BODY = 0, 1, 2

# What ``request_head`` does with a header it looks at; every other header is kept as it came.
_FORWARDED_FOR, _FORWARDED_PROTO, _FORWARDED_HOST, _FORWARDED_OTHER = 1, 2, 3, 4
_HOST, _DROPPED, _LENGTH, _TRANSFER_ENCODING, _CONNECTION, _COOKIE, _BYPASS = 5, 6, 7, 8, 9, 10, 11
_HEADER_KINDS: dict[bytes, int] = {
    **{name: _DROPPED for name in REQUEST_DROPPED},
    **{name: _FORWARDED_OTHER for name in FORWARDING_HEADERS},
    b"x-forwarded-for": _FORWARDED_FOR,
    b"x-forwarded-proto": _FORWARDED_PROTO,
    b"x-forwarded-host": _FORWARDED_HOST,
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"cookie": _COOKIE,
    BYPASS_HEADER: _BYPASS,
}
# The methods nearly every request has, as bytes: a lookup costs less than encoding them again.
_METHOD_BYTES = {method: method.encode("ascii") for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
# A header as a field line (without its CRLF): joining the pair costs less than formatting it.
FIELD_LINE = b": ".join
# _OWS: white space after a field value is not part of it (RFC 9110 5.5), but llhttp passes it
# on; the two fields whose value is checked are stripped, only when the check fails (nearly
# never), so a value followed by white space is read as the value alone, at no cost to a
# normal request.


def request_head(
    scope: Mapping[str, Any], trusted_peers: TrustedPeers, upstream_authority: bytes, notice: bytes
) -> tuple[bytes, int, bytes]:
    """The request line and headers for the upstream (without framing or the blank line),
    how the client framed the body, and its Content-Length if it sent one.

    ``notice`` is a whole header line the gateway adds (or b""); ``upstream_authority`` is the
    Host an HTTP/1.0 request without one is given. Raises BadRequest for a request Django would
    misread: ambiguous framing, a header name with an underscore, no Host in HTTP/1.1, two
    Hosts or an invalid one.
    """
    client = scope.get("client")
    peer = client[0] if client else ""
    trusted: bool | None = None  # whether the peer may speak for the client: asked at the first X-Forwarded-*
    kept: Headers = []
    keep = kept.append
    body = NO_BODY
    length = b""
    host = forwarded_for = forwarded_proto = forwarded_host = named = None
    for header in scope["headers"]:
        name, value = header
        # One dict lookup tells the headers read here from the rest (nearly all of them).
        kind = _HEADER_KINDS.get(name)
        if kind is None:
            if b"_" in name:
                # WSGI turns X-User_Id and X-User-Id into the same HTTP_X_USER_ID: one could pose as the other.
                raise BadRequest(f"header {name.decode('latin-1')!r}: underscores are not allowed in header names")
            keep(header)
        elif kind == _HOST:
            # RFC 9112 3.2: more than one Host, or an invalid one, is refused with 400.
            if host is not None:
                raise BadRequest("more than one Host header (RFC 9112 3.2)")
            if not _valid_hosts[value]:  # valid_host, inlined
                value = value.strip(b" \t")  # see _OWS
                if not valid_host(value):
                    raise BadRequest("invalid Host header (RFC 9112 3.2)")
                header = (name, value)
            host = value
            keep(header)
        elif kind == _DROPPED:
            continue
        elif kind <= _FORWARDED_OTHER:
            if trusted is None:
                trusted = trusted_peers.trusts(peer) if peer else False
            if not trusted:
                continue  # an untrusted client cannot forge or pre-fill them
            if kind == _FORWARDED_FOR:
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            elif kind == _FORWARDED_PROTO:
                forwarded_proto = value
            elif kind == _FORWARDED_HOST:
                forwarded_host = value
            else:
                keep(header)
        elif kind == _LENGTH:
            if not value.isdigit():
                value = value.strip(b" \t")  # see _OWS
                if not value.isdigit():
                    raise BadRequest("ambiguous Content-Length (RFC 9112 6.3)")
            # A length beside chunked, or two lengths, is how requests are smuggled (RFC 9112 6.3).
            if body == CHUNKED_BODY or (length and length != value):
                raise BadRequest("ambiguous Content-Length (RFC 9112 6.3)")
            length = value
            body = LENGTH_BODY
        elif kind == _TRANSFER_ENCODING:
            # Only a single "chunked" is unambiguous; the parsers let some other forms through.
            if body != NO_BODY or value.strip().lower() != b"chunked":
                raise BadRequest("ambiguous Transfer-Encoding (RFC 9112 6.1)")
            body = CHUNKED_BODY
        elif kind == _CONNECTION:
            named = connection_named(value) if named is None else named | connection_named(value)
        elif kind == _COOKIE:
            # The bypass cookie and header are the gateway's: Django (its logs, its error
            # reports) never sees them.
            if BYPASS_COOKIE in value:
                value = without_cookie(value, BYPASS_COOKIE)
                if not value:
                    continue
                header = (name, value)
            keep(header)
        # else: the bypass header, never forwarded
    if named:
        kept = [header for header in kept if header[0] not in named]
    if host is None:
        if scope["http_version"] == "1.1":
            raise BadRequest("no Host header (RFC 9112 3.2)")
        # An HTTP/1.0 client may omit Host; HTTP/1.1 requires one upstream.
        host = upstream_authority
        kept.append((b"host", host))
    peer_bytes = peer.encode("latin-1")
    query = scope["query_string"]
    target = scope["raw_path"] + b"?" + query if query else scope["raw_path"]
    method = scope["method"]
    head = b"%s %s HTTP/1.1\r\n%s\r\nx-forwarded-for: %s\r\nx-forwarded-proto: %s\r\nx-forwarded-host: %s\r\n%s" % (
        _METHOD_BYTES.get(method) or method.encode("ascii"),
        target,
        b"\r\n".join(map(FIELD_LINE, kept)),  # never empty: Host is always there
        forwarded_for + b", " + peer_bytes if forwarded_for else peer_bytes,
        forwarded_proto or (b"https" if scope["scheme"] == "https" else b"http"),
        forwarded_host or host,
        notice,
    )
    return head, body, length
