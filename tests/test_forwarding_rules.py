"""What the gateway forwards, and to whom: trailers, Host, the bypass secret, bypass paths,
early answers from the upstream and clients that upload slowly.

Raw sockets where the bytes matter; what the upstream really received is read back from
the raw upstream's echo.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.forwarding import segment_prefixes, under_segment_prefixes, valid_host, without_cookie
from gateway.state import switched_off, switched_on
from gateway.stores import change_state
from tests.raw_http import RawUpstream, read_head
from tests.support import CORS_ENV, Gateway

BYPASS_SECRET = "s3cret-bypass-value-for-tests"


def set_maintenance(gateway: Gateway, on: bool) -> None:
    """Change the state in the gateway's store and wait until the gateway follows (public health)."""
    now = time.time()
    change_state(
        gateway.store,
        lambda current: switched_on(current, now=now, actor="tests") if on else switched_off(current, now=now, actor="tests"),
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.get(f"{gateway.url}/_gateway/health", timeout=5).json()["maintenance"] is on:
            return
        time.sleep(0.02)
    raise AssertionError(f"the gateway did not follow maintenance={on} within 5 s")


@pytest.fixture(scope="module")
def rules_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    env = {
        **CORS_ENV,
        "GATEWAY_BYPASS_PATHS": "/webhooks/,/health",
        "GATEWAY_BYPASS_SECRET": BYPASS_SECRET,
        "GATEWAY_CLIENT_BODY_TIMEOUT": "2",
    }
    gateway = Gateway(log_dir, raw_upstream, env, name="gateway-rules")
    yield gateway
    gateway.stop()


@pytest.fixture
def gateway(rules_gateway: Gateway) -> Iterator[Gateway]:
    """Maintenance off at the start and the end of each test."""
    if rules_gateway.store.read().enabled:
        set_maintenance(rules_gateway, False)
    yield rules_gateway
    if rules_gateway.store.read().enabled:
        set_maintenance(rules_gateway, False)


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes in one packet and read the answer until the connection closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        return received


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply[9:12])


def echoed(reply: bytes) -> dict:
    assert status_of(reply) == 200, reply[:300]
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def values(echo: dict, name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key == name]


class ScriptedUpstream(RawUpstream):
    """A raw-socket upstream: reads each request head and lets ``answer`` write whatever bytes it likes."""

    def __init__(self, answer: Callable[[socket.socket, bytes], None]) -> None:
        def serve(connection: socket.socket, number: int) -> None:
            head, rest = read_head(connection)
            if head:
                answer(connection, head + b"\r\n\r\n" + rest)

        super().__init__(serve)


# -- trailers (RFC 9110 6.5.1: trailer fields are never merged into the header section)


def test_request_trailers_never_become_headers(gateway: Gateway) -> None:
    reply = exchange(
        gateway.port,
        b"POST /echo HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\nHost: evil.example\r\nAuthorization: x\r\nX-Trailer: t\r\n\r\n",
    )
    echo = echoed(reply)
    assert values(echo, "host") == ["shop.example"]
    assert values(echo, "x-forwarded-host") == ["shop.example"]
    assert values(echo, "authorization") == [] and values(echo, "x-trailer") == []
    assert echo["body_bytes"] == 5


def test_response_trailers_never_become_headers(log_dir: Path) -> None:
    def answer(conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nSet-Cookie: session=forged\r\n\r\n"
        )

    upstream = ScriptedUpstream(answer)
    gateway = Gateway(log_dir, upstream.url, name="gateway-response-trailers")
    try:
        with gateway.client() as client:
            response = client.get("/anything")
    finally:
        gateway.stop()
        upstream.close()
    assert response.status_code == 200
    assert response.content == b"hello"
    assert "x-checksum" not in response.headers
    assert "set-cookie" not in response.headers


# -- Host (RFC 9112 3.2)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", id="no host in HTTP/1.1"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n", id="two hosts"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\nConnection: close\r\n\r\n", id="the same host twice"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example b.example\r\nConnection: close\r\n\r\n", id="a space in host"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example/path\r\nConnection: close\r\n\r\n", id="a path in host"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n", id="userinfo in host"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example:80x\r\nConnection: close\r\n\r\n", id="a bad port"),
    ],
)
def test_requests_without_one_valid_host_are_refused(gateway: Gateway, raw_upstream: str, head: bytes) -> None:
    httpx.get(f"{raw_upstream}/requests-reset")
    reply = exchange(gateway.port, head)
    assert status_of(reply) == 400, reply[:300]
    assert httpx.get(f"{raw_upstream}/requests-seen").json()["requests"] == []


@pytest.mark.parametrize(
    "host", [b"shop.example", b"shop.example:8443", b"127.0.0.1:8080", b"[::1]:8080", b"xn--bcher-kva.example", b""]
)
def test_valid_hosts_are_forwarded(gateway: Gateway, host: bytes) -> None:
    echo = echoed(exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host))
    assert values(echo, "host") == [host.decode()]


