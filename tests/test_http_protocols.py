"""gateway/server/http_protocol.py in-process: scripted bytes fed through a fake transport,
under uvicorn's own Config and ServerState, as uvicorn's tests drive its protocols.

Most byte-level cases run with the bytes split at every position: a limit or a check that
depends on how reads fall would let a client through by choosing its packet boundaries.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.server import http_protocol as http_protocols
from gateway.server.http_protocol import GatewayHttpProtocol
from gateway.settings import Settings, load_settings

HEAD_LIMIT = 1024  # the smallest GATEWAY_MAX_HEADER_BYTES the settings take
HEADER_TIMEOUT = 0.4
BODY_TIMEOUT = 0.2

PROTOCOLS = [pytest.param(GatewayHttpProtocol, id="httptools")]

ProtocolClass = type[GatewayHttpProtocol]
App = Callable[[Any, Any, Any], Awaitable[None]]


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    settings = load_settings(
        {
            "GATEWAY_MAX_HEADER_BYTES": str(HEAD_LIMIT),
            "GATEWAY_CLIENT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "GATEWAY_CLIENT_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "GATEWAY_CLIENT_SEND_TIMEOUT": "1",
        }
    )
    monkeypatch.setattr(http_protocols, "server_settings", lambda: settings)
    yield settings
    # Each test runs its own event loop: forget the sweepers of the loops that are gone.
    http_protocols._Sweeper._running.clear()


class FakeTransport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class EchoApp:
    """Answers every request with what it received: method, path, headers and the whole body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = {
            "method": scope["method"],
            "path": scope["path"],
            "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        self.requests.append(seen)
        payload = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


async def answer_without_reading(scope: Any, receive: Any, send: Any) -> None:
    """As the 503 or an admin refusal: answers at once, whatever body the request has."""
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


_server_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ServerState] = weakref.WeakKeyDictionary()


class Connection:
    def __init__(self, protocol_class: ProtocolClass, app: App) -> None:
        config = Config(app=app, lifespan="off", access_log=False, ws="none")
        config.load()
        loop = asyncio.get_running_loop()
        # One server's state per event loop, as under uvicorn: the sweeper walks its connections.
        state = _server_states.setdefault(loop, ServerState())
        self.protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, *pieces: bytes) -> None:
        for piece in pieces:
            if self.transport.closed:
                return
            self.protocol.data_received(piece)
            await settle()

    @property
    def statuses(self) -> list[int]:
        return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.transport.written)]

    def close(self) -> None:
        self.protocol.connection_lost(None)


async def settle() -> None:
    """Let the application's task run to its end (a few passes of the loop; no clock time)."""
    for _ in range(8):
        await asyncio.sleep(0)


def splits(data: bytes) -> Iterator[tuple[bytes, ...]]:
    """``data`` whole, byte by byte, and cut in two at every position."""
    yield (data,)
    yield tuple(data[i : i + 1] for i in range(len(data)))
    for cut in range(1, len(data)):
        yield data[:cut], data[cut:]


def exchange_every_way(protocol_class: ProtocolClass, data: bytes) -> list[tuple[list[int], bool, EchoApp]]:
    """The statuses, whether the connection was closed, and what the app saw, for every split of ``data``."""

    async def run() -> list[tuple[list[int], bool, EchoApp]]:
        outcomes = []
        for pieces in splits(data):
            app = EchoApp()
            connection = Connection(protocol_class, app)
            await connection.send(*pieces)
            outcomes.append((connection.statuses, connection.transport.closed, app))
            connection.close()
        return outcomes

    return asyncio.run(run())


def assert_refused_every_way(protocol_class: ProtocolClass, data: bytes, answered_before: int = 0) -> None:
    for statuses, closed, app in exchange_every_way(protocol_class, data):
        assert statuses == [200] * answered_before + [400], statuses
        assert closed
        assert len(app.requests) == answered_before


