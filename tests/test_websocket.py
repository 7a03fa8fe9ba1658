"""WebSockets through a real gateway process to a real upstream (uvicorn).

What is checked is what each side really received: the upstream reports the handshake it
saw and the close codes it got; the client reads frames off the wire.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.frames import CloseCode

from gateway.websocket import MAX_CLOSE_REASON_BYTES, close_reason, maintenance_reason
from tests.support import CORS_ENV, Gateway, maintenance_off_after
from tests.websocket_support import (
    BROWSER_ORIGIN,
    closed_with,
    open_socket,
    start_websocket_upstream,
    upstream_stats,
    wait_until,
)

BYPASS_SECRET = "websocket-bypass-secret-0123456789"


@pytest.fixture(scope="module")
def ws_upstream(log_dir: Path) -> Iterator[str]:
    server, url = start_websocket_upstream(log_dir)
    yield url
    server.stop()


@pytest.fixture(scope="module")
def ws_gateway(log_dir: Path, ws_upstream: str) -> Iterator[Gateway]:
    env = {
        **CORS_ENV,
        "GATEWAY_BYPASS_SECRET": BYPASS_SECRET,
        "GATEWAY_BYPASS_PATHS": "/feeds/public",
        "GATEWAY_RETRY_AFTER": "120",
    }
    gateway = Gateway(log_dir, ws_upstream, env, name="gateway-ws")
    yield gateway
    gateway.stop()


@pytest.fixture
def gateway(ws_gateway: Gateway) -> Iterator[Gateway]:
    yield from maintenance_off_after(ws_gateway)


# --- pass-through -------------------------------------------------------------------------------


def test_text_and_binary_messages_pass_both_ways(gateway: Gateway) -> None:
    with open_socket(gateway.url) as ws:
        ws.send("hello ✓")
        assert ws.recv(timeout=5) == "hello ✓"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"


def test_the_handshake_is_forwarded_like_a_request(gateway: Gateway) -> None:
    with open_socket(
        gateway.url,
        "/room/a%2Fb?x=1&y=%20",
        subprotocols=["chat.v1", "chat.v2"],
        additional_headers={
            "Cookie": "session=abc; maintenance_bypass=nope; theme=dark",
            "X-Maintenance-Bypass": "not-the-secret",
            "X-Custom": "kept",
            "Keep-Alive": "timeout=5",
        },
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response is not None and ws.response.headers["Set-Cookie"] == "seen=1; Path=/"
        ws.send("cmd:seen")
        seen = json.loads(ws.recv(timeout=5))
    headers: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name, []).append(value)
    assert seen["raw_path"] == "/room/a%2Fb"
    assert seen["query_string"] == "x=1&y=%20"
    assert headers["host"] == [gateway.url.removeprefix("http://")]
    assert headers["origin"] == [BROWSER_ORIGIN]
    assert headers["cookie"] == ["session=abc; theme=dark"]
    assert headers["x-custom"] == ["kept"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]  # the scheme of the HTTP request, as nginx sends it
    assert headers["x-forwarded-host"] == headers["host"]
    assert "x-maintenance-bypass" not in headers and "keep-alive" not in headers
    assert seen["subprotocols"] == ["chat.v1", "chat.v2"]
    # The extensions are negotiated per hop: nothing of the client's offer reaches Django.
    assert "sec-websocket-extensions" not in headers


def test_one_megabyte_and_fragmented_messages(gateway: Gateway) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    with open_socket(gateway.url) as ws:
        ws.send(big)
        assert ws.recv(timeout=10) == big
        text = "é" * (512 * 1024)  # 1 MiB of UTF-8
        ws.send(text)
        assert ws.recv(timeout=10) == text
        ws.send(iter(["frag", "mented ", "message"]))  # three frames, one message
        assert ws.recv(timeout=5) == "fragmented message"
        ws.send(iter([b"\x01", b"\x02\x03"]))
        assert ws.recv(timeout=5) == b"\x01\x02\x03"


def test_pings_are_answered(gateway: Gateway) -> None:
    with open_socket(gateway.url) as ws:
        latency = ws.ping(b"are you there").wait(5)
        assert latency is True


def test_close_codes_and_reasons_pass_both_ways(gateway: Gateway, ws_upstream: str) -> None:
    ws = open_socket(gateway.url, "/client-closes")
    ws.send("x")
    ws.recv(timeout=5)
    ws.close(4001, "client done")
    closes = wait_until(lambda: [c for c in upstream_stats(ws_upstream)["closes"] if c["path"] == "/client-closes"])
    assert closes[-1] == {"path": "/client-closes", "code": 4001, "reason": "client done"}

    with open_socket(gateway.url) as ws:
        ws.send("cmd:close:4002:upstream done ✓")
        assert closed_with(ws) == (4002, "upstream done ✓")


def test_a_client_that_vanishes_releases_the_upstream(gateway: Gateway, ws_upstream: str) -> None:
    baseline = upstream_stats(ws_upstream)["open"]
    port = int(gateway.url.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(
        b"GET /vanish HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert raw.recv(4096).startswith(b"HTTP/1.1 101")
    wait_until(lambda: upstream_stats(ws_upstream)["open"] == baseline + 1)
    raw.close()  # no close frame
    wait_until(lambda: upstream_stats(ws_upstream)["open"] == baseline)
    close = [c for c in upstream_stats(ws_upstream)["closes"] if c["path"] == "/vanish"][-1]
    assert close["code"] == CloseCode.GOING_AWAY


def test_upstream_refusal_reaches_the_client(gateway: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(gateway.url, "/refuse", origin=None)
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"origin not allowed"


def metric_value(metrics: str, name: str) -> float:
    """One sample of a Prometheus text page, 0 when the series is not there yet."""
    for line in metrics.splitlines():
        if line.rpartition(" ")[0] == name:
            return float(line.rpartition(" ")[2])
    return 0.0


def test_metrics_count_sockets_messages_and_closes(gateway: Gateway) -> None:
    names = {
        "messages": 'gateway_websocket_messages_total{direction="client_to_upstream"}',
        "bytes": 'gateway_websocket_bytes_total{direction="client_to_upstream"}',
        "closes": 'gateway_websocket_closes_total{code="1000"}',
    }
    before = gateway.metrics()
    with open_socket(gateway.url) as ws:
        ws.send("abcd")
        ws.recv(timeout=5)
        assert metric_value(gateway.metrics(), "gateway_websockets_open") == 1
    wait_until(lambda: metric_value(gateway.metrics(), "gateway_websockets_open") == 0)
    after = gateway.metrics()
    moved = {key: metric_value(after, name) - metric_value(before, name) for key, name in names.items()}
    assert moved == {"messages": 1, "bytes": 4, "closes": 1}


# --- maintenance --------------------------------------------------------------------------------


def test_maintenance_closes_open_sockets_and_refuses_new_ones_readably(gateway: Gateway) -> None:
    ws = open_socket(gateway.url)
    ws.send("before")
    assert ws.recv(timeout=5) == "before"
    kept_by_header = open_socket(gateway.url, additional_headers={"X-Maintenance-Bypass": BYPASS_SECRET})
    kept_by_path = open_socket(gateway.url, "/feeds/public/stock")

    started = time.monotonic()
    gateway.turn_on(message="Back at 10:00 UTC")
    code, reason = closed_with(ws)
    assert code == CloseCode.TRY_AGAIN_LATER
    assert reason == "maintenance; retry-after=120; Back at 10:00 UTC"
    assert time.monotonic() - started < 3

    # A new socket from a browser: accepted, then closed the same readable way.
    with open_socket(gateway.url, subprotocols=["chat.v2"]) as fresh:
        assert closed_with(fresh) == (1013, "maintenance; retry-after=120; Back at 10:00 UTC")
    # A client that sends no Origin (not a browser) gets the JSON 503.
    with pytest.raises(InvalidStatus) as refused:
        open_socket(gateway.url, origin=None)
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body)["error"] == "maintenance"
    assert refused.value.response.headers["Retry-After"] == "120"

    for kept in (kept_by_header, kept_by_path):
        kept.send("still here")
        assert kept.recv(timeout=5) == "still here"
        kept.close()
    with open_socket(gateway.url, additional_headers={"Cookie": "x=1"}) as refused_socket:
        assert closed_with(refused_socket)[0] == 1013

    gateway.turn_off()
    with open_socket(gateway.url) as after:
        after.send("after")
        assert after.recv(timeout=5) == "after"


def test_a_scheduled_window_closes_sockets_when_it_starts(gateway: Gateway) -> None:
    with open_socket(gateway.url) as ws:
        starts = time.time() + 1.0
        gateway.turn_on(starts_at=starts, message="Scheduled")
        ws.send("still open before the start")
        assert ws.recv(timeout=5) == "still open before the start"
        code, reason = closed_with(ws, timeout=5)
        assert time.time() >= starts
        assert code == 1013 and reason.startswith("maintenance; retry-after=") and reason.endswith("; Scheduled")


def test_read_only_maintenance_closes_sockets_too(gateway: Gateway) -> None:
    with open_socket(gateway.url) as ws:
        gateway.turn_on(mode="read-only")
        code, reason = closed_with(ws)
        assert code == 1013 and reason.startswith("maintenance; ")


def test_partial_maintenance_closes_only_the_sockets_in_its_scope(gateway: Gateway) -> None:
    inside = open_socket(gateway.url, "/chat/support")
    outside = open_socket(gateway.url, "/orders/status")
    gateway.turn_on(scope=("/chat/",), message="Chat is being upgraded")
    assert closed_with(inside) == (1013, "maintenance; retry-after=120; Chat is being upgraded")
    outside.send("still served")
    assert outside.recv(timeout=5) == "still served"
    with open_socket(gateway.url, "/chat/sales") as fresh:
        assert closed_with(fresh)[0] == 1013
    with open_socket(gateway.url, "/orders/other") as fresh:
        fresh.send("in")
        assert fresh.recv(timeout=5) == "in"
    outside.close()


def test_the_close_reason_fits_a_control_frame_on_a_character_boundary() -> None:
    reason = maintenance_reason("ü" * 200, 300)
    encoded = reason.encode()
    assert len(encoded) <= MAX_CLOSE_REASON_BYTES
    assert len(encoded) in (MAX_CLOSE_REASON_BYTES, MAX_CLOSE_REASON_BYTES - 1)
    assert reason.startswith("maintenance; retry-after=300; ü")
    assert close_reason("short") == "short"
    assert close_reason("€" * 41) == "€" * 41  # 123 bytes exactly


def test_a_long_message_is_cut_in_the_close_frame(gateway: Gateway) -> None:
    with open_socket(gateway.url) as ws:
        gateway.turn_on(message="Wartung läuft " * 20)
        code, reason = closed_with(ws)
        assert code == 1013 and len(reason.encode()) <= 123 and reason.startswith("maintenance; retry-after=120; Wartung")


# --- gateways of their own: limits, a dying upstream, stopping ----------------------------------


def test_limits_on_open_sockets_and_message_size(log_dir: Path, ws_upstream: str) -> None:
    gateway = Gateway(
        log_dir,
        ws_upstream,
        {"GATEWAY_WEBSOCKET_MAX_CONNECTIONS": "2", "GATEWAY_WEBSOCKET_MAX_MESSAGE_BYTES": "65536"},
        name="gateway-ws-limits",
    )
    try:
        first, second = open_socket(gateway.url), open_socket(gateway.url)
        with open_socket(gateway.url) as third:
            code, reason = closed_with(third)
            assert code == 1013 and reason.startswith("overloaded")
        with pytest.raises(InvalidStatus) as refused:
            open_socket(gateway.url, origin=None)
        assert refused.value.response.status_code == 503
        second.close()
        first.send(b"x" * 65536)
        assert len(first.recv(timeout=5)) == 65536
        first.send(b"x" * 65537)
        assert closed_with(first)[0] == CloseCode.MESSAGE_TOO_BIG
        with open_socket(gateway.url) as ws:
            ws.send("cmd:flood:1:70000")  # the upstream's message over the limit
            assert closed_with(ws)[0] == CloseCode.MESSAGE_TOO_BIG
    finally:
        gateway.stop()


def test_a_dying_upstream_closes_the_client_with_1011(log_dir: Path) -> None:
    upstream, url = start_websocket_upstream(log_dir, name="websocket-upstream-dies")
    gateway = Gateway(log_dir, url, name="gateway-ws-dies")
    try:
        ws = open_socket(gateway.url)
        ws.send("x")
        ws.recv(timeout=5)
        baseline = len(_gateway_fds(gateway))
        upstream.stop(sig=9)
        code, _ = closed_with(ws)
        assert code == CloseCode.INTERNAL_ERROR
        wait_until(lambda: len(_gateway_fds(gateway)) < baseline)
        # No upstream at all: a client that can read HTTP gets the gateway's 502.
        with pytest.raises(InvalidStatus) as refused:
            open_socket(gateway.url, origin=None)
        assert refused.value.response.status_code == 502
    finally:
        gateway.stop()


def test_sigterm_lets_sockets_run_until_the_drain_ends_then_says_going_away(log_dir: Path, ws_upstream: str) -> None:
    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_DRAIN_TIMEOUT": "2"}, name="gateway-ws-drain")
    ws = open_socket(gateway.url)
    stopped = time.monotonic()
    gateway.server.process.send_signal(15)
    time.sleep(0.5)
    ws.send("during the drain")  # still relayed
    assert ws.recv(timeout=5) == "during the drain"
    code, reason = closed_with(ws, timeout=10)
    assert code == CloseCode.GOING_AWAY
    assert time.monotonic() - stopped >= 1.3
    assert gateway.server.process.wait(10) == 0


def _gateway_fds(gateway: Gateway) -> list[str]:
    return [path.name for path in Path(f"/proc/{gateway.pid}/fd").iterdir()]


def test_a_slow_reader_does_not_grow_the_gateways_memory(gateway: Gateway) -> None:
    with open_socket(gateway.url, max_queue=1) as ws:
        before = gateway.rss_kib()
        ws.send("cmd:flood:300:262144")  # 75 MiB that the client does not read for a while
        time.sleep(2)
        grown = gateway.rss_kib() - before
        assert grown < 16 * 1024, f"the gateway grew by {grown} KiB"
        received = 0
        while True:
            message = ws.recv(timeout=30)
            if message == "flood done":
                break
            received += len(message)
        assert received == 300 * 262144


def test_a_thousand_sockets_at_once_leave_no_descriptor_behind(log_dir: Path, ws_upstream: str) -> None:
    import asyncio
    import resource

    from websockets.asyncio.client import connect

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip("needs RLIMIT_NOFILE of at least 4096")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_WEBSOCKET_MAX_CONNECTIONS": "2000", "GATEWAY_WEBSOCKET_MAX_PER_CLIENT": "2000"}, name="gateway-ws-thousand")
    try:
        baseline = len(_gateway_fds(gateway))
        url = "ws://" + gateway.url.removeprefix("http://") + "/echo"

        async def run() -> None:
            async def one(number: int) -> None:
                async with connect(url, open_timeout=30, ping_interval=None, compression=None) as ws:
                    await ws.send(f"n{number}")
                    assert await ws.recv() == f"n{number}"
                    await hold.wait()

            hold = asyncio.Event()
            tasks = [asyncio.create_task(one(n)) for n in range(1000)]
            wait = asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_until(lambda: "gateway_websockets_open 1000" in gateway.metrics(), timeout=60, interval=0.2)
            )
            await wait
            hold.set()
            await asyncio.gather(*tasks)

        asyncio.run(run())
        wait_until(lambda: len(_gateway_fds(gateway)) <= baseline, timeout=20, interval=0.1)
        assert "gateway_websockets_open 0" in gateway.metrics()
    finally:
        gateway.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))



def _raw_handshake(port: int, path: str, extra: bytes = b"") -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    return raw


def test_a_client_that_stops_reading_and_answering_is_dropped(log_dir: Path, ws_upstream: str) -> None:
    """It answers no ping and reads nothing while Django floods it: the gateway drops it one
    ping interval after an unanswered ping, and releases the upstream."""
    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_WEBSOCKET_PING_INTERVAL": "0.5"}, name="gateway-ws-stuck")
    try:
        baseline = upstream_stats(ws_upstream)["open"]
        raw = _raw_handshake(gateway.port, "/stuck")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        command = b"cmd:flood:400:65536"
        raw.sendall(bytes([0x81, 0x80 | len(command)]) + b"\x00\x00\x00\x00" + command)  # masked, key 0
        wait_until(lambda: upstream_stats(ws_upstream)["open"] == baseline + 1)
        # Never read again: the gateway's buffer toward this client stays full.
        wait_until(lambda: upstream_stats(ws_upstream)["open"] == baseline, timeout=10)
        assert "gateway_websockets_open 0" in gateway.metrics()
        raw.close()
    finally:
        gateway.stop()


@pytest.mark.parametrize("host", [b"Host: a b\r\n", b"Host: a.example\r\nHost: b.example\r\n"])
def test_a_handshake_with_a_bad_host_is_refused_with_400(ws_gateway: Gateway, host: bytes) -> None:
    raw = socket.create_connection(("127.0.0.1", ws_gateway.port))
    raw.sendall(
        b"GET /echo HTTP/1.1\r\n" + host + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    raw.settimeout(5)
    assert raw.recv(4096).split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 ")
    raw.close()


def test_a_client_that_reads_nothing_is_dropped_after_the_maintenance_close(log_dir: Path, ws_upstream: str) -> None:
    # Its first ping would come 2 s after the handshake: the close frame goes first, and no ping follows it.
    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_WEBSOCKET_PING_INTERVAL": "2"}, name="gateway-ws-stuck-close")
    try:
        baseline = len(_gateway_fds(gateway))
        raw = _raw_handshake(gateway.port, "/stuck-close")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        command = b"cmd:flood:20:4096"  # enough to fill the client's window, not the gateway's buffer
        raw.sendall(bytes([0x81, 0x80 | len(command)]) + b"\x00\x00\x00\x00" + command)
        wait_until(lambda: metric_value(gateway.metrics(), "gateway_websockets_open") == 1)
        gateway.turn_on()
        started = time.monotonic()
        # The gateway let go of the client's connection (and Django's), though the client never
        # read the close frame (nor much before it) and never closed its end.
        wait_until(lambda: len(_gateway_fds(gateway)) <= baseline, timeout=10)
        assert time.monotonic() - started < 4
        raw.close()
    finally:
        gateway.stop()


def test_the_gateways_own_paths_are_never_forwarded(gateway: Gateway, ws_upstream: str) -> None:
    for path in ("/_gateway/health", "/_gateway"):
        with pytest.raises(InvalidStatus) as refused:
            open_socket(gateway.url, path)
        assert refused.value.response.status_code == 403
    with open_socket(gateway.url, "/_gatewayish") as ws:  # only whole segments are the gateway's
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    reached = {close["path"] for close in upstream_stats(ws_upstream)["closes"]}
    assert "/_gatewayish" in reached
    assert not reached & {"/_gateway/health", "/_gateway"}


def test_a_slow_upstream_holds_the_client_back(log_dir: Path, ws_upstream: str) -> None:
    """Django reads nothing: the client's messages wait in the client, not in the gateway; and
    a client that leaves meanwhile is noticed (by the next ping: the gateway is not reading
    it) and releases the connection to Django that the relay was waiting on."""
    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_WEBSOCKET_PING_INTERVAL": "0.5"}, name="gateway-ws-silent")
    try:
        _slow_upstream(gateway)
    finally:
        gateway.stop()


def _slow_upstream(gateway: Gateway) -> None:
    import threading

    ws = open_socket(gateway.url, "/silent")
    before = gateway.rss_kib()
    chunk = b"y" * (1 << 20)
    sent = []

    def flood() -> None:
        try:
            for _ in range(60):
                ws.send(chunk)
                sent.append(1)
        except Exception:  # noqa: BLE001 - the connection is cut under it at the end
            pass

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    time.sleep(2)
    grown = gateway.rss_kib() - before
    assert len(sent) < 60, "60 MiB went into a connection nobody reads"
    assert grown < 16 * 1024, f"the gateway grew by {grown} KiB"
    # The sender is stuck in a full TCP window (its pongs too, so the gateway may already have
    # dropped it): cut the connection under it. The gateway, itself waiting for Django to
    # take a message, lets go of both sides.
    try:
        ws.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sender.join(10)
    ws.close_socket()
    wait_until(lambda: "gateway_websockets_open 0" in gateway.metrics())


def test_a_browser_gets_no_maintenance_close_when_django_is_unreachable(log_dir: Path) -> None:
    from tests.support import free_port

    gateway = Gateway(log_dir, f"http://127.0.0.1:{free_port()}", name="gateway-ws-nothing-behind")
    try:
        with pytest.raises(InvalidStatus) as refused:
            open_socket(gateway.url)  # with an Origin, as a browser
        assert refused.value.response.status_code == 502
    finally:
        gateway.stop()


# --- the handshake's request target, the notice Django is sent, quiet refusals, bounded metrics --


def _raw_exchange(port: int, target: bytes, extra: bytes = b"Origin: " + BROWSER_ORIGIN.encode() + b"\r\n") -> tuple[bytes, int | None, bytes]:
    """A handshake from raw bytes; if it is accepted, ``cmd:seen`` is sent. The status line, then
    the opcode and payload of the first frame the client receives (None, b"" when refused)."""
    raw = socket.create_connection(("127.0.0.1", port))
    raw.settimeout(5)
    try:
        raw.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = raw.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            return status, None, b""
        command = b"cmd:seen"
        raw.sendall(bytes([0x81, 0x80 | len(command)]) + b"\x00\x00\x00\x00" + command)  # masked, key 0
        while True:
            if len(data) >= 2:
                length, offset = data[1] & 0x7F, 2
                if length == 126:  # the seen handshake is longer than 125 bytes, never over 64 KiB
                    length, offset = (int.from_bytes(data[2:4], "big"), 4) if len(data) >= 4 else (1 << 20, 4)
                if len(data) >= offset + length:
                    return status, data[0] & 0x0F, data[offset : offset + length]
            chunk = raw.recv(65536)
            assert chunk, "the connection closed before a whole frame arrived"
            data += chunk
    finally:
        raw.close()


@pytest.mark.parametrize("scheme", [b"http", b"HTTP"])
def test_an_absolute_form_target_is_routed_by_its_path(gateway: Gateway, scheme: bytes) -> None:
    """``GET http://host/path`` is routed as HTTP requests are (by its path and query), so
    partial maintenance and the gateway's own prefix apply to it, and Django sees the path."""
    gateway.turn_on(scope=("/chat/",), message="Chat is being upgraded")
    status, opcode, payload = _raw_exchange(gateway.port, scheme + b"://shop.example/chat/room")
    assert status.startswith(b"HTTP/1.1 101")
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == CloseCode.TRY_AGAIN_LATER
    assert payload[2:].startswith(b"maintenance; ")

    status, _, _ = _raw_exchange(gateway.port, scheme + b"://shop.example/_gateway/health")
    assert status.startswith(b"HTTP/1.1 403")

    status, opcode, payload = _raw_exchange(gateway.port, scheme + b"://shop.example/orders/a%2Fb?x=1")
    assert status.startswith(b"HTTP/1.1 101") and opcode == 0x1
    seen = json.loads(payload)
    assert (seen["path"], seen["raw_path"], seen["query_string"]) == ("/orders/a/b", "/orders/a%2Fb", "x=1")


