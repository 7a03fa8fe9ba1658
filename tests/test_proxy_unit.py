"""``Proxy.__call__`` in-process: a fake ASGI client on one side, scripted upstream bytes on the other.

What the proxy itself decides: which failures are retried, what the client is answered when the
upstream misbehaves or is slow, what an early answer does to the upload, and that a client
leaving is never an upstream failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from gateway.cors import CorsPolicy
from gateway.errors import ClientGone, UpstreamError, UpstreamProtocolError
from gateway.forwarding import TrustedPeers
from gateway.metrics import Metrics
from gateway.proxy import Proxy
from gateway.settings import load_settings
from tests.scripted_upstream import CLOSE, OK, SILENT, ScriptedUpstream, byte_by_byte, make_pool, run, settle, whole


class Client:
    """An ASGI server's side of one request: the body in ``pieces``, then (when told) a disconnect."""

    def __init__(self, *pieces: bytes, leave_after_first_body: bool = False) -> None:
        self.pieces = list(pieces) or [b""]
        self.received = 0
        self.sent: list[dict[str, Any]] = []
        self.left = asyncio.Event()
        self.leave_after_first_body = leave_after_first_body

    async def receive(self) -> dict[str, Any]:
        if self.received < len(self.pieces):
            for _ in range(3):
                await asyncio.sleep(0)  # a client's bytes take turns of the loop to arrive
            self.received += 1
            return {"type": "http.request", "body": self.pieces[self.received - 1], "more_body": self.received < len(self.pieces)}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if self.leave_after_first_body and message["type"] == "http.response.body":
            self.left.set()

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.sent[1:])


def http_scope(method: str = "GET", *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"host", b"shop.example"), *headers],
        "client": ("203.0.113.9", 50000),
    }


def make_proxy(upstream: ScriptedUpstream, *, read_timeout: float = 1.0, buffer_limit: int = 1 << 20) -> Proxy:
    return Proxy(
        make_pool(upstream),
        CorsPolicy(load_settings({})),
        TrustedPeers(()),
        read_timeout=read_timeout,
        upstream_authority=b"upstream.test:8000",
        metrics=Metrics(),
        buffer_limit=buffer_limit,
    )


async def forward(proxy: Proxy, client: Client, method: str = "GET", *headers: tuple[bytes, bytes]) -> Client:
    await proxy(http_scope(method, *headers), client.receive, client.send)  # type: ignore[arg-type]
    return client


def error_of(client: Client) -> str:
    return str(json.loads(client.body)["error"])


# -- what the client is answered


@pytest.mark.parametrize("pieces", [whole, byte_by_byte], ids=["whole", "byte-by-byte"])
def test_interim_answers_never_reach_the_client_as_the_answer(pieces: Callable[[bytes], list[bytes]]) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    upstream = ScriptedUpstream([reply], pieces=pieces)

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = await forward(proxy, Client())
        assert (client.status, client.headers, client.body) == (200, [(b"content-length", b"2")], b"ok")
        assert proxy.metrics.proxied == 1 and proxy.pool.idle_count == 1

    run(scenario())


@pytest.mark.parametrize("status", [204, 304])
def test_a_bodiless_status_loses_its_length_and_keeps_the_connection(status: int) -> None:
    upstream = ScriptedUpstream([b"HTTP/1.1 %d X\r\ncontent-length: 5\r\netag: \"v\"\r\n\r\n" % status, OK])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = await forward(proxy, Client())
        assert (client.status, client.headers, client.body) == (status, [(b"etag", b'"v"')], b"")
        assert (await forward(proxy, Client())).body == b"hello"
        assert len(upstream.transports) == 1

    run(scenario())


