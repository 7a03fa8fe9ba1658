"""Attacks a proxy meets, over raw sockets.

Each attack is judged by what the client got and by what the upstream really
received (the raw upstream lists every request line it saw).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.raw_http import RawUpstream, read_head
from tests.support import CORS_ENV, FRONT_ORIGIN, Gateway

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# Requests whose framing a front proxy and a back end could read differently (RFC 9112 6, 6.3).
AMBIGUOUS = {
    "content-length and transfer-encoding": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two different content-lengths": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + SMUGGLED,
    "unknown transfer coding": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunked not last": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "length with a plus": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello" + SMUGGLED,
    "length in hex": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\nhello, hello, hi" + SMUGGLED,
    "length with an underscore": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\nhellohello" + SMUGGLED,
    "space before the colon": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
    "bare LF line ends": b"POST /echo HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello" + SMUGGLED,
    "obsolete line folding": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Folded: one\r\n two\r\n\r\nhello" + SMUGGLED,
    "folded transfer-encoding": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
    "chunk size overflow": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
}


@pytest.fixture(scope="module")
def hostile_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    env = {
        **CORS_ENV,
        "GATEWAY_CLIENT_HEADER_TIMEOUT": "1",
        "GATEWAY_CLIENT_BODY_TIMEOUT": "1",
        "GATEWAY_REQUEST_BUFFER_BYTES": "65536",
    }
    gateway = Gateway(log_dir, raw_upstream, env, name="gateway-hostile")
    yield gateway
    gateway.stop()


def exchange(gateway: Gateway, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes; return all that came back and whether the gateway closed the connection."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        return received, closed


def upstream_saw(upstream: str) -> list[str]:
    return httpx.get(f"{upstream}/requests-seen").json()["requests"]


@pytest.mark.parametrize("attack", sorted(AMBIGUOUS))
def test_ambiguous_framing_is_refused(hostile_gateway: Gateway, raw_upstream: str, attack: str) -> None:
    httpx.get(f"{raw_upstream}/requests-reset")
    received, closed = exchange(hostile_gateway, AMBIGUOUS[attack], timeout=3)
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert closed
    assert upstream_saw(raw_upstream) == []  # nothing reached the upstream, the smuggled request least of all


def test_header_names_django_would_misread_are_refused(hostile_gateway: Gateway, raw_upstream: str) -> None:
    httpx.get(f"{raw_upstream}/requests-reset")
    response = httpx.get(f"{hostile_gateway.url}/echo", headers={"X-User_Id": "admin", "Origin": FRONT_ORIGIN})
    assert response.status_code == 400
    assert "underscores" in response.json()["message"]
    assert response.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert upstream_saw(raw_upstream) == []


def test_an_8k_cookie_passes_and_a_64k_header_block_is_refused(hostile_gateway: Gateway) -> None:
    cookie = "session=" + "c" * 8192
    echoed = httpx.get(f"{hostile_gateway.url}/echo", headers={"Cookie": cookie})
    assert echoed.status_code == 200
    assert [v for k, v in echoed.json()["headers"] if k == "cookie"] == [cookie]
    big = "".join(f"X-Filler-{n}: {'f' * 1000}\r\n" for n in range(64)).encode()
    received, closed = exchange(hostile_gateway, b"GET /echo HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n")
    status = int(received.split(b" ", 2)[1])
    assert 400 <= status < 500 and closed


def test_control_characters_in_values_are_refused(hostile_gateway: Gateway, raw_upstream: str) -> None:
    httpx.get(f"{raw_upstream}/requests-reset")
    received, _ = exchange(hostile_gateway, b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Evil: a\x00b\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")
    assert upstream_saw(raw_upstream) == []


def test_slowloris_headers_are_cut(hostile_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", hostile_gateway.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        closed_after = None
        try:
            for _ in range(10):
                sock.sendall(b"X-Drip: 1\r\n")
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
        if closed_after is None:
            assert sock.recv(100) == b""
            closed_after = time.monotonic() - started
    assert closed_after < 3.5  # GATEWAY_CLIENT_HEADER_TIMEOUT=1 for this gateway


def test_an_idle_connection_that_never_speaks_is_cut(hostile_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", hostile_gateway.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
    assert time.monotonic() - started < 3


def test_a_slow_body_gets_408_and_holds_no_upstream_connection(hostile_gateway: Gateway, raw_upstream: str) -> None:
    httpx.get(f"{raw_upstream}/requests-reset")
    with socket.create_connection(("127.0.0.1", hostile_gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly a little")
        started = time.monotonic()
        reply = sock.recv(4096)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:100]
    assert elapsed < 3
    # The body fits the request buffer: Django was never called for it.
    assert upstream_saw(raw_upstream) == []


def test_a_thousand_clients_leaving_mid_stream_leave_nothing_behind(hostile_gateway: Gateway, raw_upstream: str) -> None:
    def fd_count() -> int:
        return len(list(Path(f"/proc/{hostile_gateway.pid}/fd").iterdir()))

    httpx.get(f"{hostile_gateway.url}/echo")
    fds_before = fd_count()

    def leave(batch: int) -> None:
        for n in range(100):
            with socket.create_connection(("127.0.0.1", hostile_gateway.port), timeout=5) as sock:
                sock.sendall(b"GET /sse?interval=0.05&name=leaver-%d-%d HTTP/1.1\r\nHost: a\r\n\r\n" % (batch, n))
                received = b""
                while b"data: 0" not in received:
                    received += sock.recv(4096)

    threads = [threading.Thread(target=leave, args=(batch,)) for batch in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    def gauge(text: str, name: str) -> float:
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        assert match, name
        return float(match.group(1))

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = httpx.get(f"{raw_upstream}/stream-stats").json()
        metrics = hostile_gateway.metrics()  # metrics need the admin token
        leftover = [name for name in stats["active"] if name.startswith("leaver-")]
        if not leftover and gauge(metrics, "gateway_in_flight_requests") == 0 and fd_count() <= fds_before + 5:
            break
        time.sleep(0.2)
    assert not leftover, f"{len(leftover)} upstream streams still running"
    assert gauge(metrics, "gateway_in_flight_requests") == 0
    # Every upstream connection left is an idle one kept for reuse: none busy, none leaked.
    assert gauge(metrics, "gateway_upstream_connections_open") == gauge(metrics, "gateway_upstream_connections_idle")
    assert fd_count() <= fds_before + 5


def test_a_flood_beyond_the_limit_gets_a_quick_503_with_cors(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {**CORS_ENV, "GATEWAY_MAX_IN_FLIGHT": "20"}, name="gateway-flood")
    statuses: list[int] = []
    shed: list[httpx.Response] = []
    lock = threading.Lock()

    def client() -> None:
        response = httpx.get(f"{gateway.url}/slow", params={"delay": "1.5"}, headers={"Origin": FRONT_ORIGIN}, timeout=10)
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 503:
                shed.append(response)

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(60)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        elapsed = time.monotonic() - started
        health = httpx.get(f"{gateway.url}/_gateway/health")
    finally:
        gateway.stop()
    assert statuses.count(200) == 20 and statuses.count(503) == 40
    assert elapsed < 5
    assert all(r.json()["error"] == "overloaded" and r.headers["retry-after"] == "1" for r in shed)
    assert all(r.headers["access-control-allow-origin"] == FRONT_ORIGIN for r in shed)
    assert health.status_code == 200


class RecordingUpstream(RawUpstream):
    """A bare TCP upstream that records each request line exactly as the gateway sent it
    (an HTTP server there would normalise what it parsed) and answers 200."""

    def __init__(self) -> None:
        self.request_lines: list[bytes] = []
        super().__init__(self._record)

    def _record(self, connection: socket.socket, number: int) -> None:
        pending = b""
        while True:
            head, pending = read_head(connection, pending)
            if not head:
                return
            self.request_lines.append(head.split(b"\r\n", 1)[0])
            pending = self._skip_body(connection, head.lower(), pending)
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    @staticmethod
    def _skip_body(connection: socket.socket, head: bytes, pending: bytes) -> bytes:
        """Read past the body the gateway framed (a length, or chunks ending in an empty trailer)."""
        if b"\r\ntransfer-encoding: chunked" in head:
            while b"0\r\n\r\n" not in pending:
                pending += connection.recv(65536) or b"0\r\n\r\n"
            return pending.split(b"0\r\n\r\n", 1)[1]
        length = re.search(rb"\r\ncontent-length: *(\d+)", head)
        size = int(length.group(1)) if length else 0
        while len(pending) < size:
            pending += connection.recv(65536) or b"\0" * size
        return pending[size:]


# Request targets and methods that HTTP parsers could read differently (RFC 9112 3.1, 3.2).
TARGETS_AND_METHODS = {
    "absolute-form to the admin prefix": b"GET http://evil.example/_gateway/health HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form with a port, query and fragment": b"GET http://evil.example:81/echo?q=1#f HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form with user info": b"GET https://u:p@evil.example/echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form without a path": b"GET http://evil.example HTTP/1.1\r\nHost: a\r\n\r\n",
    "fragment": b"GET /echo?a=1#f?x HTTP/1.1\r\nHost: a\r\n\r\n",
    "authority-form CONNECT": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "authority-form GET": b"GET evil.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk-form OPTIONS": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "target without a slash": b"GET echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "lowercase method": b"get /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "unknown method": b"FOO /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "RTSP method": b"DESCRIBE /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "HTTP/2 preface method": b"PRI /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "WebDAV method": b"PROPFIND /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "QUERY method": b"QUERY /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "request line over the head limit": b"GET /echo?q=" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    # llhttp reads nothing after a request asking for an upgrade: a request behind it is not one.
    "request behind CONNECT": b"CONNECT /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /behind HTTP/1.1\r\nHost: a\r\n\r\n",
    "request behind an upgrade not taken": (
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
        b"GET /behind HTTP/1.1\r\nHost: a\r\n\r\n"
    ),
    "pipelined requests": b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n",
    # Framing and versions that HTTP parsers could read differently (RFC 9112 2.3, 6.3, 7.1).
    "identical content-lengths": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "content-length list": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
    "space after the chunk size": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n",
    "NUL in a chunk extension": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;\x00\r\nx\r\n0\r\n\r\n",
    "chunk extension": b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n",
    "chunk size past 64 bits": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
    "bare LF chunk lines": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n0\n\n",
    "bare LF in the trailer": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: a\n\r\n",
    "HTTP/1.2": b"GET /echo HTTP/1.2\r\nHost: a\r\n\r\n",
    "HTTP/2.0 request line": b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n",
    "HTTP/0.9 with a version": b"GET /echo HTTP/0.9\r\nHost: a\r\n\r\n",
    "no version": b"GET /echo\r\n\r\n",
    "leading empty line": b"\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "double space in the request line": b"GET  /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "double space before the version": b"GET /echo  HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    # White space after a value is not part of it (RFC 9110 5.5); llhttp passes it on.
    "space after the content-length": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1 \r\n\r\nx",
    "tab after the content-length": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\t\r\n\r\nx",
    "space after the host": b"GET /echo HTTP/1.1\r\nHost: a \r\nConnection: close\r\n\r\n",
}


OK, BAD = b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"
# Refused at once (within the exchange's second), never left waiting for bytes that cannot
# come, nothing forwarded.
REFUSED = ([BAD], [], True)

# What the gateway answers to each of TARGETS_AND_METHODS: the status lines the client got,
# the request lines the upstream received, and whether the connection was closed.
ANSWERS: dict[str, tuple[list[bytes], list[bytes], bool]] = {
    # The admin routes are reached by an absolute-form target's path, never forwarded; other
    # absolute-form targets are forwarded as their path and query, a fragment dropped.
    "absolute-form to the admin prefix": ([OK], [], False),
    "absolute-form with a port, query and fragment": ([OK], [b"GET /echo?q=1 HTTP/1.1"], False),
    "absolute-form with user info": ([OK], [b"GET /echo HTTP/1.1"], False),
    "absolute-form without a path": REFUSED,
    "fragment": ([OK], [b"GET /echo?a=1 HTTP/1.1"], False),
    "authority-form CONNECT": REFUSED,
    "authority-form GET": REFUSED,
    "asterisk-form OPTIONS": ([OK], [b"OPTIONS * HTTP/1.1"], False),
    "target without a slash": REFUSED,
    # Only the methods llhttp knows, in capitals.
    "lowercase method": REFUSED,
    "unknown method": REFUSED,
    "RTSP method": REFUSED,
    "HTTP/2 preface method": REFUSED,
    "WebDAV method": ([OK], [b"PROPFIND /echo HTTP/1.1"], False),
    "QUERY method": ([OK], [b"QUERY /echo HTTP/1.1"], False),
    "request line over the head limit": REFUSED,
    # Answered, then closed: what follows is not read as a request.
    "request behind CONNECT": ([OK], [b"CONNECT /echo HTTP/1.1"], True),
    "request behind an upgrade not taken": ([OK], [b"GET /echo HTTP/1.1"], True),
    "pipelined requests": ([OK, OK], [b"GET /echo HTTP/1.1", b"GET /second HTTP/1.1"], False),
    "identical content-lengths": REFUSED,
    "content-length list": REFUSED,
    "space after the chunk size": REFUSED,
    "NUL in a chunk extension": REFUSED,
    "chunk extension": ([OK], [b"POST /echo HTTP/1.1"], True),
    "chunk size past 64 bits": REFUSED,
    "bare LF chunk lines": REFUSED,
    "bare LF in the trailer": REFUSED,
    # HTTP/1.0 and 1.1 only.
    "HTTP/1.2": REFUSED,
    "HTTP/2.0 request line": REFUSED,
    "HTTP/0.9 with a version": REFUSED,
    "no version": REFUSED,
    # Empty lines before a request line and runs of spaces in it are read as llhttp reads
    # them; the upstream gets the gateway's own request line.
    "leading empty line": ([OK], [b"GET /echo HTTP/1.1"], True),
    "double space in the request line": ([OK], [b"GET /echo HTTP/1.1"], True),
    "double space before the version": ([OK], [b"GET /echo HTTP/1.1"], True),
    "space after the content-length": ([OK], [b"POST /echo HTTP/1.1"], False),
    "tab after the content-length": ([OK], [b"POST /echo HTTP/1.1"], False),
    "space after the host": ([OK], [b"GET /echo HTTP/1.1"], True),
}


def test_requests_that_parsers_could_read_differently_get_one_answer(log_dir: Path) -> None:
    """Targets, methods, framing and versions that one HTTP parser could read differently from
    another (a proxy in front, Django behind): each gets the answer in ANSWERS, and the upstream
    receives only the request lines listed there."""
    assert set(ANSWERS) == set(TARGETS_AND_METHODS)
    upstream = RecordingUpstream()
    seen: dict[str, tuple[list[bytes], list[bytes], bool]] = {}
    try:
        gateway = Gateway(log_dir, upstream.url, name="gateway-hostile-reads")
        try:
            for case, data in TARGETS_AND_METHODS.items():
                upstream.request_lines.clear()
                received, closed = exchange(gateway, data, timeout=1)
                statuses = re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", received)
                seen[case] = (statuses, list(upstream.request_lines), closed)
        finally:
            gateway.stop()
    finally:
        upstream.close()
    wrong = {case: (seen[case], expected) for case, expected in ANSWERS.items() if seen[case] != expected}
    assert not wrong, "\n".join(f"{case}: got {got}, expected {expected}" for case, (got, expected) in wrong.items())