@pytest.mark.parametrize("target", [b"*", b"http://shop.example", b"http://shop.example?x=1", b"shop.example:443"])
def test_a_handshake_whose_target_is_not_a_path_is_refused_with_400(ws_gateway: Gateway, target: bytes) -> None:
    status, _, _ = _raw_exchange(ws_gateway.port, target)
    assert status.startswith(b"HTTP/1.1 400")


def _notice_django_saw(gateway: Gateway, path: str = "/orders/live") -> dict[str, object] | None:
    with open_socket(gateway.url, path) as ws:
        ws.send("cmd:seen")
        seen = json.loads(ws.recv(timeout=5))
    notices = [value for name, value in seen["headers"] if name == "x-maintenance-notice"]
    assert len(notices) <= 1
    return json.loads(notices[0]) if notices else None


def test_the_handshake_carries_the_notice_as_it_stands_now(gateway: Gateway) -> None:
    """No HTTP request passes the gateway here: the handshakes alone must see each change."""
    starts = time.time() + 1.0
    gateway.turn_on(scope=("/chat/",), starts_at=starts)
    upcoming = _notice_django_saw(gateway)
    assert upcoming is not None and upcoming["upcoming"] is True
    # The window starts by the clock alone (no store change).
    time.sleep(max(0.0, starts - time.time()) + 0.1)
    started = _notice_django_saw(gateway)
    assert started is not None and started["upcoming"] is False and started["scope"] == ["/chat/"]
    gateway.turn_off()
    assert _notice_django_saw(gateway) is None
    gateway.turn_on(mode="read-only", starts_at=time.time() + 60)
    read_only = _notice_django_saw(gateway)
    assert read_only is not None and read_only["mode"] == "read-only"


