"""The public status feed (/_gateway/status) over real HTTP: body, caching, ETag, CORS."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import CORS_ENV, FRONT_ORIGIN, OTHER_ORIGIN, Gateway

FEED_KEYS = {"maintenance", "mode", "scope", "label", "message", "starts_at", "ends_at", "upcoming", "retry_after", "bypassed"}
ANGULAR_ACCEPT = "application/json, text/plain, */*"


def feed(gateway: Gateway, **headers: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/_gateway/status", headers=headers, timeout=5)


def test_without_maintenance_the_feed_says_so_and_nothing_else(raw_gateway: Gateway) -> None:
    response = feed(raw_gateway)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
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
    # Compact JSON: the body a thousand tabs fetch is as small as it can be.
    assert b" " not in response.content
    assert response.headers["cache-control"] == "public, max-age=1"
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')
    assert response.headers["vary"] == "Origin"


def test_during_maintenance_the_feed_says_what_the_503_says(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Upgrading the database", ends_at=time.time() + 1800, reason="secret-reason-42")
    status = feed(raw_gateway).json()
    refused = httpx.get(f"{raw_gateway.url}/echo", headers={"Accept": ANGULAR_ACCEPT}, timeout=5).json()
    assert set(status) == FEED_KEYS
    assert status["maintenance"] is True and status["upcoming"] is False
    assert status["scope"] is None and status["starts_at"] is None
    for key in ("message", "mode", "ends_at"):
        assert status[key] == refused[key]
    assert abs(status["retry_after"] - refused["retry_after"]) <= 1
    text = feed(raw_gateway).text
    # Never what the 503 does not say: the reason, who changed it, the version.
    assert "secret-reason-42" not in text and "tests" not in text and "version" not in text


def test_the_feed_needs_no_token_and_reads_like_the_503_from_another_origin(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    allowed = feed(raw_gateway, Origin=FRONT_ORIGIN)
    other = feed(raw_gateway, Origin=OTHER_ORIGIN)
    assert allowed.status_code == other.status_code == 200
    assert allowed.json()["retry_after"] == 300  # GATEWAY_RETRY_AFTER without an end
    assert allowed.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    exposed = {item.strip().lower() for item in allowed.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "retry-after", "x-maintenance-mode"} <= exposed
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        f"{raw_gateway.url}/_gateway/status",
        headers={"Origin": FRONT_ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-client-version"},
        timeout=5,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == FRONT_ORIGIN
    refused = httpx.options(
        f"{raw_gateway.url}/_gateway/status",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "GET"},
        timeout=5,
    )
    assert refused.status_code == 405 and "access-control-allow-origin" not in refused.headers


def test_an_upcoming_window_is_announced_with_what_it_will_be(raw_gateway: Gateway) -> None:
    now = time.time()
    state = raw_gateway.turn_on(
        message="Checkout pauses tonight", mode="read-only", starts_at=now + 3600, ends_at=now + 7200, scope=("/api/checkout",),
        label="Checkout",
    )
    status = feed(raw_gateway).json()
    assert status == {
        "maintenance": False,
        "mode": "read-only",
        "scope": ["/api/checkout/"],
        "label": "Checkout",
        "message": "Checkout pauses tonight",
        "starts_at": state.to_item()["starts_at"],
        "ends_at": state.to_item()["ends_at"],
        "upcoming": True,
        "retry_after": None,
        "bypassed": False,
    }


def test_if_none_match_gets_a_bodiless_304_until_the_state_changes(raw_gateway: Gateway) -> None:
    first = feed(raw_gateway, Origin=FRONT_ORIGIN)
    etag = first.headers["etag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = feed(raw_gateway, **{"If-None-Match": sent, "Origin": FRONT_ORIGIN})
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=1"
        assert again.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert feed(raw_gateway, **{"If-None-Match": '"stale"'}).status_code == 200
    raw_gateway.turn_on(message="Now down")
    changed = feed(raw_gateway, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["maintenance"] is True
    assert changed.headers["etag"] != etag
    # The same body has the same tag, whichever request built it.
    assert feed(raw_gateway).headers["etag"] == changed.headers["etag"]


def test_head_is_answered_like_get_without_a_body(raw_gateway: Gateway) -> None:
    get = feed(raw_gateway)
    head = httpx.head(f"{raw_gateway.url}/_gateway/status", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == str(len(get.content))


def test_other_methods_are_refused_with_a_json_405(raw_gateway: Gateway) -> None:
    response = httpx.post(f"{raw_gateway.url}/_gateway/status", content=b"x" * 10, timeout=5)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_a_scheduled_window_starts_in_the_feed_on_time_without_a_state_change(raw_gateway: Gateway) -> None:
    start = time.time() + 1.5
    raw_gateway.turn_on(starts_at=start, ends_at=start + 60)
    before = feed(raw_gateway)
    assert before.json()["upcoming"] is True and before.json()["maintenance"] is False
    time.sleep(max(0.0, start - time.time()) + 0.1)
    after = feed(raw_gateway, **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["maintenance"] is True and after.json()["upcoming"] is False
    assert 58 <= after.json()["retry_after"] <= 60


def test_retry_after_counts_down_and_the_etag_follows(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(ends_at=time.time() + 60)
    first = feed(raw_gateway)
    time.sleep(1.1)
    second = feed(raw_gateway, **{"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert second.json()["retry_after"] < first.json()["retry_after"]
    assert second.headers["etag"] != first.headers["etag"]


def test_an_ended_window_reads_as_no_maintenance(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(ends_at=time.time() + 1.0, message="Short")
    assert feed(raw_gateway).json()["maintenance"] is True
    time.sleep(1.2)
    assert feed(raw_gateway).json() == {key: None for key in FEED_KEYS} | {
        "maintenance": False,
        "mode": "full",
        "upcoming": False,
        "bypassed": False,
    }


@pytest.fixture(scope="module")
def feed_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    gateway = Gateway(log_dir, raw_upstream, CORS_ENV, name="gateway-feed")
    yield gateway
    gateway.stop()


def _read_answer(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes, bytes]:
    """One answer (head, body) off a keep-alive connection, and what follows it."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, "the connection closed before an answer"
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        assert name.strip().lower() != b"transfer-encoding", head
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[:length], rest[length:]


