"""The maintenance answer over real HTTP: status, headers, negotiated bodies, CORS, preflights."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import FRONT_ORIGIN, OTHER_ORIGIN, Gateway

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ANGULAR_ACCEPT = "application/json, text/plain, */*"


def test_maintenance_answer_is_a_readable_503(raw_gateway: Gateway) -> None:
    state = raw_gateway.turn_on(message="Upgrading the database", ends_at=time.time() + 1800)
    with raw_gateway.client() as client:
        response = client.get("/echo", headers={"Origin": FRONT_ORIGIN, "Accept": ANGULAR_ACCEPT})
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-maintenance-mode"] == "full"
    assert 1790 <= int(response.headers["retry-after"]) <= 1800
    body = response.json()
    assert body["error"] == "maintenance"
    assert body["message"] == "Upgrading the database"
    assert body["mode"] == "full"
    assert body["retry_after"] == int(response.headers["retry-after"])
    assert body["ends_at"] == state.to_item()["ends_at"]
    assert response.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = {item.strip().lower() for item in response.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "x-maintenance-mode"} <= exposed
    assert "origin" in response.headers["vary"].lower()


def test_retry_after_uses_the_default_without_an_end(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    with raw_gateway.client() as client:
        response = client.get("/echo")
    assert response.headers["retry-after"] == "300"
    assert response.json()["ends_at"] is None
    assert response.json()["message"] == "The site is down for maintenance. Please try again later."


def test_retry_after_counts_down_to_the_end(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(ends_at=time.time() + 60)
    with raw_gateway.client() as client:
        first = int(client.get("/echo").headers["retry-after"])
        time.sleep(2.1)
        second = int(client.get("/echo").headers["retry-after"])
    assert first - second >= 2


@pytest.mark.parametrize(
    ("accept", "extra", "expected_type"),
    [
        (ANGULAR_ACCEPT, {}, "application/json"),
        ("*/*", {}, "application/json"),
        (None, {}, "application/json"),
        (BROWSER_ACCEPT, {}, "text/html; charset=utf-8"),
        (BROWSER_ACCEPT, {"X-Requested-With": "XMLHttpRequest"}, "application/json"),
        ("text/plain", {}, "text/plain; charset=utf-8"),
        ("text/html;q=0.5, application/json", {}, "application/json"),
        ("application/json;q=0.1, text/html", {}, "text/html; charset=utf-8"),
    ],
)
def test_body_is_negotiated_from_accept(raw_gateway: Gateway, accept, extra, expected_type) -> None:
    raw_gateway.turn_on(message="Back <soon>")
    headers = dict(extra)
    if accept is not None:
        headers["Accept"] = accept
    with raw_gateway.client() as client:
        request = client.build_request("GET", "/echo", headers=headers)
        if accept is None:
            del request.headers["accept"]
        response = client.send(request)
    assert response.status_code == 503
    assert response.headers["content-type"] == expected_type
    if expected_type.startswith("text/html"):
        assert "Back &lt;soon&gt;" in response.text  # escaped, never raw markup
        assert "<soon>" not in response.text
    elif expected_type.startswith("text/plain"):
        assert response.text == "Service unavailable: Back <soon>\n"
    else:
        assert response.json()["message"] == "Back <soon>"


def test_a_disallowed_origin_gets_the_503_without_cors(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    with raw_gateway.client() as client:
        response = client.get("/echo", headers={"Origin": OTHER_ORIGIN})
    assert response.status_code == 503
    assert not [name for name in response.headers if name.startswith("access-control-")]


def test_preflight_in_maintenance_is_answered_by_the_gateway(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    preflight = {
        "Origin": FRONT_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-client-version",
    }
    with raw_gateway.client() as client:
        allowed = client.options("/echo", headers=preflight)
        refused = client.options("/echo", headers={**preflight, "Origin": OTHER_ORIGIN})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-client-version" in allowed.headers["access-control-allow-headers"]
    assert allowed.headers["access-control-max-age"] == "86400"
    assert refused.status_code == 503
    assert "access-control-allow-origin" not in refused.headers


def test_preflight_outside_maintenance_goes_to_the_upstream(raw_gateway: Gateway) -> None:
    with raw_gateway.client() as client:
        response = client.options(
            "/echo", headers={"Origin": FRONT_ORIGIN, "Access-Control-Request-Method": "POST"}
        )
    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"  # the upstream's echo: it reached the upstream


def test_maintenance_off_restores_forwarding(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    with raw_gateway.client() as client:
        assert client.get("/echo").status_code == 503
        raw_gateway.turn_off()
        assert client.get("/echo").status_code == 200


def test_scheduled_window_starts_and_ends_by_itself(raw_gateway: Gateway) -> None:
    start = time.time() + 1.0
    raw_gateway.turn_on(starts_at=start, ends_at=start + 1.0)
    with raw_gateway.client() as client:
        assert client.get("/echo").status_code == 200
        health = raw_gateway.health()
        assert health["upcoming"] is True and health["maintenance"] is False
        time.sleep(max(0.0, start - time.time()) + 0.2)
        assert client.get("/echo").status_code == 503
        time.sleep(max(0.0, start + 1.0 - time.time()) + 0.2)
        assert client.get("/echo").status_code == 200


def test_read_only_mode_lets_safe_methods_through(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(mode="read-only")
    with raw_gateway.client() as client:
        assert client.get("/echo").status_code == 200
        assert client.head("/echo").status_code == 200
        write = client.post("/echo", json={"a": 1})
    assert write.status_code == 503
    assert write.headers["x-maintenance-mode"] == "read-only"
    assert "read-only" in write.json()["message"]


def test_bypass_paths_reach_the_upstream_in_maintenance(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    with raw_gateway.client() as client:
        assert client.post("/webhooks/payments", content=b"{}").status_code == 200
        assert client.get("/webhooksX").status_code == 503


def test_custom_maintenance_page(log_dir, raw_upstream: str, tmp_path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>Custom: {{ message }}</p><p>{{ ends_at }}</p></body></html>")
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_MAINTENANCE_PAGE": str(page)}, name="gateway-page")
    try:
        gateway.turn_on(message="Nightly upgrade")
        response = httpx.get(f"{gateway.url}/", headers={"Accept": "text/html"})
    finally:
        gateway.stop()
    assert response.status_code == 503
    assert response.text == "<html><body><p>Custom: Nightly upgrade</p><p></p></body></html>"


def test_allow_all_origins_without_credentials_answers_star(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_CORS_ALLOW_ALL_ORIGINS": "true"}, name="gateway-star")
    try:
        gateway.turn_on()
        response = httpx.get(f"{gateway.url}/", headers={"Origin": OTHER_ORIGIN})
    finally:
        gateway.stop()
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_fail_closed_answers_503_until_the_store_is_read(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(
        log_dir, raw_upstream, {"GATEWAY_FAIL_MODE": "closed"}, name="gateway-fail-closed", state_text="{ not json"
    )
    try:
        closed = httpx.get(f"{gateway.url}/echo")
        ready = httpx.get(f"{gateway.url}/_gateway/ready")
        health = gateway.health()
        gateway.state_path.unlink()
        gateway.turn_off()  # a good state (version 1); the next refresh reads it
        opened = httpx.get(f"{gateway.url}/echo")
        ready_after = httpx.get(f"{gateway.url}/_gateway/ready")
    finally:
        gateway.stop()
    assert closed.status_code == 503
    assert ready.status_code == 503
    assert health["store"]["status"] == "unread"
    assert "not valid JSON" in health["store"]["error"]
    assert opened.status_code == 200
    assert ready_after.status_code == 200


def test_fail_open_serves_until_the_store_is_read(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-fail-open", state_text="[]")
    try:
        response = httpx.get(f"{gateway.url}/echo")
        ready = httpx.get(f"{gateway.url}/_gateway/ready")
    finally:
        gateway.stop()
    assert response.status_code == 200
    assert ready.status_code == 200


def test_placeholders_inside_the_message_are_shown_as_written(raw_gateway: Gateway) -> None:
    """The page is filled in one pass: text in the message is never filled in turn."""
    raw_gateway.turn_on(message="Back in {{ retry_after }} s, {{ends_at}} {{ message }}", ends_at=time.time() + 600)
    response = httpx.get(f"{raw_gateway.url}/", headers={"Accept": "text/html"})
    assert response.status_code == 503
    assert "Back in {{ retry_after }} s, {{ends_at}} {{ message }}" in response.text
    assert "Expected back at" in response.text  # the template's own placeholders are filled