def test_refusals_answered_with_http_log_no_error(gateway: Gateway) -> None:
    """A non-browser's refused handshake (the gateway's 503, Django's 403) completes the
    handshake as the server expects: nothing is logged as an error."""
    logged_before = len(gateway.server.log())
    with pytest.raises(InvalidStatus) as refused_by_django:
        open_socket(gateway.url, "/refuse", origin=None)
    assert refused_by_django.value.response.status_code == 403
    gateway.turn_on()
    with pytest.raises(InvalidStatus) as refused_for_maintenance:
        open_socket(gateway.url, origin=None)
    assert refused_for_maintenance.value.response.status_code == 503
    time.sleep(0.3)  # the server logs after the application returns
    logged = gateway.server.log()[logged_before:]
    assert "without completing handshake" not in logged
    assert "ERROR" not in logged


def test_close_codes_a_client_chooses_are_counted_under_one_label(gateway: Gateway) -> None:
    other_before = metric_value(gateway.metrics(), 'gateway_websocket_closes_total{code="other"}')
    for code in (4000, 4001, 3999, 4999):
        ws = open_socket(gateway.url)
        ws.send("x")
        ws.recv(timeout=5)
        ws.close(code, "application code")
    wait_until(lambda: "gateway_websockets_open 0" in gateway.metrics())
    lines = [line for line in gateway.metrics().splitlines() if line.startswith("gateway_websocket_closes_total{")]
    labels = {line.split('"')[1] for line in lines}
    assert "other" in labels
    assert labels <= {"other"} | {str(code) for code in range(1000, 1016)}
    assert metric_value(gateway.metrics(), 'gateway_websocket_closes_total{code="other"}') - other_before == 4
