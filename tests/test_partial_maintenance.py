"""Partial maintenance (a scope of path prefixes) and the notice Django is sent, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import StateError
from gateway.state import MaintenanceState, parse_scope
from tests.raw_http import exchange_until_close
from tests.support import CORS_ENV, FRONT_ORIGIN, PARSERS, Gateway, gateway_for_parser

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
        assert notices(response) == [{"mode": "full", "scope": ["/echo/checkout/", "/echo/payments/"], "upcoming": False}]


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


@pytest.fixture(scope="module", params=PARSERS)
def parser_gateway(request: pytest.FixtureRequest, log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    yield from gateway_for_parser(log_dir, raw_upstream, request.param, CORS_ENV, "gateway-scope")


def raw_status(gateway: Gateway, target: bytes) -> int:
    reply = exchange_until_close(gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    return int(reply.split(b" ", 2)[1])


def test_paths_that_may_resolve_into_the_scope_are_in_maintenance_with_both_parsers(parser_gateway: Gateway) -> None:
    parser_gateway.turn_on(scope=("/echo/checkout/",))
    try:
        statuses = {
            target: raw_status(parser_gateway, target)
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
        parser_gateway.turn_off()
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


@pytest.mark.parametrize("stored", ["/api/", 5, {"a": 1}, ["/api/", 5], [None]])
def test_a_stored_scope_that_is_not_a_list_of_text_is_refused(stored: object) -> None:
    with pytest.raises(StateError) as refused:
        MaintenanceState.from_item({"enabled": True, "scope": stored})
    assert refused.value.field == "scope"


def test_stored_scope_text_is_repaired_like_other_text() -> None:
    state = MaintenanceState.from_item({"enabled": True, "scope": ["/api/\ud800/"]})
    assert state.scope == ("/api/\ufffd/",)
    assert json.dumps(state.describe(0)).encode("utf-8")


@pytest.mark.parametrize(
    "scope",
    [["/api/../admin/"], ["/api/./x"], ["/api/\x00/"], ["/api/\x1b[2J"], ["/api?x=1"], [""], ["/"], "/api/", [5], ["/a"] * 17],
)
def test_a_scope_written_with_a_dot_segment_control_character_or_wrong_type_is_refused(scope: object) -> None:
    with pytest.raises(StateError) as refused:
        parse_scope(scope)
    assert refused.value.field == "scope"
