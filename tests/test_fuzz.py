"""Generated requests straight into the gateway's ASGI app, forwarding to the real raw upstream.

Methods, paths, queries, header sets (hop-by-hop, forwarding, CORS, odd names and
values) and bodies, in and out of maintenance: no 500, no exception escaping the
app, no hang, and the messages sent always form one well-formed response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import Gateway
from gateway.settings import load_settings
from gateway.state import MaintenanceState
from gateway.stores.memory import MemoryStore
from tests.support import CORS_ENV

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# What llhttp lets through in a request target: visible ASCII, no spaces.
TARGET_CHARS = "".join(chr(c) for c in range(0x21, 0x7F))

methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) | st.text(
    alphabet=TOKEN_CHARS.upper(), min_size=1, max_size=10
)
paths = st.one_of(
    st.sampled_from(["/echo", "/upload", "/status/204", "/status/304", "/redirect", "/gzip", "/webhooks/x", "/", "/cookies"]),
    st.text(alphabet=TARGET_CHARS, max_size=60).map(lambda text: "/" + text),
)
header_values = st.binary(max_size=80).map(lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F))
special_headers = st.tuples(
    st.sampled_from(
        [
            b"connection", b"keep-alive", b"te", b"upgrade", b"proxy-authorization", b"expect", b"trailer",
            b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip",
            b"host", b"origin", b"accept", b"x-requested-with", b"access-control-request-method",
            b"cookie", b"x-maintenance-bypass", b"x_under_score", b"content-type",
        ]
    ),
    header_values | st.sampled_from([b"close", b"keep-alive, x-a", b"XMLHttpRequest", b"text/html", b"http://localhost:4200"]),
)
plain_headers = st.tuples(st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20).map(str.encode), header_values)
bodies = st.lists(st.binary(max_size=700), max_size=3)
states = st.sampled_from(
    [
        MaintenanceState(),
        MaintenanceState(enabled=True, mode="full", message="m", version=1),
        MaintenanceState(enabled=True, mode="read-only", version=2),
    ]
)


@pytest.fixture(scope="module")
def app_loop(raw_upstream: str) -> Iterator[tuple[Gateway, asyncio.AbstractEventLoop]]:
    settings = load_settings({**CORS_ENV, "GATEWAY_UPSTREAM_URL": raw_upstream, "GATEWAY_BYPASS_PATHS": "/webhooks/"})
    gateway = Gateway(settings, store=MemoryStore())
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gateway.startup())
    yield gateway, loop
    loop.run_until_complete(gateway.shutdown())
    loop.close()


async def drive(gateway: Gateway, scope: dict[str, Any], chunks: list[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks or [b""])]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # the client says nothing more until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(gateway(scope, receive, send), timeout=15)
    return sent


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    method=methods,
    path=paths,
    query=st.text(alphabet=TARGET_CHARS, max_size=40),
    headers=st.lists(special_headers | plain_headers, max_size=12),
    chunks=bodies,
    chunked=st.booleans(),
    state=states,
)
def test_the_app_always_answers_well(app_loop, method, path, query, headers, chunks, chunked, state) -> None:
    gateway, loop = app_loop
    gateway.holder.state = state
    body_length = sum(map(len, chunks))
    framing = [(b"transfer-encoding", b"chunked")] if chunked else [(b"content-length", str(body_length).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers] + (framing if chunks else []),
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
    sent = loop.run_until_complete(drive(gateway, scope, chunks))
    assert sent, "nothing was sent"
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] != 500 and 100 <= sent[0]["status"] < 600
    assert all(message["type"] == "http.response.body" for message in sent[1:])
    assert sent[-1].get("more_body", False) is False  # the response was finished
    assert all(isinstance(name, bytes) and isinstance(value, bytes) for name, value in sent[0]["headers"])
