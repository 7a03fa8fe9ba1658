"""Small ASGI helpers shared by the gateway's own answers."""

from __future__ import annotations

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


async def send_answer(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header_value(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