def test_a_head_answer_keeps_its_length_and_has_no_body() -> None:
    upstream = ScriptedUpstream([b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", OK])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = await forward(proxy, Client(), "HEAD")
        assert (client.status, client.headers, client.body) == (200, [(b"content-length", b"1000")], b"")
        assert (await forward(proxy, Client())).body == b"hello"
        assert len(upstream.transports) == 1

    run(scenario())


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
    ],
    ids=["two-lengths", "garbage-status-line", "status-999"],
)
@pytest.mark.parametrize("pieces", [whole, byte_by_byte], ids=["whole", "byte-by-byte"])
def test_malformed_answers_are_a_502(reply: bytes, pieces: Callable[[bytes], list[bytes]]) -> None:
    upstream = ScriptedUpstream([reply], pieces=pieces)

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = await forward(proxy, Client())
        assert (client.status, error_of(client)) == (502, "upstream_unavailable")
        assert proxy.metrics.upstream_errors_by_status[502] == 1
        await settle()
        assert proxy.pool.open_count == 0

    run(scenario())


@pytest.mark.parametrize("pieces", [whole, byte_by_byte], ids=["whole", "byte-by-byte"])
def test_a_malformed_body_after_the_head_cuts_the_answer(pieces: Callable[[bytes], list[bytes]]) -> None:
    # The status line is gone: the server closing the connection is how the client learns of the cut.
    upstream = ScriptedUpstream([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"], pieces=pieces)

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = Client()
        with pytest.raises(UpstreamProtocolError, match="chunk size"):
            await forward(proxy, client)
        assert client.status == 200 and all(message.get("more_body") for message in client.sent[1:])
        assert proxy.metrics.upstream_errors_by_status[502] == 1
        await settle()
        assert proxy.pool.open_count == 0

    run(scenario())


def test_a_silent_upstream_is_a_504() -> None:
    upstream = ScriptedUpstream([SILENT])

    async def scenario() -> None:
        proxy = make_proxy(upstream, read_timeout=0.1)
        client = await forward(proxy, Client())
        assert (client.status, error_of(client)) == (504, "upstream_timeout")
        assert proxy.metrics.upstream_errors_by_status[504] == 1

    run(scenario())


# -- retrying on a kept connection the upstream closed


def test_a_bodiless_request_is_sent_again_once_on_a_new_connection() -> None:
    upstream = ScriptedUpstream([OK, CLOSE], [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain"])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        await forward(proxy, Client())
        client = await forward(proxy, Client())
        assert (client.status, client.body) == (200, b"again")
        assert proxy.metrics.upstream_error == 0
        assert [transport.requests for transport in upstream.transports] == [2, 1]

    run(scenario())


def test_a_retried_request_is_not_retried_twice() -> None:
    upstream = ScriptedUpstream([OK, CLOSE], [CLOSE], [OK])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        await forward(proxy, Client())
        client = await forward(proxy, Client())
        assert (client.status, error_of(client)) == (502, "upstream_unavailable")
        assert len(upstream.transports) == 2

    run(scenario())


def test_a_fresh_connection_closed_before_any_answer_is_not_retried() -> None:
    upstream = ScriptedUpstream([CLOSE], [OK])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = await forward(proxy, Client())
        assert client.status == 502 and len(upstream.transports) == 1

    run(scenario())


def test_a_streamed_body_is_not_sent_again() -> None:
    # Its first bytes are gone to the closed connection and cannot be read from the client again.
    upstream = ScriptedUpstream([OK, CLOSE], [OK])

    async def scenario() -> None:
        proxy = make_proxy(upstream, buffer_limit=8)
        await forward(proxy, Client())
        client = await forward(proxy, Client(b"x" * 8, b"y" * 8, b"z" * 8), "POST", (b"content-length", b"24"))
        assert (client.status, error_of(client)) == (502, "upstream_unavailable")
        assert len(upstream.transports) == 1

    run(scenario())


def test_a_body_held_whole_is_sent_again() -> None:
    upstream = ScriptedUpstream([OK, CLOSE], [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain"])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        await forward(proxy, Client())
        client = await forward(proxy, Client(b"abc", b"def"), "POST", (b"content-length", b"6"))
        assert (client.status, client.body) == (200, b"again")
        assert upstream.transports[1].written.endswith(b"content-length: 6\r\n\r\nabcdef")

    run(scenario())


# -- an answer before the whole upload


def test_an_answer_before_the_body_is_all_sent_reaches_the_client_and_stops_the_upload() -> None:
    too_large = b"HTTP/1.1 413 Request Entity Too Large\r\nconnection: close\r\ncontent-length: 9\r\n\r\ntoo large"
    upstream = ScriptedUpstream([(too_large, CLOSE)])

    async def scenario() -> None:
        proxy = make_proxy(upstream, buffer_limit=8)
        pieces = [bytes([65 + index]) * 8 for index in range(20)]
        client = Client(*pieces)
        await forward(proxy, client, "POST", (b"content-length", b"160"))
        assert (client.status, client.body) == (413, b"too large")
        assert client.received < len(pieces)  # the upload stopped (RFC 9112 9.5)
        assert upstream.transports[0].written.count(b"A" * 8) == 1 and b"T" * 8 not in upstream.transports[0].written
        assert proxy.metrics.upstream_error == 0
        await settle()
        assert proxy.pool.open_count == 0

    run(scenario())


# -- a client leaving is never an upstream failure


def test_a_client_leaving_a_stream_is_not_counted_or_logged_as_an_upstream_failure(caplog: pytest.LogCaptureFixture) -> None:
    endless = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
    upstream = ScriptedUpstream([endless])

    async def scenario() -> None:
        proxy = make_proxy(upstream)
        client = Client(leave_after_first_body=True)
        with caplog.at_level(logging.WARNING, logger="gateway.proxy"):
            await forward(proxy, client)
        assert client.status == 200 and client.body == b"hello"
        assert (proxy.metrics.upstream_error, proxy.metrics.upstream_errors_by_status, proxy.metrics.proxied) == (0, {502: 0, 504: 0}, 0)
        assert caplog.records == []
        assert upstream.transports[0].aborted
        await settle()
        assert proxy.pool.open_count == 0

    assert not issubclass(ClientGone, UpstreamError)
    run(scenario())


def test_a_client_leaving_during_its_upload_is_not_an_upstream_failure(caplog: pytest.LogCaptureFixture) -> None:
    upstream = ScriptedUpstream([SILENT])

    class Leaving(Client):
        async def receive(self) -> dict[str, Any]:
            if self.received == 2:
                return {"type": "http.disconnect"}
            return await super().receive()

    async def scenario() -> None:
        proxy = make_proxy(upstream, buffer_limit=8)
        client = Leaving(b"x" * 8, b"y" * 8, b"z" * 8)
        with caplog.at_level(logging.WARNING, logger="gateway.proxy"):
            await forward(proxy, client, "POST", (b"content-length", b"24"))
        assert client.sent == [] and proxy.metrics.upstream_error == 0 and caplog.records == []
        await settle()
        assert proxy.pool.open_count == 0

    run(scenario())


def test_a_bad_request_is_a_400_naming_the_rule() -> None:
    async def scenario() -> None:
        proxy = make_proxy(ScriptedUpstream())
        client = await forward(proxy, Client(), "GET", (b"x-user_id", b"7"))
        assert client.status == 400 and (b"connection", b"close") in client.headers
        assert json.loads(client.body)["message"] == "header 'x-user_id': underscores are not allowed in header names"
        assert proxy.pool.open_count == 0

    run(scenario())


def test_the_websocket_relay_still_gets_the_head_from_the_proxy() -> None:
    proxy = make_proxy(ScriptedUpstream())
    proxy.notice = b"x-maintenance-notice: upcoming\r\n"
    head, _, _ = proxy.request_head(http_scope())
    assert head.startswith(b"GET / HTTP/1.1\r\nhost: shop.example\r\n") and head.endswith(proxy.notice)
