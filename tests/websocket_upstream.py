"""A raw ASGI WebSocket upstream for the relay's edge cases, run under uvicorn by the tests.

It answers from what it really received (the handshake it saw, the close codes it got),
so the tests check what the gateway forwarded. ``GET /stats`` tells how many sockets are
open here and how the last ones ended.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

Scope = dict[str, Any]

OPEN: set[int] = set()
CLOSES: list[dict[str, Any]] = []


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return


async def _http(scope: Scope, receive: Any, send: Any) -> None:
    body = json.dumps({"open": len(OPEN), "closes": CLOSES[-50:]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _seen(scope: Scope) -> str:
    return json.dumps(
        {
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
            "subprotocols": scope.get("subprotocols", []),
        }
    )


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    path = scope["path"]
    if path == "/refuse":
        await send({"type": "websocket.http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"origin not allowed"})
        return
    offered = scope.get("subprotocols") or []
    chosen = "chat.v2" if "chat.v2" in offered else None
    await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"set-cookie", b"seen=1; Path=/")]})
    key = id(scope)
    OPEN.add(key)
    try:
        if path == "/silent":
            # Reads nothing until closed: the client's messages back up in front of it.
            await asyncio.sleep(3600)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                CLOSES.append({"path": path, "code": message.get("code"), "reason": message.get("reason") or ""})
                return
            text = message.get("text")
            if text is not None and text.startswith("cmd:"):
                await _command(text[4:], scope, send)
                continue
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    except asyncio.CancelledError:
        CLOSES.append({"path": path, "code": "cancelled", "reason": ""})
        raise
    finally:
        OPEN.discard(key)


async def _command(command: str, scope: Scope, send: Any) -> None:
    name, _, argument = command.partition(":")
    if name == "seen":
        await send({"type": "websocket.send", "text": _seen(scope)})
    elif name == "close":
        code, _, reason = argument.partition(":")
        await send({"type": "websocket.close", "code": int(code), "reason": reason})
    elif name == "flood":
        count, _, size = argument.partition(":")
        payload = b"x" * int(size)
        for _ in range(int(count)):
            await send({"type": "websocket.send", "bytes": payload})
        await send({"type": "websocket.send", "text": "flood done"})
