"""WebSockets through the shipped nginx template and the gateway, to the example Django app's
Channels consumers; and plain requests keeping their keep-alive connection beside them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import CORS_ENV, FRONT_ORIGIN, Gateway, start_nginx
from tests.websocket_support import closed_with, open_socket, start_django_asgi


@pytest.fixture(scope="module")
def django_asgi(log_dir: Path) -> Iterator[str]:
    server, url = start_django_asgi(log_dir, FRONT_ORIGIN, name="django-asgi-stack")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def stack(log_dir: Path, django_upstream: str, django_asgi: str) -> Iterator[tuple[Gateway, str]]:
    gateway = Gateway(
        log_dir, django_upstream, {**CORS_ENV, "GATEWAY_WEBSOCKET_UPSTREAM_URL": django_asgi}, name="gateway-ws-stack"
    )
    nginx, url = start_nginx(log_dir, gateway.port, name="nginx-ws-stack")
    yield gateway, url
    nginx.stop()
    gateway.stop()


def test_channels_echo_through_nginx_and_the_gateway(stack: tuple[Gateway, str]) -> None:
    _, url = stack
    with open_socket(url, "/ws/echo/", origin=FRONT_ORIGIN, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=5) == b"\x00" * 100_000
        ws.send("close:4100:done here")
        assert closed_with(ws) == (4100, "done here")


def test_a_feed_pushes_every_100_ms_through_the_gateway(stack: tuple[Gateway, str]) -> None:
    _, url = stack
    with open_socket(url, "/ws/ticks/", origin=FRONT_ORIGIN) as ws:
        started = time.monotonic()
        ticks = [json.loads(ws.recv(timeout=5))["tick"] for _ in range(10)]
        elapsed = time.monotonic() - started
    assert ticks == list(range(10))
    assert 0.7 < elapsed < 3.0


def test_django_refuses_another_origin_through_the_gateway(stack: tuple[Gateway, str]) -> None:
    from websockets.exceptions import InvalidStatus

    _, url = stack
    with pytest.raises(InvalidStatus) as refused:
        open_socket(url, "/ws/echo/", origin="http://evil.example")
    assert refused.value.response.status_code == 403


def _established_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:port, from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.split(":")[1], 16) == port and state == "01":
            count += 1
    return count


def test_plain_requests_keep_their_keep_alive_connection_to_the_gateway(stack: tuple[Gateway, str]) -> None:
    gateway, url = stack
    for _ in range(20):
        assert httpx.get(f"{url}/api/hello", timeout=5).status_code == 200
    # nginx reuses one idle connection (Connection "" for plain requests): with
    # "Connection: close" none would stay open.
    assert _established_to(gateway.port) == 1



def test_make_run_serves_websockets_through_the_gateway(log_dir: Path) -> None:
    """scripts/run-example.sh (``make run``): gunicorn, the ASGI server and the gateway, on free ports."""
    from tests.support import ROOT, ServerProcess, base_env, free_port

    django_port, asgi_port, gateway_port = free_port(), free_port(), free_port()
    env = {
        **base_env(),
        "EXAMPLE_DJANGO_PORT": str(django_port),
        "EXAMPLE_ASGI_PORT": str(asgi_port),
        "GATEWAY_STORE": "memory:",
    }
    run = ServerProcess("make-run", ["scripts/run-example.sh", "--port", str(gateway_port)], env, ROOT, log_dir)
    try:
        run.wait_for_port(gateway_port, timeout=30)
        url = f"http://127.0.0.1:{gateway_port}"
        assert httpx.get(f"{url}/api/hello", timeout=5).json()["message"] == "hello from Django"
        with open_socket(url, "/ws/echo/", origin="http://localhost:4200") as ws:
            ws.send("through make run")
            assert ws.recv(timeout=5) == "through make run"
    finally:
        run.stop()
