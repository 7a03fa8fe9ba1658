"""The request head the gateway sends Django, rule by rule, in-process (``forwarding.request_head``).

The same rules are proved against real processes in test_proxy.py and test_forwarding_rules.py;
here each one is read on its own, with the exact bytes the upstream would get.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from gateway.errors import BadRequest
from gateway.forwarding import CHUNKED_BODY, LENGTH_BODY, NO_BODY, UNKNOWN_CLIENT, TrustedPeers, request_head

PROXY_IP = "10.0.0.7"
CLIENT_IP = "203.0.113.9"
TRUSTED = TrustedPeers((ipaddress.ip_network("10.0.0.0/8"),))
NOTICE = b"x-maintenance-notice: read-only\r\n"


def scope(*headers: tuple[bytes, bytes], peer: str = CLIENT_IP, http_version: str = "1.1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": http_version,
        "method": "GET",
        "scheme": "http",
        "raw_path": b"/a%20b/c",
        "query_string": b"",
        "headers": list(headers),
        "client": (peer, 50000) if peer else None,
        **extra,
    }


def head_of(request: dict[str, Any], notice: bytes = b"") -> tuple[bytes, int, bytes]:
    return request_head(request, TRUSTED, b"upstream.internal:8000", notice)


def header_lines(request: dict[str, Any], notice: bytes = b"") -> list[bytes]:
    head, _, _ = head_of(request, notice)
    return head.split(b"\r\n")[1:-1]


HOST = (b"host", b"shop.example")


def test_a_plain_request_gets_its_line_its_host_and_the_forwarding_headers() -> None:
    head, body, length = head_of(scope(HOST, (b"accept", b"*/*"), query_string=b"q=1&r=%2F"))
    assert head == (
        b"GET /a%20b/c?q=1&r=%2F HTTP/1.1\r\n"
        b"host: shop.example\r\n"
        b"accept: */*\r\n"
        b"x-forwarded-for: 203.0.113.9\r\n"
        b"x-forwarded-proto: http\r\n"
        b"x-forwarded-host: shop.example\r\n"
    )
    assert (body, length) == (NO_BODY, b"")


def test_the_maintenance_notice_line_is_added_and_a_clients_copy_dropped() -> None:
    lines = header_lines(scope(HOST, (b"x-maintenance-notice", b"forged")), NOTICE)
    assert lines[-1] == NOTICE[:-2]
    assert [line for line in lines if line.startswith(b"x-maintenance-notice")] == [NOTICE[:-2]]


# -- framing


def test_a_length_or_chunked_body_is_reported_and_its_framing_left_to_the_proxy() -> None:
    head, body, length = head_of(scope(HOST, (b"content-length", b"42")))
    assert (body, length) == (LENGTH_BODY, b"42") and b"content-length" not in head
    head, body, length = head_of(scope(HOST, (b"transfer-encoding", b"Chunked ")))
    assert (body, length) == (CHUNKED_BODY, b"") and b"transfer-encoding" not in head


@pytest.mark.parametrize(
    "framing",
    [
        [(b"transfer-encoding", b"gzip, chunked")],
        [(b"transfer-encoding", b"chunked, chunked")],
        [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")],
        [(b"transfer-encoding", b"identity")],
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")],
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
    ],
)
def test_ambiguous_transfer_encoding_is_refused(framing: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(BadRequest, match="ambiguous"):
        head_of(scope(HOST, *framing))


@pytest.mark.parametrize(
    "lengths",
    [[b"5", b"6"], [b"5", b"05"], [b"-1"], [b"5, 5"], [b"5 5"], [b"0x10"], [b""], [b" "]],
    ids=["conflicting", "same-number-other-bytes", "negative", "list", "inner-space", "hex", "empty", "white-space-only"],
)
def test_conflicting_or_malformed_content_length_is_refused(lengths: list[bytes]) -> None:
    with pytest.raises(BadRequest, match=r"ambiguous Content-Length \(RFC 9112 6.3\)"):
        head_of(scope(HOST, *[(b"content-length", value) for value in lengths]))


def test_white_space_around_a_content_length_is_not_part_of_it() -> None:
    # White space after a field value is not part of it (RFC 9110 5.5); llhttp passes it on.
    _, body, length = head_of(scope(HOST, (b"content-length", b"5 \t")))
    assert (body, length) == (LENGTH_BODY, b"5")
    head, _, _ = head_of(scope((b"host", b"shop.example "), (b"content-length", b"5")))
    assert b"host: shop.example\r\n" in head


def test_a_repeated_identical_content_length_is_one_length() -> None:
    _, body, length = head_of(scope(HOST, (b"content-length", b"7"), (b"content-length", b"7")))
    assert (body, length) == (LENGTH_BODY, b"7")


# -- Host


def test_two_host_lines_are_refused() -> None:
    with pytest.raises(BadRequest, match="more than one Host"):
        head_of(scope(HOST, HOST))


@pytest.mark.parametrize("value", [b"shop example", b"shop.example/evil", b"a@b", b"[::1", b"shop.example:80:80", b"\xff"])
def test_an_invalid_host_is_refused(value: bytes) -> None:
    with pytest.raises(BadRequest, match="invalid Host"):
        head_of(scope((b"host", value)))


def test_no_host_is_refused_in_http_1_1_and_filled_in_for_http_1_0() -> None:
    with pytest.raises(BadRequest, match="no Host header"):
        head_of(scope())
    lines = header_lines(scope(http_version="1.0"))
    assert lines[0] == b"host: upstream.internal:8000"
    assert b"x-forwarded-host: upstream.internal:8000" in lines


# -- header names


@pytest.mark.parametrize("name", [b"x-user_id", b"_", b"x_forwarded_for", b"content_length"])
def test_underscores_in_names_are_refused(name: bytes) -> None:
    with pytest.raises(BadRequest, match="underscores are not allowed"):
        head_of(scope(HOST, (name, b"1")))


def test_odd_bytes_are_read_as_latin_1_never_as_lone_surrogates() -> None:
    # Read as UTF-8 with surrogateescape these would be lone surrogates, which no JSON answer can encode.
    with pytest.raises(BadRequest) as raised:
        head_of(scope(HOST, (b"x_\xed\xa0\x80\xff", b"1")))
    message = str(raised.value)
    assert message == "header 'x_\xed\\xa0\\x80\xff': underscores are not allowed in header names"
    assert not any("\ud800" <= character <= "\udfff" for character in message)
    assert json.loads(json.dumps({"message": message}, ensure_ascii=False).encode("utf-8"))["message"] == message
    # In values they are passed on byte for byte.
    lines = header_lines(scope(HOST, (b"x-note", b"caf\xe9 \xed\xa0\x80"), (b"cookie", b"a=\xff\xfe")))
    assert b"x-note: caf\xe9 \xed\xa0\x80" in lines and b"cookie: a=\xff\xfe" in lines


# -- hop-by-hop


def test_hop_by_hop_headers_and_the_ones_connection_names_are_removed() -> None:
    request = scope(
        HOST,
        (b"connection", b"keep-alive, X-Secret-Hop"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"trailer", b"x-checksum"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"proxy-connection", b"keep-alive"),
        (b"expect", b"100-continue"),
        (b"x-secret-hop", b"1"),
        (b"connection", b"x-other-hop"),
        (b"x-other-hop", b"2"),
        (b"x-kept", b"3"),
    )
    assert header_lines(request) == [
        b"host: shop.example",
        b"x-kept: 3",
        b"x-forwarded-for: 203.0.113.9",
        b"x-forwarded-proto: http",
        b"x-forwarded-host: shop.example",
    ]


def test_connection_cannot_remove_host_framing_or_forwarding_headers() -> None:
    request = scope(
        HOST,
        (b"connection", b"host, content-length, content-type, x-forwarded-for, x-forwarded-proto, x-forwarded-host, close"),
        (b"connection", b"x-forwarded-port, forwarded, x-real-ip"),
        (b"content-length", b"2"),
        (b"content-type", b"text/plain"),
        (b"x-forwarded-port", b"443"),
        (b"forwarded", b"for=198.51.100.1"),
        (b"x-real-ip", b"198.51.100.1"),
        peer=PROXY_IP,
    )
    lines = header_lines(request)
    assert lines[:5] == [
        b"host: shop.example",
        b"content-type: text/plain",
        b"x-forwarded-port: 443",
        b"forwarded: for=198.51.100.1",
        b"x-real-ip: 198.51.100.1",
    ]
    assert [line.split(b":")[0] for line in lines if line.startswith(b"x-forwarded-")] == [
        b"x-forwarded-port",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    ]
    assert head_of(request)[1:] == (LENGTH_BODY, b"2")


# -- X-Forwarded-*

FORWARDED = (
    (b"x-forwarded-for", b"198.51.100.1"),
    (b"x-forwarded-for", b"198.51.100.2"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"www.shop.example"),
    (b"x-forwarded-port", b"443"),
    (b"forwarded", b"for=198.51.100.1"),
    (b"x-real-ip", b"198.51.100.1"),
)


def test_forwarding_headers_from_a_trusted_peer_are_extended() -> None:
    lines = header_lines(scope(HOST, *FORWARDED, peer=PROXY_IP))
    assert lines == [
        b"host: shop.example",
        b"x-forwarded-port: 443",
        b"forwarded: for=198.51.100.1",
        b"x-real-ip: 198.51.100.1",
        b"x-forwarded-for: 198.51.100.1, 198.51.100.2, 10.0.0.7",
        b"x-forwarded-proto: https",
        b"x-forwarded-host: www.shop.example",
    ]


@pytest.mark.parametrize("peer", [CLIENT_IP, "", "/run/gateway.sock"], ids=["untrusted", "no-peer", "unix-socket"])
def test_forwarding_headers_from_an_untrusted_peer_are_replaced(peer: str) -> None:
    lines = header_lines(scope(HOST, *FORWARDED, peer=peer))
    assert lines == [
        b"host: shop.example",
        b"x-forwarded-for: " + peer.encode(),
        b"x-forwarded-proto: http",
        b"x-forwarded-host: shop.example",
    ]


# -- the client's address, counted (GATEWAY_FORWARDED_HOPS): the stack's ALB -> nginx -> gateway

NGINX = "127.0.0.1"
ALB = "10.20.0.5"  # the ALB's private address, which nginx appends
VPC_HOST = "10.20.3.4"  # another host in the VPC, reaching the ALB on its private address
BYPASS_IP = "192.0.2.1"  # an operator's address, in GATEWAY_BYPASS_IPS
COUNTED = TrustedPeers((ipaddress.ip_network(NGINX),), hops=2)
# What the stack used to set: nginx and the whole VPC trusted, the chain walked.
WALKED = TrustedPeers((ipaddress.ip_network(NGINX), ipaddress.ip_network("10.20.0.0/16")))


def client_of(peers: TrustedPeers, *forwarded_for: bytes, peer: str = NGINX) -> str:
    return peers.client_address(scope(HOST, *((b"x-forwarded-for", line) for line in forwarded_for), peer=peer))


def test_the_client_is_the_entry_the_outermost_of_the_counted_proxies_wrote() -> None:
    assert client_of(COUNTED, b"198.51.100.7, 10.20.0.5") == "198.51.100.7"
    assert client_of(COUNTED, b"198.51.100.7,10.20.0.5") == "198.51.100.7"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        # A host in the VPC writes an operator's address; the ALB appends the host, nginx the ALB.
        (f"{BYPASS_IP}, {VPC_HOST}, {ALB}".encode(), VPC_HOST),
        # The same, dressed up as more VPC and loopback hops.
        (f"{BYPASS_IP}, 10.20.0.9, 127.0.0.1, {VPC_HOST}, {ALB}".encode(), VPC_HOST),
        # A client on the internet writing whatever it likes on the left.
        (f"{BYPASS_IP}, 127.0.0.1, not-an-ip, 198.51.100.7, {ALB}".encode(), "198.51.100.7"),
        (b", , ,198.51.100.7, " + ALB.encode(), "198.51.100.7"),
    ],
    ids=["vpc-host", "vpc-host-more-hops", "internet-client", "empty-entries"],
)
def test_entries_written_left_of_the_counted_proxies_never_count(forwarded_for: bytes, client: str) -> None:
    assert client_of(COUNTED, forwarded_for) == client
    if client == VPC_HOST:
        # Why the count: a walk past a trusted VPC CIDR lands on what the host wrote.
        assert client_of(WALKED, forwarded_for) == BYPASS_IP


def test_fewer_entries_than_the_count_give_the_leftmost_one() -> None:
    # Straight to nginx (the ALB's own health check, a client inside the task): nginx wrote
    # its peer and nothing else.
    assert client_of(COUNTED, ALB.encode()) == ALB
    assert client_of(TrustedPeers((ipaddress.ip_network(NGINX),), hops=5), b"198.51.100.7, 10.20.0.5") == "198.51.100.7"
    # No X-Forwarded-For at all: the peer itself.
    assert client_of(COUNTED) == NGINX


def test_several_x_forwarded_for_lines_are_one_list() -> None:
    assert client_of(COUNTED, BYPASS_IP.encode(), f"198.51.100.7, {ALB}".encode()) == "198.51.100.7"
    assert client_of(COUNTED, f"{BYPASS_IP}, 198.51.100.7".encode(), ALB.encode()) == "198.51.100.7"
    assert client_of(COUNTED, f"{BYPASS_IP}, 198.51.100.7".encode(), VPC_HOST.encode(), ALB.encode()) == VPC_HOST


def test_ipv6_entries_are_counted_and_given_in_their_usual_spelling() -> None:
    assert client_of(COUNTED, b"2001:db8::1, 2001:DB8:0:0:0:0:0:7 , fd00::5") == "2001:db8::7"
    assert client_of(COUNTED, b"[2001:db8::1], 2001:db8:5::9, 10.20.0.5") == "2001:db8:5::9"
    assert client_of(COUNTED, b"::ffff:198.51.100.7, 10.20.0.5") == "::ffff:c633:6407"


@pytest.mark.parametrize(
    "entry",
    [b"unknown", b"", b" ", b"198.51.100.7:4711", b"[2001:db8::7]", b"198.51.100.300", b"_hidden", b"198.51.100.7\xff", b"x" * 4000],
    ids=["unknown", "empty", "blank", "with-port", "bracketed", "out-of-range", "obfuscated", "latin-1", "long"],
)
def test_an_entry_that_is_not_an_ip_address_is_an_unknown_client(entry: bytes) -> None:
    # It matches no bypass CIDR and shares one failure budget; what the entry said goes nowhere.
    assert client_of(COUNTED, b"192.0.2.1, " + entry + b", 10.20.0.5") == UNKNOWN_CLIENT
    assert client_of(COUNTED, entry + b", 10.20.0.5") == UNKNOWN_CLIENT


@pytest.mark.parametrize("peer", [CLIENT_IP, ALB, VPC_HOST, "", "/run/gateway.sock"])
def test_an_untrusted_peers_x_forwarded_for_is_ignored_when_counting(peer: str) -> None:
    forwarded_for = f"{BYPASS_IP}, 198.51.100.7, {ALB}".encode()
    assert client_of(COUNTED, forwarded_for) == "198.51.100.7"
    assert client_of(COUNTED, forwarded_for, peer=peer) == peer


def test_the_count_is_the_one_the_settings_give_the_gateway() -> None:
    from gateway.app import Gateway
    from gateway.settings import load_settings

    settings = load_settings({"GATEWAY_FORWARDED_HOPS": "2", "GATEWAY_STORE": "memory:", "GATEWAY_BYPASS_IPS": BYPASS_IP})
    gateway = Gateway(settings)
    spoofed = scope(HOST, (b"x-forwarded-for", f"{BYPASS_IP}, {VPC_HOST}, {ALB}".encode()), peer=NGINX)
    honest = scope(HOST, (b"x-forwarded-for", f"{BYPASS_IP}, {ALB}".encode()), peer=NGINX)
    assert gateway.trusted.client_address(spoofed) == VPC_HOST
    assert not gateway.decision.lets_through(spoofed, None, None)
    assert gateway.decision.lets_through(honest, None, None)


# -- the bypass secret


def test_the_bypass_header_and_cookie_are_kept_from_django_and_other_cookies_intact() -> None:
    request = scope(
        HOST,
        (b"x-maintenance-bypass", b"secret"),
        (b"cookie", b"sessionid=abc;  maintenance_bypass=token ; csrftoken=x=y"),
        (b"cookie", b"maintenance_bypass=token"),
        (b"cookie", b"theme=dark"),
    )
    lines = header_lines(request)
    assert [line for line in lines if line.startswith((b"cookie", b"x-maintenance-bypass"))] == [
        b"cookie: sessionid=abc; csrftoken=x=y",
        b"cookie: theme=dark",
    ]


def test_a_cookie_that_only_looks_like_the_bypass_cookie_is_kept() -> None:
    lines = header_lines(scope(HOST, (b"cookie", b"xmaintenance_bypass=1; maintenance_bypass_old=2")))
    assert b"cookie: xmaintenance_bypass=1; maintenance_bypass_old=2" in lines


# -- the names websocket.py relies on
