"""Forwarding, against a real uvicorn upstream: what the upstream receives and the client gets."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import time

import httpx
import pytest

from tests.raw_http import RawUpstream, exchange_until_close, read_head
from tests.support import CORS_ENV, FRONT_ORIGIN, Gateway, free_port


def raw_request(gateway: Gateway, data: bytes, read_until_close: bool = True, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


def header_values(headers: list[list[str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def test_method_path_and_query_are_forwarded_byte_for_byte(raw_gateway: Gateway) -> None:
    target = b"/echo/a%2Fb/%7Euser/./x?q=%20space&flag&q=2&emoji=%F0%9F%98%80"
    reply = raw_request(raw_gateway, b"PATCH " + target + b" HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    echoed = httpx.Response(200, content=reply.split(b"\r\n\r\n", 1)[1]).json()
    assert echoed["method"] == "PATCH"
    assert echoed["raw_path"] == "/echo/a%2Fb/%7Euser/./x"
    assert echoed["query_string"] == "q=%20space&flag&q=2&emoji=%F0%9F%98%80"


def test_host_is_kept_and_forwarded_headers_are_set(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        echoed = client.get("/echo", headers={"Host": "shop.example"}).json()
    headers = echoed["headers"]
    assert header_values(headers, "host") == ["shop.example"]
    assert header_values(headers, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(headers, "x-forwarded-proto") == ["http"]
    assert header_values(headers, "x-forwarded-host") == ["shop.example"]


def test_forwarded_for_is_appended_for_a_trusted_peer(raw_gateway: Gateway) -> None:
    # The tests connect from 127.0.0.1, the default GATEWAY_FORWARDED_ALLOW_IPS (nginx's place).
    with raw_gateway.client() as client:
        echoed = client.get(
            "/echo", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
        ).json()
    headers = echoed["headers"]
    assert header_values(headers, "x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert header_values(headers, "x-forwarded-proto") == ["https"]
    assert header_values(headers, "x-forwarded-host") == ["shop.example"]


def test_forwarded_headers_from_an_untrusted_peer_are_replaced(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_FORWARDED_ALLOW_IPS": "10.9.9.9"}, name="gateway-untrusting")
    try:
        with gateway.client() as client:
            echoed = client.get(
                "/echo",
                headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Real-IP": "1.2.3.4", "Forwarded": "for=1.2.3.4"},
            ).json()
    finally:
        gateway.stop()
    headers = echoed["headers"]
    assert header_values(headers, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(headers, "x-forwarded-proto") == ["http"]
    assert header_values(headers, "x-real-ip") == []
    assert header_values(headers, "forwarded") == []


def test_hop_by_hop_request_headers_are_removed(raw_gateway: Gateway) -> None:
    reply = raw_request(
        raw_gateway,
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private-Req\r\nX-Private-Req: secret\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\nX-Public: yes\r\n\r\n",
    )
    echoed = httpx.Response(200, content=reply.split(b"\r\n\r\n", 1)[1]).json()
    names = {name for name, _ in echoed["headers"]}
    for name in ("x-private-req", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in names
    assert header_values(echoed["headers"], "x-public") == ["yes"]
    # The upstream connection is the gateway's own keep-alive one, whatever the client said.
    assert header_values(echoed["headers"], "connection") == []


def test_hop_by_hop_response_headers_are_removed(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        response = client.get("/hop-by-hop")
    assert response.headers["x-public"] == "kept"
    for name in ("x-private", "keep-alive", "proxy-authenticate", "upgrade"):
        assert name not in response.headers
    assert response.headers.get("connection") in (None, "keep-alive")


def test_repeated_set_cookie_headers_stay_separate_lines(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        response = client.get("/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Path=/; Secure"]


def test_head_204_and_304_have_no_body(raw_gateway: Gateway) -> None:
    head = raw_request(raw_gateway, b"HEAD /status/200 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n"
                       b"GET /status/304 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    # Three answers on one connection, in order, none with a body: any stray byte would break the framing.
    parts = head.split(b"HTTP/1.1 ")
    assert [part[:3] for part in parts[1:]] == [b"200", b"204", b"304"], head
    assert b"content-length: 2" in parts[1].lower()
    assert parts[1].endswith(b"\r\n\r\n") and parts[2].endswith(b"\r\n\r\n") and parts[3].endswith(b"\r\n\r\n")


def test_expect_100_continue_upload(raw_gateway: Gateway) -> None:
    body = b"z" * 100_000
    with socket.create_connection(("127.0.0.1", raw_gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(body)
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert b'"bytes": 100000' in reply


def test_chunked_upload_is_streamed_to_the_upstream(raw_gateway: Gateway) -> None:
    payload = [b"a" * 70_000, b"b" * 5, b"c" * 300_000]

    def chunks():
        yield from payload

    with raw_gateway.client() as client:
        result = client.post("/upload", content=chunks()).json()
    assert result["bytes"] == sum(map(len, payload))
    assert result["sha256"] == hashlib.sha256(b"".join(payload)).hexdigest()


def test_redirects_are_passed_not_followed_and_bodies_not_decompressed(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        redirect = client.get("/redirect", follow_redirects=False)
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "/echo"
        with client.stream("GET", "/gzip", headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"compressed payload " * 100


def test_upstream_connections_are_reused(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        ports = {client.get("/echo").json()["client_port"] for _ in range(20)}
    # Sequential requests ride one kept-alive upstream connection.
    assert len(ports) == 1, ports


def test_server_sent_events_arrive_chunk_by_chunk(raw_gateway: Gateway) -> None:
    arrivals = []
    with raw_gateway.client() as client:
        with client.stream("GET", "/sse", params={"count": "5", "interval": "0.3", "name": "paced"}) as response:
            assert response.headers["content-type"] == "text/event-stream"
            for chunk in response.iter_raw():
                arrivals.append((time.monotonic(), chunk))
    data = b"".join(chunk for _, chunk in arrivals)
    assert data == b"".join(b"data: %d\n\n" % n for n in range(5))
    # Five events 0.3 s apart must not arrive as one lump at the end.
    assert len(arrivals) >= 4
    assert arrivals[-1][0] - arrivals[0][0] > 0.9


def test_client_leaving_a_stream_releases_the_upstream(raw_gateway: Gateway, raw_upstream: str) -> None:
    with socket.create_connection(("127.0.0.1", raw_gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /sse?name=abandoned&interval=0.05 HTTP/1.1\r\nHost: a\r\n\r\n")
        received = b""
        while b"data: 0" not in received:
            received += sock.recv(4096)
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = httpx.get(f"{raw_upstream}/stream-stats").json()
        if "abandoned" in stats["disconnected"]:
            break
        time.sleep(0.05)
    assert "abandoned" in stats["disconnected"], stats
    assert "abandoned" not in stats["active"]


def test_large_upload_and_download_stream_through_without_being_held(log_dir, raw_upstream: str) -> None:
    size = 100 * 1024 * 1024
    gateway = Gateway(log_dir, raw_upstream, name="gateway-memory")
    try:
        with gateway.client() as client:
            client.get("/echo")  # warm up: imports and the first connection
            before = gateway.rss_kib()

            def body():
                block = b"u" * (1024 * 1024)
                for _ in range(100):
                    yield block

            uploaded = client.post("/upload", content=body(), headers={"Content-Length": str(size)}).json()
            downloaded = 0
            with client.stream("GET", "/download", params={"size": str(size)}) as response:
                for chunk in response.iter_raw():
                    downloaded += len(chunk)
            peak = gateway.rss_kib("VmHWM")
    finally:
        gateway.stop()
    assert uploaded["bytes"] == size
    assert downloaded == size
    growth_mib = (peak - before) / 1024
    assert growth_mib < 20, f"peak RSS grew by {growth_mib:.1f} MiB moving 2 x 100 MiB"


def test_upstream_down_is_a_502_with_cors(log_dir) -> None:

    gateway = Gateway(log_dir, f"http://127.0.0.1:{free_port()}", CORS_ENV, name="gateway-no-upstream")
    try:
        with gateway.client() as client:
            response = client.get("/api/hello", headers={"Origin": FRONT_ORIGIN})
    finally:
        gateway.stop()
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_unavailable"
    assert response.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["cache-control"] == "no-store"


def test_slow_upstream_is_a_504_with_cors(raw_gateway: Gateway) -> None:
    started = time.monotonic()
    with raw_gateway.client() as client:
        response = client.get("/slow", params={"delay": "4"}, headers={"Origin": FRONT_ORIGIN})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"
    assert response.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert 1.8 < elapsed < 3.5  # GATEWAY_UPSTREAM_READ_TIMEOUT=2 for this gateway


def test_http_1_0_client_without_host_gets_an_answer(raw_gateway: Gateway) -> None:
    reply = raw_request(raw_gateway, b"GET /echo HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
    echoed = httpx.Response(200, content=reply.split(b"\r\n\r\n", 1)[1]).json()
    assert header_values(echoed["headers"], "host") == [raw_gateway.env["GATEWAY_UPSTREAM_URL"].removeprefix("http://")]


class ClosingUpstream(RawUpstream):
    """An upstream that answers the first request on each connection and silently drops the
    connection on the second: the race where a kept-alive connection dies under a new request."""

    def __init__(self) -> None:
        super().__init__(self._serve_two)

    @staticmethod
    def _serve_two(conn: socket.socket, number: int) -> None:
        buffered = b""
        for request in (1, 2):
            head, buffered = read_head(conn, buffered)
            if not head:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffered) < length:
                buffered += conn.recv(65536)
            body_in, buffered = buffered[:length], buffered[length:]
            if request == 2:
                return  # closed with no answer
            body = b"connection %d got %d bytes" % (number, len(body_in))
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


def test_a_request_on_a_connection_that_died_is_sent_again(log_dir) -> None:
    upstream = ClosingUpstream()
    gateway = Gateway(log_dir, f"http://127.0.0.1:{upstream.port}", {"GATEWAY_UPSTREAM_IDLE_TIMEOUT": "30"}, name="gateway-retry")
    try:
        with gateway.client() as client:
            first = client.get("/a")
            second = client.get("/b")  # rides connection 1, which the upstream drops: retried on a new one
            third = client.post("/c", content=b"x" * 5000)  # a body in hand is replayed too
    finally:
        gateway.stop()
        upstream.close()
    assert first.text == "connection 1 got 0 bytes"
    assert second.status_code == 200 and second.text == "connection 2 got 0 bytes"
    assert third.status_code == 200 and third.text == "connection 3 got 5000 bytes"


def test_no_cookie_is_kept_between_clients(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        assert client.get("/cookies").headers.get_list("set-cookie")
    with raw_gateway.client() as other:
        echoed = other.get("/echo").json()
    # The upstream set cookies on the first client; the gateway keeps none and sends none on.
    assert header_values(echoed["headers"], "cookie") == []


def test_idle_upstream_connections_are_retired_after_the_idle_timeout(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_UPSTREAM_IDLE_TIMEOUT": "0.3"}, name="gateway-idle")
    try:
        with gateway.client() as client:
            first = client.get("/echo").json()["client_port"]
            soon = client.get("/echo").json()["client_port"]
            time.sleep(0.6)
            later = client.get("/echo").json()["client_port"]
    finally:
        gateway.stop()
    assert soon == first  # reused while fresh
    assert later != first  # retired once idle longer than GATEWAY_UPSTREAM_IDLE_TIMEOUT


def test_a_preflight_django_cannot_answer_is_answered_so_the_502_stays_readable(log_dir) -> None:

    gateway = Gateway(log_dir, f"http://127.0.0.1:{free_port()}", CORS_ENV, name="gateway-no-upstream-preflight")
    preflight = {"Origin": FRONT_ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    try:
        with gateway.client() as client:
            allowed = client.options("/api/echo", headers=preflight)
            refused = client.options("/api/echo", headers={**preflight, "Origin": "http://evil.example"})
            plain = client.options("/api/echo")
    finally:
        gateway.stop()
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    # Not a preflight from an allowed origin: Django's absence is reported as it is.
    assert refused.status_code == 502 and "access-control-allow-origin" not in refused.headers
    assert plain.status_code == 502


class BrokenAnswersUpstream(RawUpstream):
    """An upstream that answers some paths with bytes past the end of a complete response,
    or with a status outside 100-599; every other path gets ``connection N`` (its connection)."""

    SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: yes\r\n\r\nSMUGGLED"
    ANSWERS = {
        # A response with no body, then a whole second response in the same write.
        b"/no-content-and-more": b"HTTP/1.1 204 No Content\r\nContent-Length: 67\r\n\r\n" + SMUGGLED,
        b"/status-999": b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok",
        b"/status-099": b"HTTP/1.1 099 Weird\r\nContent-Length: 2\r\n\r\nok",
        # A transfer coding the gateway would have to undo (llhttp only takes the chunks apart).
        b"/gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        b"/identity": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabcde",
        # llhttp does not read "chunked" followed by a tab as chunked: it would read to the close.
        b"/chunked-tab": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
    }

    def __init__(self) -> None:
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffered = b""
        while True:
            head, buffered = read_head(conn, buffered)
            if not head:
                return
            path = head.split(b" ", 2)[1]
            if path in self.ANSWERS:
                conn.sendall(self.ANSWERS[path])
            elif path == b"/unframed":
                # No length and no chunks: the body ends when the connection does.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body, ended by the close")
                return
            elif path == b"/unframed-reset":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe first half")
                time.sleep(0.2)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed by a reset
                return
            elif path == b"/ok-then-part-of-another":
                # A complete answer, then (once the gateway holds the connection idle) the start
                # of another that no request asked for.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.2)
                conn.sendall(self.SMUGGLED[:-4])
            else:
                body = b"connection %d" % number
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_bytes_after_a_complete_upstream_answer_are_never_read_as_another(log_dir) -> None:
    upstream = BrokenAnswersUpstream()
    gateway = Gateway(log_dir, upstream.url, {"GATEWAY_UPSTREAM_IDLE_TIMEOUT": "30"}, name="gateway-broken-answers")
    try:
        with gateway.client() as client:
            no_content = client.get("/no-content-and-more")
            after_no_content = client.get("/next")
            ok = client.get("/ok-then-part-of-another")
            time.sleep(0.5)
            after_part = client.get("/next")
    finally:
        gateway.stop()
        upstream.close()
    # The first message reaches the client as it was; what followed it is dropped with the connection.
    assert no_content.status_code == 204 and no_content.content == b""
    assert "x-smuggled" not in no_content.headers
    assert after_no_content.status_code == 200 and after_no_content.text == "connection 2"
    assert ok.status_code == 200 and ok.text == "ok"
    assert after_part.status_code == 200 and after_part.text == "connection 3"
    assert "Traceback" not in gateway.server.log()


def test_a_status_outside_100_to_599_is_a_502(log_dir) -> None:
    upstream = BrokenAnswersUpstream()
    gateway = Gateway(log_dir, upstream.url, {}, name="gateway-bad-status")
    try:
        with gateway.client() as client:
            answers = [client.get(path) for path in ("/status-999", "/status-099")]
    finally:
        gateway.stop()
        upstream.close()
    for answer in answers:
        assert answer.status_code == 502, answer.content
        assert answer.json()["error"] == "upstream_unavailable"
    assert "Traceback" not in gateway.server.log()


@pytest.mark.parametrize("path", ["/gzip-chunked", "/identity", "/chunked-tab"])
def test_an_upstream_transfer_coding_other_than_chunked_is_a_502(log_dir, path: str) -> None:
    upstream = BrokenAnswersUpstream()
    gateway = Gateway(log_dir, upstream.url, {}, name="gateway-transfer-coding")
    try:
        with gateway.client() as client:
            answer = client.get(path)
            after = client.get("/next")
    finally:
        gateway.stop()
        upstream.close()
    assert answer.status_code == 502 and answer.json()["error"] == "upstream_unavailable"
    assert after.status_code == 200
    assert "Traceback" not in gateway.server.log()


def test_an_answer_without_a_length_reaches_an_http_1_0_client_ended_by_the_close(log_dir) -> None:
    # HTTP/1.0 clients know no chunks: the close ends the body. HTTP/1.1 clients get it chunked,
    # also on a connection that closes after it, so that a cut answer shows as cut.
    upstream = BrokenAnswersUpstream()
    gateway = Gateway(log_dir, upstream.url, {}, name="gateway-unframed")
    try:
        old_client = exchange_until_close(gateway.port, b"GET /unframed HTTP/1.0\r\nHost: a\r\n\r\n")
        closing = exchange_until_close(gateway.port, b"GET /unframed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        with gateway.client() as client:
            kept_open = client.get("/unframed")
    finally:
        gateway.stop()
        upstream.close()
    head, _, body = old_client.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), old_client
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower(), head
    assert body == b"the body, ended by the close"
    head, _, body = closing.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower() and b"connection: close" in head.lower(), head
    assert body.endswith(b"the body, ended by the close\r\n0\r\n\r\n"), body
    assert kept_open.headers["transfer-encoding"] == "chunked" and kept_open.text == "the body, ended by the close"


def _read_until_close(sock: socket.socket) -> tuple[bytes, str]:
    """What a peer sent until it closed, and how: "closed" (FIN) or "reset" (RST)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        return received, "reset"
    return received, "closed"