def assert_answered_every_way(protocol_class: ProtocolClass, data: bytes, requests: int = 1) -> list[EchoApp]:
    apps = []
    for statuses, closed, app in exchange_every_way(protocol_class, data):
        assert statuses == [200] * requests, statuses
        assert not closed
        apps.append(app)
    return apps


def head(target: bytes = b"/", *fields: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n"


def padded_head(size: int, target: bytes = b"/") -> bytes:
    """A request head of exactly ``size`` bytes, its request line included, padded by one field."""
    bare = head(target, b"Host: a", b"X-Pad: ")
    return head(target, b"Host: a", b"X-Pad: " + b"p" * (size - len(bare)))


# -- the head-size limit


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_head_within_the_limit_is_answered_however_it_arrives(protocol_class: ProtocolClass) -> None:
    assert_answered_every_way(protocol_class, padded_head(HEAD_LIMIT - 64))


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_head_past_the_limit_is_refused_however_it_arrives(protocol_class: ProtocolClass) -> None:
    assert_refused_every_way(protocol_class, padded_head(HEAD_LIMIT + 64))


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_the_request_line_counts_toward_the_head_limit(protocol_class: ProtocolClass) -> None:
    # A long target and headers, each under the limit alone, over it together.
    target = b"/" + b"t" * (HEAD_LIMIT // 2)
    assert_refused_every_way(protocol_class, padded_head(HEAD_LIMIT + 64, target))
    assert_refused_every_way(protocol_class, head(b"/" + b"t" * (HEAD_LIMIT + 64), b"Host: a"))


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_an_endless_header_value_is_refused_before_it_ends(protocol_class: ProtocolClass) -> None:
    async def run() -> tuple[list[int], bool]:
        connection = Connection(protocol_class, EchoApp())
        await connection.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        for _ in range(HEAD_LIMIT // 64 + 2):
            await connection.send(b"e" * 64)
        return connection.statuses, connection.transport.closed

    assert asyncio.run(run()) == ([400], True)


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_pipelined_heads_are_counted_separately(protocol_class: ProtocolClass) -> None:
    # Each head is under the limit; the two together (one read, when not split) are not.
    one = padded_head(HEAD_LIMIT * 3 // 4)
    assert_answered_every_way(protocol_class, one + one, requests=2)


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_head_past_the_limit_behind_a_pipelined_request_is_refused_after_its_answer(
    protocol_class: ProtocolClass,
) -> None:
    assert_refused_every_way(protocol_class, head(b"/", b"Host: a") + padded_head(HEAD_LIMIT + 64), answered_before=1)


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_body_is_not_counted_as_head(protocol_class: ProtocolClass) -> None:
    body = b"b" * (HEAD_LIMIT * 2)
    request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def run() -> tuple[list[int], bool, EchoApp]:
        app = EchoApp()
        connection = Connection(protocol_class, app)
        await connection.send(request[:100], request[100:])
        return connection.statuses, connection.transport.closed, app

    statuses, closed, app = asyncio.run(run())
    assert (statuses, closed) == ([200], False)
    assert app.requests[0]["body"] == body.decode()


# -- framing and the fields a request must have once


REFUSED_HEADS = {
    "the same content-length twice": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    "two content-lengths": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
    "a content-length list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nhi",
    "content-length and chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    ),
    "chunked and content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    ),
    "no host in HTTP/1.1": b"GET / HTTP/1.1\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "the same host twice": b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
    "a host before and after another field": b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nhost: a\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "HTTP/0.9 with a version": b"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
    "no version": b"GET /\r\n\r\n",
    # Control bytes in a field value, and a bare CR (RFC 9110 5.5, RFC 9112 2.2): llhttp refuses them.
    "a control byte in a value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
    "DEL in a value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
    "a bare CR before the end of the head": b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
}


@pytest.mark.parametrize("case", sorted(REFUSED_HEADS))
@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_ambiguous_or_unsupported_requests_are_refused(protocol_class: ProtocolClass, case: str) -> None:
    assert_refused_every_way(protocol_class, REFUSED_HEADS[case])


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", id="HTTP/1.0 without host"),
        pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", id="HTTP/1.0"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", id="HTTP/1.1"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", id="one content-length"),
    ],
)
@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_well_formed_requests_are_answered(protocol_class: ProtocolClass, request_bytes: bytes) -> None:
    for statuses, _closed, app in exchange_every_way(protocol_class, request_bytes):
        assert statuses == [200]
        assert len(app.requests) == 1


def test_the_refusal_says_it_closes_the_connection() -> None:
    async def run(protocol_class: ProtocolClass) -> bytes:
        connection = Connection(protocol_class, EchoApp())
        await connection.send(REFUSED_HEADS["two content-lengths"])
        assert connection.transport.closed
        return bytes(connection.transport.written)

    for protocol_class in (GatewayHttpProtocol,):
        written = asyncio.run(run(protocol_class))
        assert written.startswith(b"HTTP/1.1 400 Bad Request\r\n"), written
        assert b"\r\nconnection: close\r\n" in written.lower(), written


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_trailer_fields_never_reach_the_request_headers(protocol_class: ProtocolClass) -> None:
    request = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\nX-Trailer: late\r\nHost: b\r\n\r\n"
    )
    for app in assert_answered_every_way(protocol_class, request):
        (seen,) = app.requests
        assert seen["headers"] == [["host", "a"], ["transfer-encoding", "chunked"]]
        assert seen["body"] == "hi"


# -- timeouts (the sweeper closes the connection; nothing is answered)


async def observe_async(
    protocol_class: ProtocolClass, app: App, pieces: tuple[bytes, ...], *moments: float
) -> list[tuple[list[int], bool]]:
    """Send ``pieces``, then the statuses written and whether the connection is closed at each
    of ``moments`` (seconds after the last piece)."""
    connection = Connection(protocol_class, app)
    await connection.send(*pieces)
    seen, waited = [], 0.0
    for moment in moments:
        await asyncio.sleep(moment - waited)
        waited = moment
        seen.append((connection.statuses, connection.transport.closed))
    return seen


def observe(
    protocol_class: ProtocolClass, app: App, pieces: tuple[bytes, ...], *moments: float
) -> list[tuple[list[int], bool]]:
    return asyncio.run(observe_async(protocol_class, app, pieces, *moments))


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_head_that_does_not_arrive_in_time_is_cut(protocol_class: ProtocolClass) -> None:
    slow_heads = {
        "never speaks": (),
        "one byte": (b"G",),
        "head unfinished": (b"GET / HTTP/1.1\r\nHost: a\r\n",),
    }

    async def run() -> dict[str, list[tuple[list[int], bool]]]:
        # All at once: the sweeper looks at every connection of the loop.
        seen = await asyncio.gather(
            *(observe_async(protocol_class, EchoApp(), pieces, HEADER_TIMEOUT * 0.5, HEADER_TIMEOUT * 2) for pieces in slow_heads.values())
        )
        return dict(zip(slow_heads, seen))

    for case, seen in asyncio.run(run()).items():
        assert seen == [([], False), ([], True)], case


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_the_header_timeout_runs_again_for_the_next_request(protocol_class: ProtocolClass) -> None:
    async def run() -> tuple[list[int], bool]:
        connection = Connection(protocol_class, EchoApp())
        await asyncio.sleep(HEADER_TIMEOUT * 0.6)
        await connection.send(head(b"/", b"Host: a"))
        await asyncio.sleep(HEADER_TIMEOUT * 0.6)
        # An answered connection that stays silent is uvicorn's keep-alive timer's (75 s), not this one.
        await connection.send(b"GET / HTTP/1.1\r\n")
        await asyncio.sleep(HEADER_TIMEOUT * 2)
        return connection.statuses, connection.transport.closed

    assert asyncio.run(run()) == ([200], True)


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_silent_connection_after_an_answer_is_left_to_keep_alive(protocol_class: ProtocolClass) -> None:
    assert observe(protocol_class, EchoApp(), (head(b"/", b"Host: a"),), HEADER_TIMEOUT * 2) == [([200], False)]


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_body_that_stops_arriving_is_cut_when_the_app_has_no_timer(protocol_class: ProtocolClass) -> None:
    stalled = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", b"abc")
    # The backstop is twice GATEWAY_CLIENT_BODY_TIMEOUT, from the last byte.
    assert observe(protocol_class, EchoApp(), stalled, BODY_TIMEOUT * 1.2, BODY_TIMEOUT * 4) == [([], False), ([], True)]


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_body_the_answer_did_not_wait_for_must_end_in_time(protocol_class: ProtocolClass) -> None:
    unfinished = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", b"abc")
    assert observe(protocol_class, answer_without_reading, unfinished, BODY_TIMEOUT * 3) == [([503], True)]


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_body_that_ends_after_the_answer_leaves_the_connection_to_keep_alive(protocol_class: ProtocolClass) -> None:
    finished = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", b"abc")
    # Past both the body's and the head's timeouts: the connection is idle, as after any answer.
    assert observe(protocol_class, answer_without_reading, finished, HEADER_TIMEOUT * 2) == [([503], False)]


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_blank_lines_between_requests_do_not_keep_a_connection_open(protocol_class: ProtocolClass) -> None:
    keep_alive = 0.4

    async def run() -> tuple[list[int], bool]:
        connection = Connection(protocol_class, EchoApp())
        connection.protocol.timeout_keep_alive = keep_alive
        await connection.send(head(b"/", b"Host: a"))
        # A bare CRLF (which parsers skip before a request line) every tenth of the keep-alive time.
        for _ in range(12):
            await asyncio.sleep(keep_alive / 10)
            await connection.send(b"\r\n")
        # Closed by now: the keep-alive time ran from the answer, not from the last blank line.
        await asyncio.sleep(keep_alive / 4)
        return connection.statuses, connection.transport.closed

    assert asyncio.run(run()) == ([200], True)


@pytest.mark.parametrize("app", [EchoApp, lambda: answer_without_reading], ids=["waits-for-the-body", "answered-before-it"])
@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_an_endless_trailer_value_is_refused_before_it_ends(protocol_class: ProtocolClass, app: Callable[[], App]) -> None:
    async def run() -> tuple[list[int], bool]:
        connection = Connection(protocol_class, app())
        await connection.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Endless: ")
        for _ in range(HEAD_LIMIT // 64 + 2):
            await connection.send(b"e" * 64)
        return connection.statuses, connection.transport.closed

    statuses, closed = asyncio.run(run())
    # Refused once the trailer passes the head limit, not held until a timer ends it.
    assert closed and statuses[-1] == 400, statuses


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_body_gone_bad_after_its_answer_gets_a_400_after_it(protocol_class: ProtocolClass) -> None:
    async def run() -> tuple[list[int], bool]:
        connection = Connection(protocol_class, answer_without_reading)
        await connection.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"zz\r\n")
        return connection.statuses, connection.transport.closed

    assert asyncio.run(run()) == ([503, 400], True)


def test_reading_stays_paused_while_pipelined_bytes_wait_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hundred small POSTs in one read: at most PIPELINE_DEPTH are parsed ahead, the rest wait
    # unparsed. The application reads each body (the ASGI cycle then asks to read more), but no
    # read is let in while those bytes wait: each would only add to them.
    connections: list[Connection] = []
    resumed_while_unparsed: list[int] = []

    def resume_reading(transport: FakeTransport) -> None:
        if connections[0].protocol._unfed:
            resumed_while_unparsed.append(len(connections[0].protocol._unfed))

    monkeypatch.setattr(FakeTransport, "resume_reading", resume_reading)
    request = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"

    async def run() -> None:
        app = EchoApp()
        connection = Connection(GatewayHttpProtocol, app)
        connections.append(connection)
        connection.protocol.data_received(request * 100)
        assert connection.protocol._unfed, "nothing was held back"
        for _ in range(200):
            await settle()
        assert connection.statuses == [200] * 100
        assert [seen["body"] for seen in app.requests] == ["hello"] * 100
        connection.close()

    asyncio.run(run())
    assert resumed_while_unparsed == []
