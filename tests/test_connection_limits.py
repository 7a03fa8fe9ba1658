"""Every client connection ends in bounded time and holds bounded memory, whatever the
client does (raw sockets against real gateway processes)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Gateway, maintenance_off_after

TOKEN = "t" * 32
TIMEOUT = 1.0  # the client header, body and send timeouts of these gateways
# A connection past a limit is closed at the next sweep (a quarter of the timeout here).
BOUND = TIMEOUT + 2.0


@pytest.fixture(scope="module")
def limits_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    env = {
        "GATEWAY_CLIENT_HEADER_TIMEOUT": str(TIMEOUT),
        "GATEWAY_CLIENT_BODY_TIMEOUT": str(TIMEOUT),
        "GATEWAY_CLIENT_SEND_TIMEOUT": str(TIMEOUT),
        "GATEWAY_ADMIN_TOKENS": "ops:" + TOKEN,
        "GATEWAY_ADMIN_FAILURE_LIMIT": "0",
        "GATEWAY_BYPASS_SECRET": "s" * 20,
    }
    gateway = Gateway(log_dir, raw_upstream, env, name="gateway-limits")
    yield gateway
    gateway.stop()


@pytest.fixture
def gateway(limits_gateway: Gateway) -> Iterator[Gateway]:
    """A gateway with short client timeouts, maintenance off at the end of each test."""
    yield from maintenance_off_after(limits_gateway)


def open_fds(gateway: Gateway) -> int:
    return len(list(Path(f"/proc/{gateway.pid}/fd").iterdir()))


def wait_until(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``condition`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def read_head(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def read_response(sock: socket.socket) -> bytes:
    """One whole answer with a Content-Length: its head and body."""
    received = read_head(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return received


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the gateway ends the connection within ``timeout`` (EOF or reset), reading what comes."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


@pytest.mark.parametrize("target", ["/upload", "/_gateway/maintenance"])
def test_connections_owing_a_body_after_the_answer_are_closed(gateway: Gateway, target: str) -> None:
    """An answer that did not wait for the body (the 503, the admin API's 401), then one byte,
    then silence: uvicorn stops its keep-alive timer on that byte and never restarts it."""
    gateway.turn_on()
    httpx.get(f"{gateway.url}/_gateway/health")
    baseline = open_fds(gateway)
    sockets = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
            sock.sendall(b"PUT %s HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" % target.encode())
            assert read_head(sock).startswith((b"HTTP/1.1 503 ", b"HTTP/1.1 401 ")), target
            sock.sendall(b"x")
            sockets.append(sock)
        opened = time.monotonic()
        back = wait_until(lambda: open_fds(gateway) <= baseline, BOUND + 3)
        assert back is not None, f"{open_fds(gateway) - baseline} connections still open"
        assert time.monotonic() - opened < BOUND + 3
        assert all(closed_by_peer(sock, 1) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        b"PUT /_gateway/maintenance HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\n",
    ],
    ids=["bypass form", "admin change"],
)
def test_a_body_that_stops_arriving_on_a_route_without_a_body_timer_is_cut(gateway: Gateway, head: bytes) -> None:
    """The gateway's own routes read bodies without a timer of their own."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n{")
        started = time.monotonic()
        assert closed_by_peer(sock, 2 * TIMEOUT + BOUND)
        assert time.monotonic() - started < 2 * TIMEOUT + BOUND


def test_a_body_finished_after_the_answer_keeps_the_connection(gateway: Gateway) -> None:
    gateway.turn_on()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 503 ")
        time.sleep(TIMEOUT / 2)
        sock.sendall(b"0123456789GET /_gateway/health HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_an_idle_keep_alive_connection_outlives_the_client_timeouts(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /_gateway/health HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(BOUND)
        sock.sendall(b"GET /_gateway/health HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def _metric(gateway: Gateway, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", httpx.get(f"{gateway.url}/_gateway/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text, re.M)
    assert match, name
    return float(match.group(1))


def test_a_client_that_never_reads_a_streamed_answer_is_dropped(gateway: Gateway) -> None:
    baseline = open_fds(gateway)
    sock = socket.socket()
    # A small receive window, so the answer backs up into the gateway quickly.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", gateway.port))
        sock.sendall(b"GET /download?size=200000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")
        # Not reading any more: the gateway's send stalls, then the connection must go,
        # and with it the upstream connection that fed the answer.
        gone = wait_until(lambda: open_fds(gateway) <= baseline + 1 and _metric(gateway, "gateway_in_flight_requests") == 0, 15)
        assert gone is not None, "the connection of a client that reads nothing is still open"
        assert wait_until(
            lambda: _metric(gateway, "gateway_upstream_connections_open") == _metric(gateway, "gateway_upstream_connections_idle"), 5
        ) is not None
    finally:
        sock.close()


def test_pipelined_requests_whose_answers_are_never_read_are_dropped(gateway: Gateway) -> None:
    baseline = open_fds(gateway)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", gateway.port))
        request = b"GET /download?size=65536 HTTP/1.1\r\nHost: a\r\n\r\n"
        sent = 0
        try:
            for _ in range(4000):
                sock.sendall(request * 10)
                sent += 10
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass  # the gateway stopped reading: it has more answers waiting than the client takes
        assert sent > 100
        closed = wait_until(lambda: open_fds(gateway) <= baseline, 15)
        assert closed is not None, "a pipelining client that reads nothing still holds its connection"
    finally:
        sock.close()


@pytest.mark.parametrize("cut_by", ["client", "send timeout"])
def test_a_pipelining_client_cut_off_mid_answer_gives_back_its_place_and_upstream_connection(gateway: Gateway, cut_by: str) -> None:
    # The answer being sent is not the newest request's: a request pipelined behind it is. When
    # the connection ends, the one being answered (its place in flight, its upstream connection,
    # paused while the client did not read) must hear of it too.
    log_before = len(gateway.server.log())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", gateway.port))
        sock.sendall(b"GET /download?size=20000000 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        if cut_by == "client":
            time.sleep(0.5)
            sock.close()
        freed = wait_until(
            lambda: _metric(gateway, "gateway_in_flight_requests") == 0
            and _metric(gateway, "gateway_upstream_connections_open") == _metric(gateway, "gateway_upstream_connections_idle"),
            BOUND + 3,
        )
        assert freed is not None, "the request being answered still holds its place and its upstream connection"
    finally:
        sock.close()
    log = gateway.server.log()[log_before:]
    assert "unable to perform operation" not in log and "Fatal error" not in log, log
    assert "upstream error" not in log, "a client that left is not Django's failure"


def test_pipelined_answers_wait_for_the_client_to_read_them(raw_gateway: Gateway) -> None:
    # Answers the gateway writes itself (the status feed) to a client that pipelines and never
    # reads: once the client's window is full the gateway stops reading and answering, so the
    # client's send blocks and the gateway holds one read's requests, not every answer.
    baseline = raw_gateway.rss_kib()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(2)
    requests = b"GET /_gateway/status HTTP/1.1\r\nHost: a\r\n\r\n" * 200
    sent = 0
    blocked = False
    peak = baseline
    try:
        sock.connect(("127.0.0.1", raw_gateway.port))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                sock.sendall(requests)
            except TimeoutError:
                blocked = True
                break
            sent += 200
            if sent % 20_000 == 0:
                peak = max(peak, raw_gateway.rss_kib())
        peak = max(peak, raw_gateway.rss_kib())
    finally:
        sock.close()
    assert blocked, f"the gateway read and answered {sent:,} requests that no one read"
    assert peak - baseline < 32 * 1024, f"the gateway grew {(peak - baseline) // 1024} MiB"


def test_thousands_of_pipelined_answers_behind_a_forwarded_one_are_all_sent(gateway: Gateway) -> None:
    # The gateway's own answers are written within their turn's start; the next turn is taken
    # in a loop, not by a call from inside the last (2,000 deep, that overflowed the stack).
    log_before = len(gateway.server.log())
    requests = b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: a\r\n\r\n" + b"GET /_gateway/status HTTP/1.1\r\nHost: a\r\n\r\n" * 2000
    assert _pipelined_statuses(gateway, requests, 2001) == [b"200"] * 2001
    log = gateway.server.log()[log_before:]
    assert "RecursionError" not in log and "Fatal error" not in log


def test_a_client_pipelining_faster_than_it_is_answered_is_not_parsed_far_ahead(gateway: Gateway) -> None:
    # Every answer used to let the next read in, and every read (256 KiB) became thousands of
    # exchanges waiting their turn: memory grew by about 80 MB a second for one connection.
    baseline = gateway.rss_kib()
    peak = baseline
    count = 40_000
    request = b"GET /status/200 HTTP/1.1\r\nHost: a\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request * count,))
        sender.start()
        marker = b"HTTP/1.1 200 "
        tail = b""  # the end of the last read, shorter than a status line: none is counted twice
        answered = 0
        deadline = time.monotonic() + 60
        while answered < count and time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            window = tail + chunk
            answered += window.count(marker)
            tail = window[-(len(marker) - 1) :]
            if answered % 2000 < 50:
                peak = max(peak, gateway.rss_kib())
        sender.join(10)
    assert answered == count, f"{answered:,} of {count:,} answered"
    assert peak - baseline < 16 * 1024, f"the gateway grew {(peak - baseline) // 1024} MiB for one pipelining connection"


def _endless(gateway: Gateway, start: bytes, total: int) -> tuple[int, bytes]:
    """Send ``start`` then ``total`` bytes of one never-ending token; the peak RSS growth of the
    gateway (KiB) and what it answered."""
    baseline = gateway.rss_kib()
    peak = baseline
    answer: list[bytes] = []
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)

    def read() -> None:
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
        answer.append(received)

    reader = threading.Thread(target=read)
    reader.start()
    chunk = b"a" * 65536
    sent = 0
    try:
        sock.sendall(start)
        while sent < total and not answer:
            sock.sendall(chunk)
            sent += len(chunk)
            if sent % (1 << 20) == 0:
                peak = max(peak, gateway.rss_kib())
    except OSError:
        pass  # refused and closed while still sending
    peak = max(peak, gateway.rss_kib())
    reader.join(10)
    sock.close()
    return peak - baseline, answer[0] if answer else b""


@pytest.mark.parametrize(
    "start",
    [b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Endless: ", b"GET /echo?q="],
    ids=["header value", "request line"],
)
def test_an_endless_head_is_refused_without_holding_memory(gateway: Gateway, start: bytes) -> None:
    growth, answer = _endless(gateway, start, 40 << 20)
    assert growth < 8 * 1024, f"the gateway grew by {growth} KiB"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert httpx.get(f"{gateway.url}/_gateway/health").status_code == 200


def test_the_request_line_counts_toward_the_head_limit(gateway: Gateway, raw_upstream: str) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        assert client.get("/echo", params={"q": "a" * 20_000}).status_code == 200
        assert client.get("/echo", params={"q": "a" * 65_000}).status_code == 400
        # The line and the headers together: each alone is within the limit.
        both = client.get("/echo", params={"q": "a" * 20_000}, headers={"X-Filler": "f" * 20_000})
        assert both.status_code == 400


@pytest.mark.parametrize("path", ["/_gateway/maintenance", "/_gateway/bypass"])
def test_an_admin_body_that_stops_arriving_gets_a_408(gateway: Gateway, path: str) -> None:
    authorization = f"Authorization: Bearer {TOKEN}\r\n" if path.endswith("maintenance") else ""
    request = f"PUT {path} HTTP/1.1\r\nHost: a\r\n{authorization}Content-Type: application/json\r\n"
    if path.endswith("bypass"):
        request = request.replace("PUT", "POST", 1)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(request.encode() + b"Content-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = read_head(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer.lower()
        assert time.monotonic() - started < TIMEOUT + 1.5
        assert closed_by_peer(sock, BOUND)


def _pipelined_statuses(gateway: Gateway, data: bytes, expected: int) -> list[bytes]:
    """Send ``data`` in one write; the status lines of the answers, once ``expected`` came or the peer closed."""
    statuses: list[bytes] = []
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + 10
        while len(statuses) < expected and time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
            statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    return statuses


def test_the_head_limit_applies_to_each_pipelined_head_not_to_each_read(gateway: Gateway) -> None:
    # Two heads of 20 KB each in one write: each is within the limit, together they are not.
    log_before = len(gateway.server.log())
    padded = b"GET /status/200 HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 20_000 + b"\r\n\r\n"
    assert _pipelined_statuses(gateway, padded * 2, 2) == [b"200", b"200"]
    # Many small requests in one write, far more bytes than the limit in all.
    small = b"GET /status/200 HTTP/1.1\r\nHost: a\r\n\r\n"
    assert _pipelined_statuses(gateway, small * 2000, 2000) == [b"200"] * 2000
    # A head over the limit behind a valid one is still refused, after the valid one's answer.
    oversized = b"GET /status/200 HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 40_000 + b"\r\n\r\n"
    assert _pipelined_statuses(gateway, small + oversized, 2) == [b"200", b"400"]
    assert "unable to perform operation" not in gateway.server.log()[log_before:]
