"""What one hostile WebSocket client can make a real gateway process hold, in memory, fds and
time: ping floods, fragment floods, handshakes the WebSocket parser refuses, one client taking
every slot. Raw sockets where the bytes matter, and through the
shipped nginx template where nginx changes what arrives.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.support import Gateway, start_nginx
from tests.websocket_support import closed_with, open_socket, start_websocket_upstream, wait_until

KEY_HEADERS = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(scope="module")
def ws_upstream(log_dir: Path) -> Iterator[str]:
    server, url = start_websocket_upstream(log_dir, name="websocket-upstream-attacks")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def ws_gateway(log_dir: Path, ws_upstream: str) -> Iterator[Gateway]:
    env = {"GATEWAY_CLIENT_BODY_TIMEOUT": "1", "GATEWAY_WEBSOCKET_PING_INTERVAL": "5"}
    gateway = Gateway(log_dir, ws_upstream, env, name="gateway-ws-attacks")
    yield gateway
    gateway.stop()


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A client frame: masked with the all-zero key, so the payload travels as it is."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        head = bytes([first, 0x80 | len(payload)])
    elif len(payload) < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + b"\x00\x00\x00\x00" + payload


PING, TEXT, BINARY, CONTINUATION, CLOSE = 0x9, 0x1, 0x2, 0x0, 0x8


def handshake(port: int, path: str = "/echo", extra: bytes = b"", rcvbuf: int | None = None) -> socket.socket:
    raw = socket.socket()
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window stays small
    raw.connect(("127.0.0.1", port))
    raw.settimeout(5)
    raw.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + KEY_HEADERS + extra + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        piece = raw.recv(1)
        assert piece, f"closed during the handshake: {head!r}"
        head += piece
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw


def read_frames(raw: socket.socket, seconds: float) -> list[tuple[int, bytes]]:
    """Server frames (opcode, payload) read for ``seconds`` or until the connection ends."""
    raw.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            piece = raw.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    frames = []
    while len(data) >= 2:
        length = data[1] & 0x7F
        offset = 2
        if length == 126:
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        frames.append((data[0] & 0x0F, data[offset : offset + length]))
        data = data[offset + length :]
    return frames


def send_for(raw: socket.socket, chunks: Iterator[bytes], seconds: float) -> int:
    """Send ``chunks`` for at most ``seconds`` (the gateway may stop reading, or close); bytes sent."""
    raw.settimeout(seconds)
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        for chunk in chunks:
            if time.monotonic() > deadline:
                break
            raw.sendall(chunk)
            sent += len(chunk)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    return sent


def rss_growth_during(gateway: Gateway, action: "threading.Thread") -> int:
    """The most the gateway's resident memory rose above where it was, while ``action`` ran (KiB)."""
    before = gateway.rss_kib()
    peak = before
    action.start()
    while action.is_alive():
        peak = max(peak, gateway.rss_kib())
        time.sleep(0.05)
    return max(peak, gateway.rss_kib()) - before


# -- 1. ping floods --------------------------------------------------------------------------------


