"""The ASGI apps the benchmark runs: the trivial upstream, and the peer proxies to compare with.

Each is served by uvicorn with the same settings as the gateway (uvloop, httptools,
no access log), so the comparison is between the proxies, not their servers.
"""

from __future__ import annotations

import os
from typing import Any

SMALL = b"hello, world\n"
LARGE = b"x" * (64 * 1024)


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]


_SMALL_START = {"type": "http.response.start", "status": 200, "headers": _headers(SMALL)}
_LARGE_START = {"type": "http.response.start", "status": 200, "headers": _headers(LARGE)}
_SMALL_BODY = {"type": "http.response.body", "body": SMALL}
_LARGE_BODY = {"type": "http.response.body", "body": LARGE}


async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/64k`` answers 64 KiB, ``/sink`` swallows a body, ``/blob?size=N`` streams N bytes, else 13 bytes.

    Also the hello-world app that the 503 path is compared with.
    """
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/64k":
        await send(_LARGE_START)
        await send(_LARGE_BODY)
    elif path == "/sink":
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": _headers(body)})
        await send({"type": "http.response.body", "body": body})
    elif path == "/blob":
        size = int(scope["query_string"].decode().partition("=")[2] or 0)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        chunk = LARGE
        while size > 0:
            piece = chunk[: min(size, len(chunk))]
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
    else:
        await send(_SMALL_START)
        await send(_SMALL_BODY)


def asgiproxy_app() -> Any:
    """asgiproxy 0.2 (aiohttp client), as its README sets it up."""
    from asgiproxy.config import BaseURLProxyConfigMixin, ProxyConfig
    from asgiproxy.context import ProxyContext
    from asgiproxy.simple_proxy import make_simple_proxy_app

    class Config(BaseURLProxyConfigMixin, ProxyConfig):
        upstream_base_url = os.environ["BENCH_UPSTREAM"]

    return make_simple_proxy_app(ProxyContext(Config(), max_concurrency=64))


def fastapi_proxy_lib_app() -> Any:
    """fastapi-proxy-lib 0.3 (httpx.AsyncClient), as its README sets it up."""
    from fastapi_proxy_lib.fastapi.app import reverse_http_app

    return reverse_http_app(base_url=os.environ["BENCH_UPSTREAM"] + "/")


# The gateway's maintenance answer, replayed byte for byte by a trivial app: the same
# 9 headers and body, with no maintenance logic. The gap between this and the
# gateway's 503 is what the gateway's own work costs; the gap between it and the
# hello-world is what uvicorn charges for the extra headers.
_REPLICA_BODY = b'{"error":"maintenance","message":"Back soon","mode":"full","retry_after":300,"ends_at":null}'
_REPLICA_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_REPLICA_BODY)).encode()),
        (b"retry-after", b"300"),
        (b"cache-control", b"no-store"),
        (b"x-maintenance-mode", b"full"),
        (b"vary", b"Accept, Origin"),
        (b"access-control-allow-origin", b"https://app.example"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"Retry-After, X-Maintenance-Mode"),
    ],
}
_REPLICA_BODY_MESSAGE = {"type": "http.response.body", "body": _REPLICA_BODY}


async def maintenance_replica(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send(_REPLICA_START)
        await send(_REPLICA_BODY_MESSAGE)
