"""Partial maintenance (a scope of path prefixes) and the notice Django is sent, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.admin.changes import next_state
from gateway.errors import StateError
from gateway.state import MaintenanceState, parse_scope, switched_off
from gateway.status_feed import NOTICE_VALUE_BUDGET, notice_line
from tests.raw_http import exchange_until_close
from tests.support import (
    BIN,
    CORS_ENV,
    FRONT_ORIGIN,
    SUPPORT_ADMIN_TOKEN,
    Gateway,
    base_env,
    cli,
    wait_for_reads,
)

ANGULAR_ACCEPT = "application/json, text/plain, */*"
NOTICE = "x-maintenance-notice"


def forwarded_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The request headers the raw upstream received, as it reports them."""
    assert response.status_code == 200, response.text
    return [(name.lower(), value) for name, value in response.json()["headers"]]


def notices(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(value) for name, value in forwarded_headers(response) if name == NOTICE]


def test_only_paths_under_the_scope_are_in_maintenance(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Checkout is paused", scope=("/echo/checkout/", "/echo/payments"))
    with raw_gateway.client(headers={"Accept": ANGULAR_ACCEPT, "Origin": FRONT_ORIGIN}) as client:
        refused = {path: client.get(path) for path in ("/echo/checkout", "/echo/checkout/", "/echo/checkout/pay", "/echo/payments/x")}
        served = {path: client.get(path) for path in ("/echo", "/echo/catalogue", "/echo/checkoutx", "/echo/payments-old")}
    for path, response in refused.items():
        assert response.status_code == 503, path
        assert response.json()["scope"] == ["/echo/checkout/", "/echo/payments/"]
        assert response.json()["message"] == "Checkout is paused"
        assert response.headers["access-control-allow-origin"] == FRONT_ORIGIN
    for path, response in served.items():
        assert response.status_code == 200, path
        # Django is told which part of the site is down, so its pages can say so.
        assert notices(response) == [
            {"mode": "full", "scope": ["/echo/checkout/", "/echo/payments/"], "upcoming": False, "message": "Checkout is paused"}
        ]


def test_read_only_in_a_scope_refuses_only_its_writes(raw_gateway: Gateway) -> None:
    state = raw_gateway.turn_on(mode="read-only", scope=("/echo/checkout/",), ends_at=time.time() + 600)
    with raw_gateway.client(headers={"Accept": ANGULAR_ACCEPT}) as client:
        read = client.get("/echo/checkout/cart")
        write = client.post("/echo/checkout/cart", json={"item": 1})
        elsewhere = client.post("/echo/catalogue", json={"item": 1})
    assert write.status_code == 503
    assert write.json()["mode"] == "read-only" and write.json()["scope"] == ["/echo/checkout/"]
    assert read.status_code == 200 and elsewhere.status_code == 200
    expected = {"mode": "read-only", "scope": ["/echo/checkout/"], "ends_at": state.to_item()["ends_at"], "upcoming": False}
    assert notices(read) == notices(elsewhere) == [expected]


def test_the_whole_site_503_has_no_scope_key(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    body = httpx.get(f"{raw_gateway.url}/echo/anything", headers={"Accept": ANGULAR_ACCEPT}, timeout=5).json()
    assert set(body) == {"error", "message", "mode", "retry_after", "ends_at"}


def test_notices_follow_the_window_and_a_client_copy_never_passes(raw_gateway: Gateway) -> None:
    forged = {"X-Maintenance-Notice": '{"mode":"full","upcoming":true}'}
    with raw_gateway.client(headers=forged) as client:
        # No maintenance: no notice, and the client's own copy is dropped.
        assert notices(client.get("/echo")) == []
        start = time.time() + 1.5
        state = raw_gateway.turn_on(mode="read-only", starts_at=start, ends_at=start + 1.5)
        upcoming = notices(client.get("/echo"))
        time.sleep(max(0.0, start - time.time()) + 0.2)
        during = notices(client.get("/echo"))
        time.sleep(max(0.0, state.ends_at - time.time()) + 0.2)  # type: ignore[operator]
        ended = notices(client.get("/echo"))
    times = {"starts_at": state.to_item()["starts_at"], "ends_at": state.to_item()["ends_at"]}
    assert upcoming == [{"mode": "read-only", **times, "upcoming": True}]
    assert during == [{"mode": "read-only", **times, "upcoming": False}]
    assert ended == []


def test_full_maintenance_of_the_whole_site_sends_no_notice_to_bypasses(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    with raw_gateway.client(headers={"X-Maintenance-Notice": "forged"}) as client:
        bypassed = client.post("/webhooks/stripe", content=b"{}")
    assert bypassed.status_code == 200
    assert notices(bypassed) == []


def test_the_notice_is_ascii_whatever_the_scope_holds(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(mode="read-only", scope=("/echo/caf\u00e9/",))
    response = httpx.get(f"{raw_gateway.url}/echo/x", timeout=5)
    raw = [value for name, value in forwarded_headers(response) if name == NOTICE]
    assert raw == ['{"mode":"read-only","scope":["/echo/caf\\u00e9/"],"upcoming":false}']
    assert httpx.post(f"{raw_gateway.url}/echo/caf\u00e9/order", timeout=5).status_code == 503


def test_the_notice_carries_the_operators_message_and_only_that() -> None:
    now = time.time()
    with_message = MaintenanceState(enabled=True, mode="read-only", message="Back at 10:00 \u00e9t\u00e9\nthanks")
    without = MaintenanceState(enabled=True, mode="read-only")
    assert notice_line(with_message, now) == (
        b'x-maintenance-notice: {"mode":"read-only","upcoming":false,"message":"Back at 10:00 \\u00e9t\\u00e9\\nthanks"}\r\n'
    )
    # No message of the operator's: none is sent (not the 503's default), Django words its own.
    assert b"message" not in notice_line(without, now)


@pytest.mark.parametrize("char", ["x", "\u00e9", "\U0001f600"], ids=["ascii", "latin", "astral"])
def test_a_long_message_is_cut_so_the_notice_fits_any_upstreams_header_limit(char: str) -> None:
    """gunicorn refuses a header line over 8190 bytes; 2000 escaped characters can take 24000."""
    scope = tuple(f"/{'p' * 190}{number}/" for number in range(16))
    cut = 0
    for state in (
        MaintenanceState(enabled=True, mode="read-only", message=char * 2000),
        MaintenanceState(enabled=True, mode="read-only", message=char * 2000, scope=scope),
    ):
        line = notice_line(state, time.time())
        name, value = line.rstrip(b"\r\n").split(b": ", 1)
        assert name == b"x-maintenance-notice" and value.isascii() and len(value) <= NOTICE_VALUE_BUDGET
        message = json.loads(value)["message"]
        if message == state.message:
            continue  # 2000 ASCII characters fit whole
        cut += 1
        assert message.endswith("\u2026") and set(message[:-1]) == {char}
        # Cut no shorter than needed: one more character would not have fitted.
        assert len(value) + len(json.dumps(char)) - 2 > NOTICE_VALUE_BUDGET
    assert cut == (1 if char == "x" else 2)


@pytest.fixture(scope="module")
def scope_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    gateway = Gateway(log_dir, raw_upstream, CORS_ENV, name="gateway-scope")
    yield gateway
    gateway.stop()


def raw_status(gateway: Gateway, target: bytes) -> int:
    reply = exchange_until_close(gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    return int(reply.split(b" ", 2)[1])


def test_paths_that_may_resolve_into_the_scope_are_in_maintenance(scope_gateway: Gateway) -> None:
    scope_gateway.turn_on(scope=("/echo/checkout/",))
    try:
        statuses = {
            target: raw_status(scope_gateway, target)
            for target in (
                b"/echo/checkout/pay",
                b"/echo/%63heckout/pay",  # percent-encoded letters are the same path
                b"/echo/x/../checkout/pay",
                b"/echo/x/%2e%2e/checkout/pay",
                b"/echo/./checkout",
                b"/echo/catalogue",
                b"/echo/checkoutx/pay",
            )
        }
    finally:
        scope_gateway.turn_off()
    assert statuses == {
        b"/echo/checkout/pay": 503,
        b"/echo/%63heckout/pay": 503,
        b"/echo/x/../checkout/pay": 503,
        b"/echo/x/%2e%2e/checkout/pay": 503,
        b"/echo/./checkout": 503,
        b"/echo/catalogue": 200,
        b"/echo/checkoutx/pay": 200,
    }


def test_the_scope_is_kept_normalised_and_round_trips_through_the_store_item() -> None:
    state = MaintenanceState(enabled=True, scope=("api/payments", "/api/checkout/", "/api/checkout"))
    assert state.scope == ("/api/checkout/", "/api/payments/")
    assert state.to_item()["scope"] == ["/api/checkout/", "/api/payments/"]
    assert MaintenanceState.from_item(state.to_item()) == state
    assert MaintenanceState(enabled=True, scope=()).scope is None
    assert MaintenanceState().to_item()["scope"] is None


@pytest.mark.parametrize("stored", ["/api/", "", 5, False, {"a": 1}, {}, ["/api/checkout/", 5], [None], [{}]])
def test_a_stored_scope_that_is_not_a_list_of_text_covers_the_whole_site(stored: object) -> None:
    """Read as an unusable item, it would keep the last state (off) in force: the checkout a
    hand-edit meant to take down would stay up. It is a refused scope like any other instead."""
    state = MaintenanceState.from_item({"enabled": True, "scope": stored})
    assert state.enabled and state.scope is None
    assert state.scope_refused is not None and "expected" in state.scope_refused


# Scopes an operator may write into the store by hand that the admin API would refuse (400).
REFUSED_STORED_SCOPES: dict[str, list[str]] = {
    "17 prefixes": [f"/echo/part{n}/" for n in range(17)],
    "a prefix of 201 characters": ["/echo/" + "x" * 195],
    "a dot-segment": ["/echo/checkout/", "/echo/../admin/"],
    "percent-encoding": ["/echo/check%6Fout/"],
    "white space": ["/echo/checkout /"],
    "a backslash": ["/echo\\checkout/"],
    "a query": ["/echo/checkout?step=1"],
    "a control character": ["/echo/\x1b[2J/"],
    "a lone surrogate": ["/echo/\ud800/"],
    "the whole site as a prefix": ["/"],
}


@pytest.mark.parametrize("name", list(REFUSED_STORED_SCOPES))
def test_a_stored_scope_the_api_would_refuse_covers_the_whole_site_and_says_why(name: str) -> None:
    stored = REFUSED_STORED_SCOPES[name]
    with pytest.raises(StateError) as refused_by_the_api:
        parse_scope(stored)
    state = MaintenanceState.from_item({"enabled": True, "message": "m", "scope": stored, "version": 3})
    # Not cut to the first 16 prefixes, not kept to match nothing: the whole site, and why.
    assert state.scope is None and state.active(0)
    assert state.scope_refused == refused_by_the_api.value.reason
    described = state.describe(0)
    assert described["scope"] is None and described["scope_refused"] == state.scope_refused
    json.dumps(described).encode("utf-8")
    assert "scope_refused" not in state.to_item()  # how an item was read, never written back


def test_a_change_over_a_refused_scope_writes_a_clean_item() -> None:
    stored = MaintenanceState.from_item({"enabled": True, "message": "m", "scope": ["/a/../b/"], "version": 3})
    assert stored.scope_refused is not None
    # The same whole-site window asked for again is a change: it rewrites the item the API's way.
    again = next_state(stored, {"message": "m"}, now=time.time(), actor="ops")
    assert again is not stored and again.version == 4 and again.scope is None and again.scope_refused is None
    assert switched_off(stored, now=time.time(), actor="ops").scope_refused is None
    assert MaintenanceState.from_item({"enabled": True, "scope": ["/a/", "b"]}).scope_refused is None


@pytest.mark.parametrize(
    "scope",
    [["/api/../admin/"], ["/api/./x"], ["/api/\x00/"], ["/api/\x1b[2J"], ["/api?x=1"], [""], ["/"], "/api/", [5], ["/a"] * 17],
)
def test_a_scope_written_with_a_dot_segment_control_character_or_wrong_type_is_refused(scope: object) -> None:
    with pytest.raises(StateError) as refused:
        parse_scope(scope)
    assert refused.value.field == "scope"


def log_count(gateway: Gateway, text: str) -> int:
    return gateway.server.log().count(text)


@pytest.mark.parametrize(("name", "dropped_path"), [("17 prefixes", "/echo/part16/x"), ("a dot-segment", "/echo/catalogue")])
def test_a_hand_written_scope_the_api_would_refuse_takes_the_whole_site_down(raw_gateway: Gateway, name: str, dropped_path: str) -> None:
    logged_before = log_count(raw_gateway, '"event": "scope_refused"')
    version = raw_gateway.store.read().version + 1
    item = {"enabled": True, "message": "Checkout paused", "scope": REFUSED_STORED_SCOPES[name], "version": version}
    raw_gateway.state_path.write_text(json.dumps(item))  # an operator's edit, no API checks
    raw_gateway.wait_for_version(version)
    wait_for_reads(raw_gateway, 3)  # read again and again: logged once all the same
    with raw_gateway.client(headers={"Accept": "application/json"}) as client:
        dropped = client.get(dropped_path)
        elsewhere = client.get("/echo/anything")
        public = client.get("/_gateway/health").json()
    detailed = raw_gateway.health()
    on_the_store = cli("status", store=raw_gateway.state_path)
    as_json = cli("status", "--json", store=raw_gateway.state_path)
    through_the_gateway = subprocess.run(
        [str(BIN / "maintenance-gateway"), "status"],
        env={**base_env(), "GATEWAY_ADMIN_URL": raw_gateway.url, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN},
        capture_output=True, text=True, timeout=30,
    )
    assert dropped.status_code == 503 and elsewhere.status_code == 503
    assert "scope" not in dropped.json() and dropped.json()["message"] == "Checkout paused"
    reason = MaintenanceState.from_item(item).scope_refused
    assert reason is not None
    # A stranger reads what it always read; the reason needs a token.
    assert public == {"status": "ok", "maintenance": True, "mode": "full", "upcoming": False, "store": {"status": "ok"}}
    assert detailed["state"]["scope"] is None and detailed["state"]["scope_refused"] == reason
    line = f"paths:       every path: the stored scope is refused ({reason})"
    assert line in on_the_store.stdout.splitlines(), on_the_store.stdout
    assert json.loads(as_json.stdout)["scope_refused"] == reason
    assert line in through_the_gateway.stdout.splitlines(), (through_the_gateway.stdout, through_the_gateway.stderr)
    assert log_count(raw_gateway, '"event": "scope_refused"') - logged_before == 1