def test_connection_cannot_remove_end_to_end_fields(gateway: Gateway) -> None:
    body = b'{"a": 1}'
    echo = echoed(
        exchange(
            gateway.port,
            b"POST /echo HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close, host, content-length, content-type, x-forwarded-for, x-drop\r\nX-Drop: 1\r\n\r\n%s"
            % (len(body), body),
        )
    )
    assert values(echo, "host") == ["shop.example"]
    assert values(echo, "content-length") == [str(len(body))]
    assert values(echo, "content-type") == ["application/json"]
    assert values(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert values(echo, "x-drop") == []  # a real hop-by-hop option is still honoured
    assert echo["body_bytes"] == len(body)


def test_every_connection_line_names_options(gateway: Gateway) -> None:
    # Several Connection lines are one list (RFC 9110 5.3): an option in the first still goes.
    echo = echoed(
        exchange(
            gateway.port,
            b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nConnection: x-first\r\nConnection: close\r\n"
            b"X-First: 1\r\nX-Kept: 1\r\n\r\n",
        )
    )
    assert values(echo, "x-first") == []
    assert values(echo, "x-kept") == ["1"]


# -- the bypass secret stays with the gateway


def _bypass_request() -> bytes:
    return (
        b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nX-Maintenance-Bypass: %s\r\n"
        b"Cookie: csrftoken=abc; maintenance_bypass=1.sig; sessionid=xyz\r\nCookie: theme=dark\r\n"
        b"Connection: close\r\n\r\n" % BYPASS_SECRET.encode()
    )


def test_the_bypass_secret_is_not_forwarded(gateway: Gateway) -> None:
    echo = echoed(exchange(gateway.port, _bypass_request()))
    assert values(echo, "x-maintenance-bypass") == []
    assert values(echo, "cookie") == ["csrftoken=abc; sessionid=xyz", "theme=dark"]


def test_the_bypass_secret_is_not_forwarded_in_maintenance(gateway: Gateway) -> None:
    set_maintenance(gateway, True)
    echo = echoed(exchange(gateway.port, _bypass_request()))
    assert values(echo, "x-maintenance-bypass") == []
    assert values(echo, "cookie") == ["csrftoken=abc; sessionid=xyz", "theme=dark"]


def test_a_cookie_header_holding_only_the_bypass_cookie_is_dropped(gateway: Gateway) -> None:
    echo = echoed(
        exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: a\r\nCookie: maintenance_bypass=1.sig\r\nConnection: close\r\n\r\n")
    )
    assert values(echo, "cookie") == []


# -- bypass paths match whole segments of the normalised path


@pytest.mark.parametrize(
    "target",
    [
        b"/webhooks/../admin/delete-all",
        b"/webhooks/%2e%2e/admin/",
        b"/webhooks/%2E%2E/admin/",
        b"/webhooks%2f..%2fadmin",
        b"/webhooks/./../admin",
        b"/webhooks/..",
        b"/healthXYZ/secret",
        b"/health/../admin",
        b"/webhooksX",
    ],
)
def test_bypass_paths_do_not_let_other_paths_through(gateway: Gateway, raw_upstream: str, target: bytes) -> None:
    set_maintenance(gateway, True)
    httpx.get(f"{raw_upstream}/requests-reset")
    reply = exchange(gateway.port, b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % target)
    assert status_of(reply) == 503, reply[:300]
    assert httpx.get(f"{raw_upstream}/requests-seen").json()["requests"] == []


@pytest.mark.parametrize("target", [b"/webhooks/payments", b"/webhooks", b"/webhooks/.well-known/x", b"/health", b"/health/db"])
def test_bypass_paths_match_whole_segments(gateway: Gateway, target: bytes) -> None:
    set_maintenance(gateway, True)
    reply = exchange(gateway.port, b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % target)
    assert status_of(reply) != 503, reply[:300]


# -- an upstream that answers before it has read the whole body


def test_an_early_answer_reaches_the_client(log_dir: Path) -> None:
    def answer(conn: socket.socket, head: bytes) -> None:
        # As Django does for an upload over its limit: answer, and close without reading the rest.
        body = b'{"error": "too large"}'
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))

    upstream = ScriptedUpstream(answer)
    gateway = Gateway(log_dir, upstream.url, {"GATEWAY_REQUEST_BUFFER_BYTES": "65536"}, name="gateway-early-answer")
    statuses = []
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
                size = 20 * 1024 * 1024
                sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)

                def upload() -> None:
                    try:
                        for _ in range(size // 65536):
                            sock.sendall(b"u" * 65536)
                    except OSError:
                        pass

                sender = threading.Thread(target=upload, daemon=True)
                sender.start()
                reply = b""
                try:
                    while b"\r\n\r\n" not in reply:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        reply += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
                statuses.append(int(reply[9:12]) if reply.startswith(b"HTTP/1.1 ") else 0)
                sock.close()
                sender.join(10)
    finally:
        gateway.stop()
        upstream.close()
    assert statuses == [413, 413, 413]


# -- clients that upload slowly


def _trickle(port: int, count: int, stop: threading.Event, drain: bool = True) -> list[socket.socket]:
    """``count`` uploads announcing 100 kB that send 100 bytes now and then."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"t" * 100)
        sockets.append(sock)

    def keep_trickling() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                try:
                    sock.send(b"t" * 100)
                except OSError:
                    pass
            if not drain:
                continue
            # Whatever the gateway answered is read and dropped, so no buffer fills.
            readable, _, _ = select.select(sockets, [], [], 0)
            for sock in readable:
                try:
                    sock.recv(65536)
                except OSError:
                    pass

    threading.Thread(target=keep_trickling, daemon=True).start()
    return sockets


def test_slow_uploads_do_not_take_the_place_of_ready_requests(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(
        log_dir,
        raw_upstream,
        {"GATEWAY_MAX_IN_FLIGHT": "20", "GATEWAY_CLIENT_BODY_TIMEOUT": "5"},
        name="gateway-tricklers",
    )
    stop = threading.Event()
    sockets: list[socket.socket] = []
    try:
        sockets = _trickle(gateway.port, 200, stop)
        time.sleep(1.0)
        statuses = []
        with gateway.client() as client:
            for _ in range(40):
                statuses.append(client.get("/echo").status_code)
                time.sleep(0.02)
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
        gateway.stop()
    success = statuses.count(200) / len(statuses)
    print(f"other clients' success rate during 200 slow uploads: {success:.0%}")
    assert success == 1.0, statuses


def test_slow_uploads_are_bounded_in_number_and_in_time(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(
        log_dir,
        raw_upstream,
        {
            "GATEWAY_MAX_IN_FLIGHT": "100",
            "GATEWAY_MAX_BUFFERING_BODIES": "10",
            "GATEWAY_CLIENT_BODY_TIMEOUT": "1",
            "GATEWAY_CLIENT_BODY_MIN_RATE": "1000",
        },
        name="gateway-trickle-bounds",
    )
    stop = threading.Event()
    sockets: list[socket.socket] = []
    try:
        sockets = _trickle(gateway.port, 10, stop, drain=False)
        time.sleep(0.5)
        # Every buffering place is taken: one more body waits for none and gets a quick 503.
        with gateway.client() as client:
            started = time.monotonic()
            crowded = client.post("/upload", content=b"x" * 1000)
            assert time.monotonic() - started < 1
            assert client.get("/echo").status_code == 200
        assert crowded.status_code == 503 and crowded.json()["error"] == "overloaded"
        # 100 bytes every 0.5 s is far below 1000 bytes/s: after the 1 s grace every trickler gets 408.
        time.sleep(3)
        stop.set()
        answers: dict[socket.socket, bytes] = {}
        for sock in sockets:
            sock.settimeout(3)
            try:
                answers[sock] = sock.recv(65536)
            except OSError:
                answers[sock] = b""
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers.values()), answers
        # The places are free again.
        with gateway.client() as client:
            assert client.post("/upload", content=b"x" * 1000).status_code == 200
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
        gateway.stop()


# -- the rules on their own


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"shop.example", True),
        (b"shop.example:443", True),
        (b"[2001:db8::1]:8080", True),
        (b"", True),
        (b"a.example b.example", False),
        (b"a.example,b.example", True),  # sub-delims are allowed in a reg-name (RFC 3986 3.2.2)
        (b"a.example/x", False),
        (b"a@b.example", False),
        (b"a.example:8o", False),
        (b"a.example\t", False),
        (b"%zz.example", False),
    ],
)
def test_host_values(value: bytes, valid: bool) -> None:
    assert valid_host(value) is valid


def test_only_the_named_cookie_is_removed() -> None:
    name = b"maintenance_bypass"
    assert without_cookie(b"a=1; maintenance_bypass=x.y; b=2", name) == b"a=1; b=2"
    assert without_cookie(b"maintenance_bypass=x", name) == b""
    assert without_cookie(b"not_maintenance_bypass=1;maintenance_bypass=2", name) == b"not_maintenance_bypass=1"


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/webhooks", True),
        ("/webhooks/", True),
        ("/webhooks/stripe", True),
        ("/webhooks/.well-known", True),
        ("/webhooks/..", False),
        ("/webhooks/../admin", False),
        ("/webhooks/./x", False),
        ("/webhooksX", False),
        ("/health", True),
        ("/health/db", True),
        ("/healthXYZ/secret", False),
        ("/admin", False),
    ],
)
def test_bypass_path_rules(path: str, matches: bool) -> None:
    prefixes, exact = segment_prefixes(("/webhooks/", "/health"))
    assert under_segment_prefixes(path, prefixes, exact) is matches