def _ping_flood(port: int, count: int, path: str = "/echo", seconds: float = 20.0) -> threading.Thread:
    def flood() -> None:
        raw = handshake(port, path, rcvbuf=4096)
        batch = frame(PING, b"p" * 125) * 1000
        send_for(raw, (batch for _ in range(count // 1000)), seconds)
        raw.close()

    return threading.Thread(target=flood)


def test_a_ping_flood_from_a_client_that_reads_nothing_holds_no_memory(ws_gateway: Gateway) -> None:
    # 300,000 pings of 125 bytes: 38 MB of pongs nobody reads. Only the latest is owed.
    grown = rss_growth_during(ws_gateway, _ping_flood(ws_gateway.port, 300_000))
    assert grown < 8 * 1024, f"the gateway grew by {grown} KiB"
    assert ws_gateway.server.process.poll() is None


def test_a_ping_flood_through_nginx_holds_no_memory(log_dir: Path, ws_upstream: str) -> None:
    gateway = Gateway(log_dir, ws_upstream, name="gateway-ws-ping-nginx")
    nginx, nginx_url = start_nginx(log_dir, gateway.port, name="nginx-ws-ping")
    try:
        port = int(nginx_url.rsplit(":", 1)[1])
        grown = rss_growth_during(gateway, _ping_flood(port, 300_000))
        assert grown < 8 * 1024, f"the gateway grew by {grown} KiB"
    finally:
        nginx.stop()
        gateway.stop()


def test_the_latest_ping_is_answered_once_the_client_reads_again(ws_gateway: Gateway) -> None:
    raw = handshake(ws_gateway.port, rcvbuf=4096)
    flood = frame(TEXT, b"cmd:flood:64:65536")  # 4 MiB from Django that the client leaves unread
    raw.sendall(flood)
    time.sleep(1)
    raw.sendall(b"".join(frame(PING, b"%06d" % n) for n in range(2000)))
    time.sleep(1)
    frames = read_frames(raw, 5)
    raw.close()
    pongs = [payload for opcode, payload in frames if opcode == 0xA]
    assert pongs, "no pong at all"
    assert pongs[-1] == b"001999"  # the latest ping is answered
    assert len(pongs) < 2000  # not every one of the pings sent while the client was not reading


def test_a_socket_in_its_closing_handshake_answers_no_pings(ws_gateway: Gateway) -> None:
    ws_gateway.turn_on(message="Back soon")
    try:
        raw = handshake(ws_gateway.port, extra=b"Origin: http://localhost:4200\r\n")
        first = read_frames(raw, 0.5)
        assert first and first[0][0] == CLOSE and struct.unpack("!H", first[0][1][:2])[0] == 1013
        # The client does not answer the close and pings instead: nothing more comes back.
        try:
            raw.sendall(b"".join(frame(PING, b"x") for _ in range(50)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        later = read_frames(raw, 1)
        raw.close()
        assert [opcode for opcode, _ in later if opcode == 0xA] == []
    finally:
        ws_gateway.turn_off()


# -- 2. fragment floods ----------------------------------------------------------------------------


def test_one_byte_fragments_cost_no_more_than_the_message(ws_gateway: Gateway) -> None:
    """A message under the 1 MiB limit as one-byte fragments: held as one buffer; with each frame's
    header counted, the socket is closed with 1009 long before a million fragments."""
    outcome: dict[str, object] = {}

    def fragments() -> None:
        raw = handshake(ws_gateway.port)
        batch = frame(CONTINUATION, b"x", fin=False) * 10_000
        stream = (frame(BINARY, b"x", fin=False) if n == 0 else batch for n in range(100))
        outcome["sent"] = send_for(raw, stream, 20)
        outcome["frames"] = read_frames(raw, 3)
        raw.close()

    grown = rss_growth_during(ws_gateway, threading.Thread(target=fragments))
    assert grown < 8 * 1024, f"the gateway grew by {grown} KiB"
    closes = [payload for opcode, payload in outcome["frames"] if opcode == CLOSE]  # type: ignore[union-attr]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1009


def test_empty_fragments_count_against_the_message_limit(ws_gateway: Gateway) -> None:
    raw = handshake(ws_gateway.port)
    empty = frame(CONTINUATION, b"", fin=False) * 10_000
    send_for(raw, (frame(TEXT, b"", fin=False) if n == 0 else empty for n in range(30)), 10)
    frames = read_frames(raw, 3)
    raw.close()
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1009


def test_an_unfinished_message_has_a_deadline(ws_gateway: Gateway) -> None:
    # GATEWAY_CLIENT_BODY_TIMEOUT is 1 s here: a message begun and never ended is closed with 1008.
    raw = handshake(ws_gateway.port)
    started = time.monotonic()
    raw.sendall(frame(TEXT, b"begun", fin=False))
    frames = read_frames(raw, 5)
    raw.close()
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1008
    assert time.monotonic() - started < 4


def test_a_message_trickled_below_the_minimum_rate_is_closed_though_no_pause_is_long(ws_gateway: Gateway) -> None:
    """One byte every 0.4 s: no pause reaches the 1 s body timeout, but the whole message falls
    behind the timeout plus its bytes at 500 B/s, so the other limit ends it."""
    raw = handshake(ws_gateway.port)
    started = time.monotonic()
    raw.sendall(frame(TEXT, b"a", fin=False))
    closed = None
    deadline = time.monotonic() + 8
    raw.settimeout(0.4)
    while closed is None and time.monotonic() < deadline:
        try:
            raw.sendall(frame(CONTINUATION, b"a", fin=False))
            answer = raw.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        closed = answer
    raw.close()
    assert closed and closed[0] & 0x0F == CLOSE and struct.unpack("!H", closed[2:4])[0] == 1008, closed
    assert time.monotonic() - started < 4


def test_a_message_still_arriving_at_the_minimum_rate_is_kept(ws_gateway: Gateway) -> None:
    raw = handshake(ws_gateway.port)
    raw.sendall(frame(TEXT, b"slow ", fin=False))
    for _ in range(4):  # 2 s in all, twice the body timeout, at well over 500 B/s
        time.sleep(0.5)
        raw.sendall(frame(CONTINUATION, b"y" * 1000, fin=False))
    raw.sendall(frame(CONTINUATION, b" done", fin=True))
    frames = read_frames(raw, 1)
    raw.close()
    assert (TEXT, b"slow " + b"y" * 4000 + b" done") in frames


def test_invalid_utf8_is_one_warning_line_not_a_traceback(ws_gateway: Gateway) -> None:
    logged_before = len(ws_gateway.server.log())
    raw = handshake(ws_gateway.port)
    raw.sendall(frame(TEXT, b"\xff\xfe not utf-8"))
    frames = read_frames(raw, 2)
    raw.close()
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1007
    logged = wait_until(lambda: ws_gateway.server.log()[logged_before:])
    assert "Traceback" not in logged
    lines = [line for line in logged.splitlines() if "not UTF-8" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], logged


def _status_feed_waits(gateway: Gateway, during: threading.Thread) -> float:
    """The longest the public status feed took to answer while ``during`` ran (seconds)."""
    import httpx

    worst = 0.0
    during.start()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        while during.is_alive():
            started = time.monotonic()
            client.get("/_gateway/status")
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)
    return worst


def test_a_flood_of_empty_messages_holds_one_message_and_shares_the_loop(ws_gateway: Gateway) -> None:
    """Empty binary messages (6 bytes each) to a Django that reads nothing: one message is
    parsed ahead at most, the rest waits unparsed in the socket, and other clients are served."""

    def flood() -> None:
        raw = handshake(ws_gateway.port, "/silent")
        send_for(raw, (frame(BINARY) * 10_000 for _ in range(200)), 10)  # 12 MB of empty messages
        raw.close()

    grown = rss_growth_during(ws_gateway, threading.Thread(target=flood))
    assert grown < 8 * 1024, f"the gateway grew by {grown} KiB"

    def echo_flood() -> None:
        raw = handshake(ws_gateway.port, "/echo", rcvbuf=1 << 20)
        reader = threading.Thread(target=read_frames, args=(raw, 6), daemon=True)
        reader.start()
        send_for(raw, (frame(BINARY) * 10_000 for _ in range(50)), 5)  # echoed: the loop is busy
        reader.join()
        raw.close()

    worst = _status_feed_waits(ws_gateway, threading.Thread(target=echo_flood))
    assert worst < 1.0, f"the status feed waited {worst:.2f} s behind one socket's flood"


def test_compressed_messages_are_inflated_one_at_a_time(log_dir: Path, ws_upstream: str) -> None:
    """permessage-deflate: 1,039 bytes inflate to a megabyte; a read of 240 of them is not 240 MB."""
    import zlib

    gateway = Gateway(log_dir, ws_upstream, {"GATEWAY_WEBSOCKET_PER_MESSAGE_DEFLATE": "true"}, name="gateway-ws-deflate")
    try:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -12)
        bomb = compressor.compress(b"\0" * 1_048_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert bomb.endswith(b"\x00\x00\xff\xff")
        payload = bomb[:-4]  # RFC 7692 7.2.1: the sync flush's tail is left off
        compressed = bytearray(frame(BINARY, payload))
        compressed[0] |= 0x40  # RSV1: this message is compressed

        def bombs() -> None:
            raw = handshake(gateway.port, "/silent", extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
            send_for(raw, (bytes(compressed) * 40 for _ in range(6)), 10)
            time.sleep(1)
            raw.close()

        grown = rss_growth_during(gateway, threading.Thread(target=bombs))
        assert grown < 16 * 1024, f"the gateway grew by {grown} KiB"
    finally:
        gateway.stop()


def test_a_pause_between_fragments_is_bounded_whatever_came_before(ws_gateway: Gateway) -> None:
    # 100 kB would buy 200 s at the minimum rate; a pause longer than the body timeout (1 s) ends it.
    raw = handshake(ws_gateway.port)
    started = time.monotonic()
    raw.sendall(frame(BINARY, b"z" * 100_000, fin=False))
    frames = read_frames(raw, 5)
    raw.close()
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1008
    assert time.monotonic() - started < 4


def test_a_handshake_too_large_for_djangos_server_is_refused_at_once(ws_gateway: Gateway) -> None:
    """126 header lines pass the gateway's own parser, but with the X-Forwarded-* lines it adds
    they would pass the 128 Django's server takes: refused now, not a 504 a minute later."""
    raw = socket.create_connection(("127.0.0.1", ws_gateway.port))
    raw.settimeout(5)
    started = time.monotonic()
    lines = b"".join(b"X-Filler-%d: x\r\n" % n for n in range(120))
    raw.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n" + KEY_HEADERS + lines + b"\r\n")
    answer = raw.recv(65536)
    raw.close()
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 ")
    assert time.monotonic() - started < 3


# -- 3. handshakes the WebSocket parser refuses ----------------------------------------------------


REFUSED_HANDSHAKES = {
    "a body": b"Content-Length: 3\r\n\r\nabc",
    "chunked": b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "129 header lines": b"".join(b"X-Filler-%d: x\r\n" % n for n in range(129)) + b"\r\n",
    "a line over 8 KiB": b"X-Long: " + b"a" * 9000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("shape", REFUSED_HANDSHAKES, ids=list(REFUSED_HANDSHAKES))
def test_a_handshake_the_websocket_parser_refuses_is_answered_and_closed(ws_gateway: Gateway, shape: str) -> None:
    raw = socket.create_connection(("127.0.0.1", ws_gateway.port))
    raw.settimeout(5)
    started = time.monotonic()
    raw.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n" + KEY_HEADERS + REFUSED_HANDSHAKES[shape])
    answer = b""
    while True:
        piece = raw.recv(65536)
        if not piece:
            break
        answer += piece
    raw.close()
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 ")
    assert time.monotonic() - started < 3  # closed at once, not at a timeout


# -- 4. one client takes every slot ----------------------------------------------------------------


def test_one_client_gets_only_its_share_of_the_sockets(log_dir: Path, ws_upstream: str) -> None:
    gateway = Gateway(
        log_dir,
        ws_upstream,
        {"GATEWAY_WEBSOCKET_MAX_PER_CLIENT": "2", "GATEWAY_WEBSOCKET_MAX_CONNECTIONS": "10"},
        name="gateway-ws-per-client",
    )
    try:
        first, second = open_socket(gateway.url), open_socket(gateway.url)
        with open_socket(gateway.url) as third:
            code, reason = closed_with(third)
            assert code == 1013 and reason is not None and "from this client" in reason
        with pytest.raises(InvalidStatus) as refused:
            open_socket(gateway.url, origin=None)
        assert refused.value.response.status_code == 503
        # Another client (its address as the trusted proxy on 127.0.0.1 reports it) is served.
        with open_socket(gateway.url, additional_headers={"X-Forwarded-For": "203.0.113.7"}) as other:
            other.send("other client")
            assert other.recv(timeout=5) == "other client"
        # A socket closed gives its slot back.
        second.close()
        wait_until(lambda: 'gateway_websockets_open 1' in gateway.metrics())
        with open_socket(gateway.url) as again:
            again.send("again")
            assert again.recv(timeout=5) == "again"
        first.close()
        assert 'gateway_websockets_refused_total{reason="client_limit"} 2' in gateway.metrics()
    finally:
        gateway.stop()


def test_the_default_share_leaves_a_browser_with_many_tabs_alone(log_dir: Path, ws_upstream: str) -> None:
    gateway = Gateway(log_dir, ws_upstream, name="gateway-ws-tabs")
    try:
        tabs = [open_socket(gateway.url) for _ in range(20)]
        for number, tab in enumerate(tabs):
            tab.send(f"tab {number}")
            assert tab.recv(timeout=5) == f"tab {number}"
        for tab in tabs:
            tab.close()
    finally:
        gateway.stop()


def test_refused_handshakes_hold_no_descriptor_while_the_client_stays(ws_gateway: Gateway) -> None:
    """The clients keep their ends open and say nothing more: the gateway lets go of each at once."""
    fds = lambda: len(os.listdir(f"/proc/{ws_gateway.pid}/fd"))  # noqa: E731
    baseline = fds()
    clients = []
    for shape in REFUSED_HANDSHAKES.values():
        raw = socket.create_connection(("127.0.0.1", ws_gateway.port))
        raw.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n" + KEY_HEADERS + shape)
        raw.settimeout(5)
        # Answered: the gateway took the connection (its count rose) before it let go.
        assert raw.recv(65536).startswith(b"HTTP/1.1 400")
        clients.append(raw)
    wait_until(lambda: fds() <= baseline, timeout=3)
    for raw in clients:
        raw.close()