def test_304_head_and_get_share_one_keep_alive_connection(feed_gateway: Gateway) -> None:
    etag = feed(feed_gateway).headers["etag"].encode()
    with socket.create_connection(("127.0.0.1", feed_gateway.port), timeout=5) as sock:
        sock.sendall(
            b"GET /_gateway/status HTTP/1.1\r\nHost: a\r\nIf-None-Match: " + etag + b"\r\n\r\n"
            b"HEAD /_gateway/status HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /_gateway/status HTTP/1.1\r\nHost: a\r\nOrigin: " + FRONT_ORIGIN.encode() + b"\r\n\r\n"
        )
        not_modified, body, rest = _read_answer(sock, b"")
        assert not_modified.startswith(b"HTTP/1.1 304") and body == b""
        assert b"content-length" not in not_modified.lower()
        # HEAD: the GET's headers, no body bytes on the wire (the next answer follows at once).
        head, _, rest = rest.partition(b"\r\n\r\n") if b"\r\n\r\n" in rest else (b"", b"", rest)
        while not head:
            rest += sock.recv(65536)
            if b"\r\n\r\n" in rest:
                head, _, rest = rest.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        ok, body, _ = _read_answer(sock, rest)
    assert ok.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["maintenance"] is False
    assert b"access-control-allow-origin: " + FRONT_ORIGIN.encode() in ok.lower()


# -- staff let through, and the scope's name for customers

BYPASS_SECRET = "feed-bypass-secret-0123456789"
BYPASS_LIMIT = 3
BYPASS_NETWORK = "198.51.100.0/24"
_feed_clients = iter(range(1, 250))


def feed_client() -> str:
    """An address of its own for each check (a fresh failure budget), sent as X-Forwarded-For."""
    return f"192.0.2.{next(_feed_clients)}"


@pytest.fixture(scope="module")
def bypass_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    server = Gateway(
        log_dir,
        raw_upstream,
        {
            **CORS_ENV,
            "GATEWAY_BYPASS_SECRET": BYPASS_SECRET,
            "GATEWAY_BYPASS_IPS": BYPASS_NETWORK,
            "GATEWAY_ADMIN_FAILURE_LIMIT": str(BYPASS_LIMIT),
        },
        name="gateway-feed-bypass",
    )
    yield server
    server.stop()


def bypass_cookie(gateway: Gateway, client: str) -> str:
    """The signed cookie the bypass form hands a browser, as its Cookie header sends it back."""
    login = httpx.post(f"{gateway.url}/_gateway/bypass", json={"secret": BYPASS_SECRET}, headers={"x-forwarded-for": client}, timeout=5)
    assert login.status_code == 200, login.text
    assert "httponly" in login.headers["set-cookie"].lower()
    return login.headers["set-cookie"].split(";", 1)[0]


