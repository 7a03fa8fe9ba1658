"""A raw ASGI upstream for the proxy's edge cases, run under uvicorn by the tests.

Every endpoint answers from what it really received, so the tests see what the
gateway forwarded, not what they meant to send.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]

# Every request line received (but the bookkeeping ones), for the smuggling tests.
REQUESTS_SEEN: list[str] = []
# Streams that ended because the client left, and those still running.
DISCONNECTED_STREAMS: list[str] = []
ACTIVE_STREAMS: set[str] = set()


async def _read_body(receive: Any) -> tuple[int, str, int]:
    digest = hashlib.sha256()
    size = messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body = message.get("body", b"")
        size += len(body)
        messages += 1
        digest.update(body)
        if not message.get("more_body", False):
            break
    return size, digest.hexdigest(), messages


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, payload: Any, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await _respond(send, status, headers + (extra or []), body)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/requests-seen":
        await _json(send, {"requests": REQUESTS_SEEN})
        return
    if path == "/requests-reset":
        REQUESTS_SEEN.clear()
        await _json(send, {"requests": []})
        return
    REQUESTS_SEEN.append(f"{scope['method']} {scope['raw_path'].decode('latin-1')}")
    query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}

    if path == "/echo" or path.startswith("/echo/") or path.startswith("/webhooks"):
        size, sha, messages = await _read_body(receive)
        await _json(
            send,
            {
                "method": scope["method"],
                "raw_path": scope["raw_path"].decode("latin-1"),
                "query_string": scope["query_string"].decode("latin-1"),
                "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
                "body_bytes": size,
                "body_sha256": sha,
                "client_port": scope["client"][1],
            },
        )
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        headers = [(b"x-status", str(status).encode())]
        if status in (204, 304):
            await _respond(send, status, headers)
        else:
            await _respond(send, status, headers + [(b"content-length", b"2")], b"ok")
    elif path == "/hop-by-hop":
        await _respond(
            send,
            200,
            [
                (b"content-length", b"2"),
                (b"connection", b"x-private, keep-alive"),
                (b"x-private", b"must-not-cross"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"upgrade", b"h2c"),
                (b"x-public", b"kept"),
            ],
            b"ok",
        )
    elif path == "/cookies":
        await _respond(
            send,
            200,
            [
                (b"content-length", b"2"),
                (b"set-cookie", b"a=1; Path=/"),
                (b"set-cookie", b"b=2; Path=/; HttpOnly"),
                (b"set-cookie", b"c=3; Path=/; Secure"),
            ],
            b"ok",
        )
    elif path == "/redirect":
        await _respond(send, 302, [(b"location", b"/echo"), (b"content-length", b"0")])
    elif path == "/gzip":
        body = gzip.compress(b"compressed payload " * 100)
        await _respond(
            send,
            200,
            [(b"content-encoding", b"gzip"), (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            body,
        )
    elif path == "/upload":
        size, sha, messages = await _read_body(receive)
        await _json(send, {"bytes": size, "sha256": sha, "messages": messages})
    elif path == "/download":
        size = int(query.get("size", "0"))
        chunk = b"x" * 65536
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())],
            }
        )
        remaining = size
        while remaining > 0:
            piece = chunk[: min(remaining, len(chunk))]
            remaining -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": remaining > 0})
    elif path == "/sse":
        await _stream(scope, receive, send, query)
    elif path == "/stream-stats":
        await _json(send, {"disconnected": DISCONNECTED_STREAMS, "active": sorted(ACTIVE_STREAMS)})
    elif path == "/slow":
        await asyncio.sleep(float(query.get("delay", "1")))
        await _json(send, {"slow": True})
    else:
        await _json(send, {"error": "not found", "path": path}, status=404)


async def _stream(scope: Scope, receive: Any, send: Any, query: dict[str, str]) -> None:
    """Server-sent events until ``count`` (0: for ever) or until the client leaves."""
    name = query.get("name", "stream")
    count = int(query.get("count", "0"))
    interval = float(query.get("interval", "0.1"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    ACTIVE_STREAMS.add(name)
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.create_task(watch())
    try:
        number = 0
        while count == 0 or number < count:
            await send({"type": "http.response.body", "body": f"data: {number}\n\n".encode(), "more_body": True})
            number += 1
            try:
                await asyncio.wait_for(gone.wait(), interval)
            except asyncio.TimeoutError:
                continue
            DISCONNECTED_STREAMS.append(name)
            return
        await send({"type": "http.response.body", "body": b""})
    finally:
        ACTIVE_STREAMS.discard(name)
        watcher.cancel()
