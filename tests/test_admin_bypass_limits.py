"""One failure limit for every way of presenting a secret: the admin API, the bypass form, the
bypass header and cookie on any request or WebSocket handshake; and admin bodies cut short."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.bypass import COOKIE_NAME
from tests.raw_http import exchange_until_close
from tests.support import Gateway

TOKEN = "limits-token-0123456789abcdef"
SECRET = "limits-bypass-secret-0123456789"
LIMIT = 4


@pytest.fixture(scope="module")
def gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    server = Gateway(
        log_dir,
        raw_upstream,
        {
            "GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}",
            "GATEWAY_BYPASS_SECRET": SECRET,
            "GATEWAY_ADMIN_FAILURE_LIMIT": str(LIMIT),
            "GATEWAY_LOG_LEVEL": "info",
        },
        name="gateway-admin-bypass-limits",
    )
    server.turn_on(message="closed")
    yield server
    server.stop()


_clients = iter(range(1, 250))


def new_client() -> str:
    """An address of its own for each test (a fresh failure budget), sent as X-Forwarded-For."""
    return f"192.0.2.{next(_clients)}"


def get(gateway: Gateway, client: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/echo", headers={"x-forwarded-for": client, **headers}, timeout=5)


def admin_status(gateway: Gateway, client: str) -> int:
    headers = {"x-forwarded-for": client, "authorization": f"Bearer {TOKEN}"}
    return httpx.get(f"{gateway.url}/_gateway/maintenance", headers=headers, timeout=5).status_code


def test_wrong_bypass_headers_count_and_lock_the_header_out_too(gateway: Gateway) -> None:
    client = new_client()
    guesses = [get(gateway, client, **{"x-maintenance-bypass": f"guess-{i:020d}"}).status_code for i in range(LIMIT)]
    assert guesses == [503] * LIMIT
    # Over the limit: the right secret no longer lets this client through, nor does the form or a token.
    assert get(gateway, client, **{"x-maintenance-bypass": SECRET}).status_code == 503
    form = httpx.post(f"{gateway.url}/_gateway/bypass", json={"secret": SECRET}, headers={"x-forwarded-for": client})
    assert form.status_code == 429 and 1 <= int(form.headers["retry-after"]) <= 60
    assert admin_status(gateway, client) == 429
    # Another client is not affected.
    assert get(gateway, new_client(), **{"x-maintenance-bypass": SECRET}).status_code == 200


def test_wrong_bypass_cookies_count_and_are_expired(gateway: Gateway) -> None:
    client = new_client()
    answers = [get(gateway, client, cookie=f"session=abc; {COOKIE_NAME}=1{i}.forged") for i in range(LIMIT)]
    assert [answer.status_code for answer in answers] == [503] * LIMIT
    # The refused cookie is expired, so a browser holding one from before a secret change sends it once.
    expiry = answers[0].headers["set-cookie"]
    assert expiry.startswith(f'{COOKIE_NAME}=""') and "Max-Age=0" in expiry
    assert admin_status(gateway, client) == 429
    good = httpx.post(f"{gateway.url}/_gateway/bypass", json={"secret": SECRET}, headers={"x-forwarded-for": new_client()})
    assert get(gateway, client, cookie=f"{COOKIE_NAME}={good.cookies[COOKIE_NAME]}").status_code == 503
    assert get(gateway, new_client(), cookie=f"{COOKIE_NAME}={good.cookies[COOKIE_NAME]}").status_code == 200


def test_a_client_locked_out_by_the_form_is_not_let_through_by_the_header(gateway: Gateway) -> None:
    client = new_client()
    for i in range(LIMIT):
        wrong = httpx.post(f"{gateway.url}/_gateway/bypass", data={"secret": f"guess{i}"}, headers={"x-forwarded-for": client})
        assert wrong.status_code == 403
    assert get(gateway, client, **{"x-maintenance-bypass": SECRET}).status_code == 503


def test_requests_without_a_secret_never_count(gateway: Gateway) -> None:
    client = new_client()
    for _ in range(3 * LIMIT):
        assert get(gateway, client, cookie="session=abc; csrftoken=x").status_code == 503
    assert get(gateway, client, **{"x-maintenance-bypass": SECRET}).status_code == 200


def test_wrong_secrets_in_websocket_handshakes_count(gateway: Gateway) -> None:
    client = new_client()
    url = "ws://" + gateway.url.removeprefix("http://") + "/echo"
    for i in range(LIMIT):
        headers = {"x-forwarded-for": client, "x-maintenance-bypass": f"guess-{i:020d}"}
        try:
            with connect(url, additional_headers=headers, open_timeout=5, close_timeout=5) as socket_:
                with pytest.raises(ConnectionClosed) as closed:
                    socket_.recv(timeout=5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        except InvalidStatus as refused:
            assert refused.response.status_code == 503
    assert get(gateway, client, **{"x-maintenance-bypass": SECRET}).status_code == 503
    assert admin_status(gateway, client) == 429


def test_clients_of_one_ipv6_64_share_a_budget(gateway: Gateway) -> None:
    url = f"{gateway.url}/_gateway/bypass"
    statuses = []
    for i in range(3 * LIMIT):
        # A new address every time, all in 2001:db8:5:6::/64.
        headers = {"x-forwarded-for": f"2001:db8:5:6:{i:x}::1"}
        statuses.append(httpx.post(url, data={"secret": f"guess{i}"}, headers=headers).status_code)
    assert statuses[:LIMIT] == [403] * LIMIT and set(statuses[LIMIT:]) == {429}, statuses
    # The neighbouring /64 has a budget of its own.
    assert httpx.post(url, data={"secret": "guess"}, headers={"x-forwarded-for": "2001:db8:5:7::1"}).status_code == 403
    assert httpx.post(url, json={"secret": SECRET}, headers={"x-forwarded-for": "2001:db8:5:8::1"}).status_code == 200


def raw_reply(gateway: Gateway, request: bytes) -> bytes:
    return exchange_until_close(gateway.port, request)


@pytest.mark.parametrize("value", [SECRET.encode() + b" ", SECRET.encode() + b"\t \t", b" \t" + SECRET.encode() + b" "])
def test_white_space_around_the_header_value_is_not_part_of_the_secret(gateway: Gateway, value: bytes) -> None:
    """RFC 9110 5.5: optional white space around a field value is not part of it (llhttp passes trailing white space on)."""
    client = new_client().encode()
    request = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + client + b"\r\nX-Maintenance-Bypass: " + value + b"\r\nConnection: close\r\n\r\n"
    assert raw_reply(gateway, request).split(b" ", 2)[1] == b"200"
    form = b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + client + b"\r\nX-Maintenance-Bypass: " + value
    form += b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert raw_reply(gateway, form).split(b" ", 2)[1] == b"200"


def test_a_body_cut_short_is_no_error_in_the_log(gateway: Gateway) -> None:
    before = len(gateway.server.log())
    heads = [
        b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nsecret=abc",
        b"PUT /_gateway/maintenance HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"message\":",
    ]
    for head in heads:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(head)
            time.sleep(0.3)
    time.sleep(0.5)
    log = gateway.server.log()[before:]
    assert "Traceback" not in log and "ClientDisconnect" not in log and "ERROR" not in log, log
    assert httpx.get(f"{gateway.url}/_gateway/health").status_code == 200
