"""Small helpers shared by the gateway's own answers: for ASGI, and as the bytes the
connection protocol writes."""

from __future__ import annotations

import http
import json
from typing import Any

from starlette.types import Send

Headers = list[tuple[bytes, bytes]]

JSON_TYPE = b"application/json"
NO_STORE = (b"cache-control", b"no-store")
# An answer that depends on the request's Origin (its CORS headers): shared caches must know.
VARY_ORIGIN = (b"vary", b"Origin")
# The same field for Starlette responses, which take a mapping of text.
NO_STORE_FIELDS = {NO_STORE[0].decode(): NO_STORE[1].decode()}


def json_bytes(payload: Any, *, allow_nan: bool = True) -> bytes:
    """Compact UTF-8 JSON that always encodes: text holding lone surrogates (which UTF-8 cannot
    carry) is sent with ``\\uXXXX`` escapes instead of failing."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":"), allow_nan=allow_nan).encode("ascii")


def body_headers(content_type: bytes, body: bytes) -> Headers:
    return [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


# Every status line an answer can start with, built once.
STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}


# The end of a head after which the connection closes.
CLOSE = b"connection: close\r\n\r\n"


def head_bytes(status: int, headers: Headers) -> bytes:
    """The status line and header lines of an answer, without the blank line that ends them
    (the writer adds ``connection: close`` first when the connection ends after it)."""
    return STATUS_LINES[status] + b"".join([name + b": " + value + b"\r\n" for name, value in headers])


class Answer:
    """One of the gateway's own answers, complete and ready for either side: ASGI messages for
    the application, or the bytes the connection protocol writes with no ASGI in between. The
    head is serialised once, when the answer is built (answers are cached, not built per request).
    """

    __slots__ = ("status", "headers", "body", "head", "closes", "kept_open", "closing")

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.head = head_bytes(status, headers)
        # The answer says the connection ends after it (the request body was not read).
        self.closes = (b"connection", b"close") in headers
        # The bytes written, whole: on a connection kept open, and on one closed after it.
        self.kept_open = self.head + b"\r\n" + body
        self.closing = self.kept_open if self.closes else self.head + CLOSE + body

    def with_header(self, header: tuple[bytes, bytes]) -> Answer:
        return Answer(self.status, [*self.headers, header], self.body)

    def messages(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {"type": "http.response.start", "status": self.status, "headers": self.headers},
            {"type": "http.response.body", "body": self.body},
        )

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


async def send_answer(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header_value(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