def test_a_bypass_cookie_gets_an_answer_of_its_own_saying_bypassed(bypass_gateway: Gateway) -> None:
    client = feed_client()
    cookie = bypass_cookie(bypass_gateway, client)
    bypass_gateway.turn_on(message="Upgrading", ends_at=time.time() + 600)
    try:
        staff = feed(bypass_gateway, Origin=FRONT_ORIGIN, Cookie=f"sessionid=x; {cookie}", **{"X-Forwarded-For": client})
        public = feed(bypass_gateway, Origin=FRONT_ORIGIN, Cookie="sessionid=x", **{"X-Forwarded-For": client})
        assert staff.json() == public.json() | {"bypassed": True}
        assert public.json()["bypassed"] is False and public.json()["maintenance"] is True
        # For that browser alone: never stored, no validator; the public answer stays cacheable.
        assert staff.headers["cache-control"] == "private, no-store" and "etag" not in staff.headers
        assert public.headers["cache-control"] == "public, max-age=1" and "etag" in public.headers
        assert staff.headers["vary"] == public.headers["vary"] == "Origin, Cookie, X-Maintenance-Bypass"
        # Fetched with credentials from the app's origin: the origin echoed, credentials allowed.
        assert staff.headers["access-control-allow-origin"] == FRONT_ORIGIN
        assert staff.headers["access-control-allow-credentials"] == "true"
        assert "set-cookie" not in staff.headers
        # The header lets a script through as the cookie does, and so does a bypass address.
        header = feed(bypass_gateway, **{"X-Maintenance-Bypass": BYPASS_SECRET, "X-Forwarded-For": feed_client()})
        assert header.json()["bypassed"] is True and header.headers["cache-control"] == "private, no-store"
        office = feed(bypass_gateway, **{"X-Forwarded-For": "198.51.100.7"})
        assert office.json()["bypassed"] is True and office.headers["cache-control"] == "private, no-store"
        # The same requests pass maintenance: the feed says what requests get.
        assert httpx.get(f"{bypass_gateway.url}/echo", headers={"Cookie": cookie, "X-Forwarded-For": client}, timeout=5).status_code == 200
    finally:
        bypass_gateway.turn_off()
    # Outside maintenance there is nothing to pass: the public answer for everyone.
    after = feed(bypass_gateway, Cookie=cookie, **{"X-Forwarded-For": client})
    assert after.json()["bypassed"] is False and after.headers["cache-control"] == "public, max-age=1"


def test_a_refused_bypass_cookie_is_expired_and_counted_and_the_feed_is_no_way_round_the_limit(bypass_gateway: Gateway) -> None:
    client = feed_client()
    bypass_gateway.turn_on(message="Upgrading")
    try:
        forged = feed(bypass_gateway, Cookie="maintenance_bypass=9999999999.forged", **{"X-Forwarded-For": client})
        assert forged.json()["bypassed"] is False
        assert forged.headers["cache-control"] == "private, no-store"
        assert "max-age=0" in forged.headers["set-cookie"].lower()
        guesser = feed_client()
        for attempt in range(BYPASS_LIMIT):
            wrong = feed(bypass_gateway, **{"X-Maintenance-Bypass": f"guess-{attempt:020d}", "X-Forwarded-For": guesser})
            assert wrong.json()["bypassed"] is False
        # Over the failure limit, the right secret no longer helps: not here, not on any path.
        locked = feed(bypass_gateway, **{"X-Maintenance-Bypass": BYPASS_SECRET, "X-Forwarded-For": guesser})
        assert locked.json()["bypassed"] is False
        assert httpx.get(f"{bypass_gateway.url}/echo", headers={"X-Maintenance-Bypass": BYPASS_SECRET, "X-Forwarded-For": guesser}, timeout=5).status_code == 503
    finally:
        bypass_gateway.turn_off()


def test_a_labelled_scope_is_named_in_the_feed_and_the_503(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(scope=("/echo/checkout/",), label="Checkout", message="Checkout is being upgraded")
    status = feed(raw_gateway).json()
    refused = httpx.get(f"{raw_gateway.url}/echo/checkout/pay", headers={"Accept": ANGULAR_ACCEPT}, timeout=5).json()
    assert status["label"] == refused["label"] == "Checkout"
    assert status["scope"] == refused["scope"] == ["/echo/checkout/"]
    # A label names a scope: without one the whole site is down, and nothing is named.
    raw_gateway.turn_on(label="Checkout", message="All down")
    assert feed(raw_gateway).json()["label"] is None
    assert "label" not in httpx.get(f"{raw_gateway.url}/echo", timeout=5).json()
    assert raw_gateway.turn_off().label == ""