def test_an_answer_without_a_length_cut_by_the_upstream_shows_as_cut(log_dir) -> None:
    # Django's connection is reset halfway through an answer with no length: never relayed as
    # a whole answer (a last chunk, or a clean close to an HTTP/1.0 client).
    upstream = BrokenAnswersUpstream()
    gateway = Gateway(log_dir, upstream.url, {}, name="gateway-unframed-cut")
    try:
        outcomes = {}
        for version in ("HTTP/1.0", "HTTP/1.1"):
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
                sock.sendall(f"GET /unframed-reset {version}\r\nHost: a\r\n\r\n".encode())
                outcomes[version] = _read_until_close(sock)
    finally:
        gateway.stop()
        upstream.close()
    old_reply, old_end = outcomes["HTTP/1.0"]
    assert old_reply.startswith(b"HTTP/1.1 200 ") and old_reply.endswith(b"the first half"), old_reply
    assert old_end == "reset", "a cut body ended by a clean close reads as whole to an HTTP/1.0 client"
    new_reply, _ = outcomes["HTTP/1.1"]
    assert b"transfer-encoding: chunked" in new_reply.lower() and b"the first half" in new_reply, new_reply
    assert not new_reply.endswith(b"0\r\n\r\n"), "a cut answer was given its last chunk"
