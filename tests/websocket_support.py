"""Servers and clients for the WebSocket tests: the raw WebSocket upstream, Django under an
ASGI server (Channels), and small helpers around ``websockets``' sync client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import BIN, DJANGO_DIR, ServerProcess, base_env, free_port, start_test_app

BROWSER_ORIGIN = "http://localhost:4200"


def start_websocket_upstream(log_dir: Path, name: str = "websocket-upstream") -> tuple[ServerProcess, str]:
    # A socket whose handler never reads (the silent one) must not hold up the stop.
    extra = ("--ws-max-size", str(32 << 20), "--timeout-graceful-shutdown", "1")
    return start_test_app(log_dir, "websocket_upstream:app", name, extra)


def start_django_asgi(log_dir: Path, allowed_origins: str, name: str = "django-asgi") -> tuple[ServerProcess, str]:
    """The example Django project under uvicorn: its Channels consumers (and its views)."""
    port = free_port()
    server = ServerProcess(
        name,
        [str(BIN / "uvicorn"), "example_site.asgi:application", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        {**base_env(), "EXAMPLE_CORS_ALLOWED_ORIGINS": allowed_origins},
        DJANGO_DIR,
        log_dir,
    )
    server.wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


def ws_url(http_url: str, path: str) -> str:
    return "ws://" + http_url.removeprefix("http://") + path


def open_socket(http_url: str, path: str = "/echo", *, origin: str | None = BROWSER_ORIGIN, **options: Any) -> ClientConnection:
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    options.setdefault("max_size", None)
    options.setdefault("legacy", True)  # connect now, close with ``with`` or ``close()``
    return connect(ws_url(http_url, path), origin=origin, **options)  # type: ignore[arg-type]


def closed_with(socket: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Read until the socket closes; the close code and reason the client received."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            socket.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, None)
    except TimeoutError:
        pass
    raise AssertionError(f"the socket was not closed within {timeout} s")


def upstream_stats(upstream: str) -> dict[str, Any]:
    return httpx.get(f"{upstream}/stats", timeout=5).json()


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)
