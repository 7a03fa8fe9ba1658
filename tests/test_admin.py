"""The admin API, authentication, rate limiting and bypass, over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.bypass import COOKIE_NAME, BypassSecret
from tests.support import BIN, Gateway, base_env, free_port

OLD_TOKEN = "old-token-0123456789abcdef"
NEW_TOKEN = "new-token-fedcba9876543210"
BYPASS = "let-the-team-in-0123456789"


@pytest.fixture(scope="module")
def admin_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    gateway = Gateway(
        log_dir,
        raw_upstream,
        {
            "GATEWAY_ADMIN_TOKENS": f"ci-old:{OLD_TOKEN},ci-new:{NEW_TOKEN}",
            # A slow refresh: a change made through this gateway must apply here at once anyway.
            "GATEWAY_REFRESH_INTERVAL": "30",
            "GATEWAY_BYPASS_SECRET": BYPASS,
            "GATEWAY_BYPASS_IPS": "198.51.100.0/24",
            "GATEWAY_ADMIN_FAILURE_LIMIT": "5",
        },
        name="gateway-admin",
    )
    yield gateway
    gateway.stop()


@pytest.fixture
def admin(admin_gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{admin_gateway.url}/_gateway", headers={"Authorization": f"Bearer {NEW_TOKEN}"}, timeout=10) as client:
        yield client
        current = client.get("/maintenance").json()
        if current["enabled"]:
            client.delete("/maintenance")


def test_put_applies_at_once_with_etag(admin: httpx.Client, admin_gateway: Gateway) -> None:
    before = admin.get("/maintenance")
    response = admin.put("/maintenance", json={"message": "Deploying", "duration_seconds": 600, "reason": "release 9"})
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["enabled"] is True and state["active"] is True and state["message"] == "Deploying"
    assert response.headers["etag"] == f'"{state["version"]}"'
    assert state["version"] == before.json()["version"] + 1
    assert state["updated_by"] == "ci-new via admin API"
    # No refresh needed (the interval is 30 s): the gateway that took the write applies it.
    answer = httpx.get(f"{admin_gateway.url}/echo")
    assert answer.status_code == 503 and answer.json()["message"] == "Deploying"
    assert 590 <= int(answer.headers["retry-after"]) <= 600


def test_if_match(admin: httpx.Client) -> None:
    version = admin.get("/maintenance").json()["version"]
    stale = admin.put("/maintenance", json={"message": "x"}, headers={"If-Match": f'"{version + 5}"'})
    assert stale.status_code == 412 and stale.json()["error"] == "version_conflict"
    garbage = admin.put("/maintenance", json={"message": "x"}, headers={"If-Match": "banana"})
    assert garbage.status_code == 412
    good = admin.put("/maintenance", json={"message": "x"}, headers={"If-Match": f'"{version}"'})
    assert good.status_code == 200 and good.json()["version"] == version + 1
    off = admin.delete("/maintenance", headers={"If-Match": good.headers["etag"]}, params={"reason": "done"})
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["reason"] == "done"


def test_scheduled_window_shows_upcoming(admin: httpx.Client, admin_gateway: Gateway) -> None:
    start = time.time() + 1.5
    starts_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) + f".{int(start % 1 * 1000):03d}Z"
    response = admin.put("/maintenance", json={"starts_at": starts_at, "duration_seconds": 1.5})
    assert response.json()["status"] == "upcoming"
    assert admin_gateway.health()["upcoming"] is True
    assert httpx.get(f"{admin_gateway.url}/echo").status_code == 200
    time.sleep(max(0, start - time.time()) + 0.1)
    assert httpx.get(f"{admin_gateway.url}/echo").status_code == 503
    time.sleep(1.6)
    assert httpx.get(f"{admin_gateway.url}/echo").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"colour": "red"}, 400, "colour"),
        ({"enabled": "yes"}, 400, "enabled"),
        ({"mode": "partial"}, 400, "mode"),
        ({"message": 5}, 400, "message"),
        ({"message": "m" * 2001}, 400, "message"),
        ({"ends_at": "2001-01-01T00:00:00Z"}, 400, "ends_at"),
        ({"starts_at": "2099-01-02T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}, 400, "ends_at"),
        ({"ends_at": "2099-01-01T00:00:00"}, 400, "ends_at"),
        ({"duration_seconds": -5}, 400, "duration_seconds"),
        ({"duration_seconds": True}, 400, "duration_seconds"),
        ({"duration_seconds": 60, "ends_at": "2099-01-01T00:00:00Z"}, 400, "duration_seconds"),
        ({"reason": ["a"]}, 400, "reason"),
    ],
)
def test_invalid_bodies_name_the_field(admin: httpx.Client, body: dict, status: int, field: str) -> None:
    version = admin.get("/maintenance").json()["version"]
    response = admin.put("/maintenance", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert admin.get("/maintenance").json()["version"] == version  # nothing written


def test_malformed_requests(admin: httpx.Client) -> None:
    not_json = admin.put("/maintenance", content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    array = admin.put("/maintenance", json=[1, 2])
    assert array.status_code == 400
    wrong_type = admin.put("/maintenance", content=b"enabled=true", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    huge = admin.put("/maintenance", content=b"{" + b" " * 20_000 + b"}", headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    deep = admin.put("/maintenance", content=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 413
    nested = admin.put("/maintenance", content=b"[" * 5000 + b"]" * 5000, headers={"Content-Type": "application/json"})
    assert nested.status_code == 400
    method = admin.post("/maintenance", json={})
    assert method.status_code == 405 and method.json()["error"] == "method_not_allowed"
    bad_limit = admin.get("/maintenance/history", params={"limit": "all"})
    assert bad_limit.status_code == 400 and bad_limit.json()["field"] == "limit"


def raw_status(gateway: Gateway, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(request)
        reply = sock.recv(4096)
    return int(reply.split(b" ", 2)[1])


def test_authentication(admin_gateway: Gateway) -> None:
    url = f"{admin_gateway.url}/_gateway/maintenance"
    client_ip = {"X-Forwarded-For": "192.0.2.10"}  # its own failure budget
    missing = httpx.get(url, headers=client_ip)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(url, headers={**client_ip, "Authorization": "Bearer not-the-token"}).status_code == 401
    assert httpx.get(url, headers={**client_ip, "Authorization": f"Basic {NEW_TOKEN}"}).status_code == 401
    non_ascii = b"GET /_gateway/maintenance HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.11\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
    assert raw_status(admin_gateway, non_ascii) == 401
    oversized = httpx.get(url, headers={"X-Forwarded-For": "192.0.2.12", "Authorization": "Bearer " + "a" * 4000})
    assert oversized.status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {OLD_TOKEN}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"bearer {NEW_TOKEN}"}).status_code == 200


def test_failed_attempts_are_limited_per_client(admin_gateway: Gateway) -> None:
    url = f"{admin_gateway.url}/_gateway/maintenance"
    attacker = {"X-Forwarded-For": "203.0.113.66", "Authorization": "Bearer guess"}
    statuses = [httpx.get(url, headers=attacker).status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    limited = httpx.get(url, headers={**attacker, "Authorization": f"Bearer {NEW_TOKEN}"})
    assert limited.status_code == 429  # even the right token, until the window passes
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    other = httpx.get(url, headers={"X-Forwarded-For": "203.0.113.67", "Authorization": f"Bearer {NEW_TOKEN}"})
    assert other.status_code == 200


def test_admin_api_off_without_tokens(raw_gateway: Gateway) -> None:
    response = httpx.put(f"{raw_gateway.url}/_gateway/maintenance", json={"enabled": True})
    assert response.status_code == 404
    assert not raw_gateway.store.read().enabled


def test_token_rotation_and_audit_lines(log_dir: Path, raw_upstream: str) -> None:
    env = {"GATEWAY_ADMIN_TOKENS": f"old:{OLD_TOKEN},new:{NEW_TOKEN}", "GATEWAY_LOG_FORMAT": "json"}
    first = Gateway(log_dir, raw_upstream, env, name="gateway-rotation-1")
    try:
        for token in (OLD_TOKEN, NEW_TOKEN):
            response = httpx.put(f"{first.url}/_gateway/maintenance", json={"message": "m"}, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
        log = first.server.log()
    finally:
        first.stop()
    audit = [json.loads(line) for line in log.splitlines() if "maintenance changed through the admin API" in line]
    assert [(a["token_name"], a["client"], a["event"]) for a in audit] == [("old", "127.0.0.1", "admin_change")] * 1 + [
        ("new", "127.0.0.1", "admin_change")
    ]
    assert audit[0]["old"]["version"] == 0 and audit[0]["new"]["version"] == 1 and audit[1]["new"]["version"] == 2
    # The old token is retired: the next deployment lists only the new one.
    second = Gateway(log_dir, raw_upstream, {"GATEWAY_ADMIN_TOKENS": f"new:{NEW_TOKEN}", "GATEWAY_STORE": first.env["GATEWAY_STORE"]},
                     name="gateway-rotation-2")
    try:
        old = httpx.get(f"{second.url}/_gateway/maintenance", headers={"Authorization": f"Bearer {OLD_TOKEN}"})
        new = httpx.get(f"{second.url}/_gateway/maintenance", headers={"Authorization": f"Bearer {NEW_TOKEN}"})
    finally:
        second.stop()
    assert old.status_code == 401 and new.status_code == 200


def test_no_token_or_secret_reaches_the_logs(log_dir: Path, raw_upstream: str, tmp_path: Path) -> None:
    wrong = "wrong-token-WRONGTOKENTEXT-123"
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store wants a directory")
    gateway = Gateway(
        log_dir,
        raw_upstream,
        {
            "GATEWAY_ADMIN_TOKENS": f"ops:{NEW_TOKEN}",
            "GATEWAY_BYPASS_SECRET": BYPASS,
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_ACCESS_LOG": "true",
            "GATEWAY_STORE": f"file:{blocked}/state.json",  # reads and writes fail: the error paths run
        },
        name="gateway-secrets",
    )
    try:
        auth = {"Authorization": f"Bearer {NEW_TOKEN}"}
        assert httpx.put(f"{gateway.url}/_gateway/maintenance", json={"message": "m"}, headers=auth).status_code == 503
        assert httpx.get(f"{gateway.url}/_gateway/maintenance", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        assert httpx.post(f"{gateway.url}/_gateway/bypass", headers={"X-Maintenance-Bypass": BYPASS}).status_code == 200
        assert httpx.post(f"{gateway.url}/_gateway/bypass", json={"secret": wrong}).status_code == 403
        httpx.get(f"{gateway.url}/echo", headers={"X-Maintenance-Bypass": BYPASS, **auth})
        time.sleep(0.3)
    finally:
        gateway.stop()
    log = gateway.server.log()
    assert "store" in log  # the failures were logged...
    for secret in (NEW_TOKEN, wrong, BYPASS):
        assert secret not in log  # ...without any token or secret


def test_check_config_masks_secrets() -> None:
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "check-config"],
        env={**base_env(), "GATEWAY_ADMIN_TOKENS": f"ops:{NEW_TOKEN}", "GATEWAY_BYPASS_SECRET": BYPASS},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "ops:****" in result.stdout
    assert NEW_TOKEN not in result.stdout and BYPASS not in result.stdout
    bad = subprocess.run(
        [str(BIN / "maintenance-gateway"), "check-config"],
        env={**base_env(), "GATEWAY_BYPASS_SECRET": "short"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 78 and "GATEWAY_BYPASS_SECRET='****'" in bad.stderr and "'short'" not in bad.stderr


def test_bypass_header_and_cookie(admin: httpx.Client, admin_gateway: Gateway) -> None:
    admin.put("/maintenance", json={"message": "closed"})
    site = admin_gateway.url
    assert httpx.get(f"{site}/echo").status_code == 503
    assert httpx.get(f"{site}/echo", headers={"X-Maintenance-Bypass": BYPASS}).status_code == 200
    assert httpx.get(f"{site}/echo", headers={"X-Maintenance-Bypass": BYPASS + "x"}).status_code == 503

    login = httpx.post(f"{site}/_gateway/bypass", json={"secret": BYPASS})
    assert login.status_code == 200
    set_cookie = login.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in set_cookie and "Max-Age=28800" in set_cookie
    cookie = login.cookies[COOKIE_NAME]
    assert httpx.get(f"{site}/echo", cookies={COOKIE_NAME: cookie}).status_code == 200
    expires, signature = cookie.split(".")
    tampered = f"{int(expires) + 3600}.{signature}"
    assert httpx.get(f"{site}/echo", cookies={COOKIE_NAME: tampered}).status_code == 503
    expired = BypassSecret(BYPASS, 60).make_cookie_value(now=time.time() - 3600)
    assert httpx.get(f"{site}/echo", cookies={COOKIE_NAME: expired}).status_code == 503
    assert httpx.post(f"{site}/_gateway/bypass", json={"secret": "nope"}, headers={"X-Forwarded-For": "192.0.2.50"}).status_code == 403


def test_bypass_form_for_a_browser(admin: httpx.Client, admin_gateway: Gateway) -> None:
    admin.put("/maintenance", json={})
    site = admin_gateway.url
    form = httpx.get(f"{site}/_gateway/bypass")
    assert form.status_code == 200 and "<form" in form.text
    posted = httpx.post(f"{site}/_gateway/bypass", data={"secret": BYPASS, "next": "/echo?x=1"})
    assert posted.status_code == 303 and posted.headers["location"] == "/echo?x=1"
    escaped = httpx.post(f"{site}/_gateway/bypass", data={"secret": BYPASS, "next": "//evil.example/"})
    assert escaped.headers["location"] == "/"
    secure = httpx.post(f"{site}/_gateway/bypass", data={"secret": BYPASS}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in secure.headers["set-cookie"]
    logout = httpx.delete(f"{site}/_gateway/bypass")
    assert logout.status_code == 204 and f'{COOKIE_NAME}=""' in logout.headers["set-cookie"]


def test_bypass_ips_follow_trusted_forwarding(admin: httpx.Client, admin_gateway: Gateway) -> None:
    admin.put("/maintenance", json={})
    site = f"{admin_gateway.url}/echo"
    assert httpx.get(site, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    # The rightmost untrusted hop is the client: a forged entry further left does not count.
    assert httpx.get(site, headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}).status_code == 503
    assert httpx.get(site).status_code == 503


def test_bypass_and_admin_off_by_default(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    assert httpx.get(f"{raw_gateway.url}/echo", headers={"X-Maintenance-Bypass": "anything-at-all-123"}).status_code == 503
    assert httpx.get(f"{raw_gateway.url}/_gateway/bypass").status_code == 404
    assert httpx.post(f"{raw_gateway.url}/_gateway/bypass", json={"secret": "x"}).status_code == 404


def test_history_through_the_api(admin: httpx.Client) -> None:
    admin.put("/maintenance", json={"reason": "history check"})
    admin.delete("/maintenance", params={"reason": "history done"})
    changes = admin.get("/maintenance/history", params={"limit": 2}).json()["changes"]
    assert [c["reason"] for c in changes] == ["history done", "history check"]
    assert changes[0]["old"]["enabled"] is True and changes[0]["new"]["enabled"] is False


def test_openapi_document_matches_the_routes(admin_gateway: Gateway) -> None:
    served = httpx.get(f"{admin_gateway.url}/_gateway/openapi.json")
    assert served.status_code == 200
    document = served.json()
    kept = json.loads((Path(__file__).parent.parent / "gateway" / "openapi.json").read_text())
    assert document == kept
    from openapi_spec_validator import validate

    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    from gateway.admin import build_admin_app
    from gateway.app import Gateway as App
    from gateway.settings import load_settings
    from gateway.stores.memory import MemoryStore

    app = App(load_settings({}), store=MemoryStore())
    routed = {
        (route.path, method)  # type: ignore[attr-defined]
        for route in build_admin_app(app).routes
        for method in route.methods - {"HEAD"}  # type: ignore[attr-defined]
    }
    assert documented == routed


def remote_cli(*args: str, url: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args],
        env={**base_env(), "GATEWAY_ADMIN_URL": url, "GATEWAY_ADMIN_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_through_a_running_gateway(admin_gateway: Gateway) -> None:
    url = admin_gateway.url
    on = remote_cli("on", "--message", "Via CLI", "--for", "20m", "--mode", "read-only", url=url, token=NEW_TOKEN)
    assert on.returncode == 0, on.stderr
    assert "maintenance: on (read-only)" in on.stdout
    assert httpx.post(f"{url}/echo", content=b"x").status_code == 503
    assert httpx.get(f"{url}/echo").status_code == 200
    status = remote_cli("status", "--json", url=url, token=NEW_TOKEN)
    assert json.loads(status.stdout)["message"] == "Via CLI"
    history = remote_cli("history", "--limit", "1", url=url, token=NEW_TOKEN)
    assert history.returncode == 0 and "off -> on (read-only)" in history.stdout
    off = remote_cli("off", url=url, token=NEW_TOKEN)
    assert off.returncode == 0 and "maintenance: off" in off.stdout

    refused = remote_cli("status", url=url, token="not-a-valid-token-at-all")
    assert refused.returncode == 5 and "refused" in refused.stderr
    assert "not-a-valid-token-at-all" not in refused.stderr
    unreachable = remote_cli("status", url=f"http://127.0.0.1:{free_port()}", token=NEW_TOKEN)
    assert unreachable.returncode == 6 and "cannot reach the gateway" in unreachable.stderr
    invalid = remote_cli("on", "--until", "2001-01-01T00:00:00Z", url=url, token=NEW_TOKEN)
    assert invalid.returncode == 2


def test_changing_the_secret_revokes_every_cookie() -> None:
    cookie = BypassSecret(BYPASS, 3600).make_cookie_value().encode()
    assert BypassSecret(BYPASS, 3600).cookie_valid(cookie)  # any task with the same secret accepts it
    assert not BypassSecret(BYPASS + "-rotated", 3600).cookie_valid(cookie)
