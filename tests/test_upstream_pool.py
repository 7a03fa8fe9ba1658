"""The upstream client in-process: ``UpstreamPool`` and ``UpstreamConnection`` fed scripted bytes.

A scripted connector stands in for ``loop.create_connection``: each connection it opens
answers each request head written to it with the next reply of its script, delivered a
piece per turn of the event loop (whole, one byte at a time, or split at a chosen offset).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.errors import UpstreamClosed, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.upstream import BODY_PIECE, HEAD, WHOLE_BODY, UpstreamConnection, UpstreamPool

from tests.scripted_upstream import (
    CLOSE,
    GET,
    HEAD_REQUEST,
    OK,
    SILENT,
    Reply,
    ScriptedUpstream,
    SlowConnector,
    byte_by_byte,
    exchange,
    make_pool,
    run,
    settle,
    split_at,
    whole,
)

SPLITS = [whole, byte_by_byte]


@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_interim_responses_are_skipped(pieces: Callable[[bytes], list[bytes]]) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-final: yes\r\n\r\nok"
    )
    upstream = ScriptedUpstream([reply, OK], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        status, headers, body, kept = await exchange(pool)
        assert (status, body, kept) == (201, b"ok", True)
        assert headers == [(b"content-length", b"2"), (b"x-final", b"yes")]  # nothing of the 103
        assert (await exchange(pool))[:3] == (200, [(b"content-length", b"5")], b"hello")
        assert len(upstream.transports) == 1

    run(scenario())


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_a_bodiless_status_with_a_length_reads_no_body_and_keeps_the_connection(status: int, pieces: Callable[[bytes], list[bytes]]) -> None:
    reply = b"HTTP/1.1 %d X\r\ncontent-length: 5\r\n\r\n" % status
    upstream = ScriptedUpstream([reply, OK], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert await exchange(pool) == (status, [(b"content-length", b"5")], b"", True)
        assert (await exchange(pool))[2] == b"hello"  # the next answer is not read as a body
        assert len(upstream.transports) == 1

    run(scenario())


@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_a_head_answer_with_a_length_has_no_body_and_keeps_the_connection(pieces: Callable[[bytes], list[bytes]]) -> None:
    upstream = ScriptedUpstream([b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", OK], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert await exchange(pool, HEAD_REQUEST) == (200, [(b"content-length", b"1000")], b"", True)
        assert await exchange(pool) == (200, [(b"content-length", b"5")], b"hello", True)
        assert len(upstream.transports) == 1

    run(scenario())


@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_an_http_1_0_answer_without_length_ends_with_the_connection(pieces: Callable[[bytes], list[bytes]]) -> None:
    upstream = ScriptedUpstream([(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end", CLOSE)], [OK], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert await exchange(pool) == (200, [(b"content-type", b"text/plain")], b"until the end", False)
        assert pool.idle_count == 0
        assert (await exchange(pool))[2] == b"hello"
        assert len(upstream.transports) == 2

    run(scenario())


def test_connection_close_is_not_reused() -> None:
    upstream = ScriptedUpstream([b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"], [OK])

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert await exchange(pool) == (200, [(b"connection", b"close"), (b"content-length", b"2")], b"hi", False)
        await settle()
        assert (pool.idle_count, pool.open_count) == (0, 0)
        assert (await exchange(pool))[2] == b"hello"
        assert upstream.transports[0].closing and len(upstream.transports) == 2

    run(scenario())


def test_a_chunked_answer_is_reassembled() -> None:
    reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
    upstream = ScriptedUpstream([reply, OK], pieces=byte_by_byte)

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert await exchange(pool) == (200, [(b"transfer-encoding", b"chunked")], b"hello world", True)
        assert (await exchange(pool))[2] == b"hello"

    run(scenario())


# Every response of the tests above in one conversation: split anywhere, the result is the same.
CONVERSATION: list[tuple[bytes, Reply]] = [
    (GET, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none"),
    (GET, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\netag: \"x\"\r\n\r\n"),
    (HEAD_REQUEST, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
    (GET, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"),
    (GET, (b"HTTP/1.0 200 OK\r\n\r\nthree", CLOSE)),
]


def test_every_split_of_every_response_gives_the_same_result() -> None:
    async def conversation(pieces: Callable[[bytes], list[bytes]]) -> list[Any]:
        upstream = ScriptedUpstream([reply for _, reply in CONVERSATION], pieces=pieces)
        pool = make_pool(upstream)
        return [await exchange(pool, request) for request, _ in CONVERSATION]

    async def scenario() -> None:
        expected = await conversation(whole)
        assert [result[2] for result in expected] == [b"one", b"", b"", b"two", b"three"]
        assert [result[3] for result in expected] == [True, True, True, True, False]
        longest = max(len(reply if isinstance(reply, bytes) else reply[0]) for _, reply in CONVERSATION)
        for offset in range(1, longest):
            assert await conversation(split_at(offset)) == expected, offset
        assert await conversation(byte_by_byte) == expected

    run(scenario())


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 042 Odd\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
    ],
    ids=["bad-chunk-size", "two-lengths", "garbage-status-line", "status-999", "status-042", "upgrade"],
)
@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_malformed_framing_is_a_protocol_error_never_a_hang(reply: bytes, pieces: Callable[[bytes], list[bytes]]) -> None:
    upstream = ScriptedUpstream([reply], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        with pytest.raises(UpstreamProtocolError):
            await exchange(pool)
        await settle()
        assert (pool.open_count, pool.idle_count) == (0, 0)

    run(scenario())


@pytest.mark.parametrize("pieces", SPLITS, ids=["whole", "byte-by-byte"])
def test_bytes_after_a_complete_answer_are_never_read_as_the_next_one(pieces: Callable[[bytes], list[bytes]]) -> None:
    # Read as the next answer, they would reach another client (RFC 9112 9.3: answers follow requests).
    unasked = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" + b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"
    upstream = ScriptedUpstream([unasked], [OK], pieces=pieces)

    async def scenario() -> None:
        pool = make_pool(upstream)
        assert (await exchange(pool))[2] == b"ok"
        await settle()
        assert (await exchange(pool))[2] == b"hello"
        assert len(upstream.transports) == 2 and upstream.transports[0].aborted

    run(scenario())


@pytest.mark.parametrize("stage", ["head", "body"])
def test_silence_from_the_upstream_is_a_timeout(stage: str) -> None:
    reply: Reply = SILENT if stage == "head" else b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"
    upstream = ScriptedUpstream([reply])

    async def scenario() -> None:
        pool = make_pool(upstream)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeout) as raised:
            await exchange(pool, timeout=0.1)
        assert 0.1 <= loop.time() - started < 1.0
        assert raised.value.status == 504
        assert str(raised.value) == f"no response {'headers' if stage == 'head' else 'body'} from the upstream within 0.1 s"

    run(scenario())


def test_the_whole_body_wait_wakes_for_the_end_only() -> None:
    upstream = ScriptedUpstream([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789"], pieces=byte_by_byte)

    async def scenario() -> None:
        pool = make_pool(upstream)
        connection = await pool.connect()
        connection.begin(GET, head_request=False)
        await connection.wait_for(HEAD, 1.0)
        assert connection.small_body_pending
        await connection.wait_for(WHOLE_BODY, 1.0)
        assert connection.message_complete and connection.take_body() == b"0123456789"
        pool.release(connection)

    run(scenario())


def test_a_kept_connection_closed_under_a_new_request_reports_it_before_any_answer() -> None:
    upstream = ScriptedUpstream([OK, CLOSE])

    async def scenario() -> None:
        pool = make_pool(upstream)
        await exchange(pool)
        with pytest.raises(UpstreamClosed) as raised:
            await exchange(pool)
        assert raised.value.before_response
        await settle()
        assert (pool.open_count, pool.idle_count) == (0, 0)

    run(scenario())


def test_a_connection_closed_mid_answer_is_not_before_the_response() -> None:
    upstream = ScriptedUpstream([(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhal", CLOSE)])

    async def scenario() -> None:
        with pytest.raises(UpstreamClosed) as raised:
            await exchange(make_pool(upstream))
        assert not raised.value.before_response

    run(scenario())


def test_a_big_body_stops_the_reading_until_it_is_taken() -> None:
    size = 600 * 1024
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size
    upstream = ScriptedUpstream([reply], pieces=lambda data: [data[i : i + 65536] for i in range(0, len(data), 65536)])

    async def scenario() -> None:
        pool = make_pool(upstream)
        connection = await pool.connect()
        connection.begin(GET, head_request=False)
        await connection.wait_for(HEAD, 1.0)
        assert not connection.small_body_pending
        for _ in range(10):
            await asyncio.sleep(0)
        transport = upstream.transports[0]
        assert transport.reading_paused  # the client's pace decides what is held, not the upstream's
        received = 0
        while True:
            await connection.wait_for(BODY_PIECE, 1.0)
            piece = connection.take_body()
            if not piece:
                break
            received += len(piece)
        assert received == size and not transport.reading_paused
        pool.release(connection)

    run(scenario())


# -- the open-connection count, right after every way a connection ends


def test_open_count_after_release_abort_cut_upstream_close_and_idle_timeout() -> None:
    upstream = ScriptedUpstream([OK, OK], [OK], [OK], [OK, CLOSE], [OK])

    async def scenario() -> None:
        pool = make_pool(upstream, idle_timeout=0.05)
        await exchange(pool)  # released: kept
        assert (pool.open_count, pool.idle_count) == (1, 1)
        await exchange(pool)
        assert (pool.open_count, pool.idle_count) == (1, 1)

        second = await pool.connect()
        assert pool.open_count == 2
        second.abort()  # an exchange cut short by the proxy
        await settle()
        assert pool.open_count == 1

        third = await pool.connect()
        third.cut(UpstreamProtocolError("bad bytes"))
        await settle()
        assert pool.open_count == 1

        pool.close()  # the idle one
        await settle()
        assert (pool.open_count, pool.idle_count) == (0, 0)

        await exchange(pool)  # the fourth script: answers once, then the upstream closes
        assert pool.open_count == 1
        with pytest.raises(UpstreamClosed):
            await exchange(pool)
        await settle()
        assert pool.open_count == 0

        await exchange(pool)  # the fifth: kept idle, then older than the idle timeout
        assert (pool.open_count, pool.idle_count) == (1, 1)
        await asyncio.sleep(0.1)
        assert pool.take_idle() is None
        await settle()
        assert (pool.open_count, pool.idle_count) == (0, 0)

    run(scenario())


def test_open_count_after_an_idle_connection_is_closed_by_the_upstream() -> None:
    upstream = ScriptedUpstream([OK])

    async def scenario() -> None:
        pool = make_pool(upstream)
        await exchange(pool)
        assert pool.open_count == 1
        transport = upstream.transports[0]
        transport.protocol.eof_received()
        transport.close()
        await settle()
        assert pool.open_count == 0
        assert pool.take_idle() is None

    run(scenario())


def test_open_count_after_a_connect_that_times_out_once_connected() -> None:
    upstream = SlowConnector()

    async def scenario() -> None:
        pool = UpstreamPool("upstream.test", 8000, connect_timeout=0.05, idle_timeout=30, max_idle=8, connector=upstream)
        with pytest.raises(UpstreamTimeout):
            await pool.connect()
        await settle()
        assert pool.open_count == 0

    run(scenario())


def test_a_failing_connector_is_a_connect_error() -> None:
    async def refuse(protocol_factory: Callable[[], UpstreamConnection]) -> tuple[Any, UpstreamConnection]:
        raise ConnectionRefusedError(111, "Connection refused")

    async def scenario() -> None:
        pool = UpstreamPool("upstream.test", 8000, connect_timeout=0.5, idle_timeout=30, max_idle=8, connector=refuse)
        with pytest.raises(UpstreamError) as raised:
            await pool.connect()
        assert str(raised.value) == "cannot connect to upstream.test:8000: Connection refused"
        assert (raised.value.status, pool.open_count) == (502, 0)

    run(scenario())
