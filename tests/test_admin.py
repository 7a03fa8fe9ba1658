"""The admin API, authentication, rate limiting and bypass, over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.bypass import COOKIE_NAME, BypassSecret
from tests.raw_http import exchange_until_close
from tests.support import AWS_ENV, BIN, Gateway, base_env, free_port

PUBLIC_HEALTH_KEYS = {"status", "maintenance", "mode", "upcoming", "store"}
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
        # A window must outlast the millisecond its times are kept to.
        ({"duration_seconds": 0.0001}, 400, "duration_seconds"),
        ({"duration_seconds": 0.999}, 400, "duration_seconds"),
        # Turning off takes a reason only: a message or a window would be dropped unseen.
        ({"enabled": False, "message": "lost"}, 400, "message"),
        ({"enabled": False, "ends_at": "2099-01-01T00:00:00Z"}, 400, "ends_at"),
        ({"enabled": False, "scope": ["/echo/"]}, 400, "scope"),
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


def test_admin_api_off_without_tokens(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_ADMIN_TOKENS": ""}, name="gateway-no-tokens")
    try:
        response = httpx.put(f"{gateway.url}/_gateway/maintenance", json={"enabled": True})
        metrics = httpx.get(f"{gateway.url}/_gateway/metrics")
        health = httpx.get(f"{gateway.url}/_gateway/health", headers={"Authorization": "Bearer anything-at-all-123"})
    finally:
        gateway.stop()
    assert response.status_code == 404
    assert not gateway.store.read().enabled
    assert metrics.status_code == 404
    # With no tokens there are no details to unlock: health stays the public answer.
    assert health.status_code == 200 and set(health.json()) == PUBLIC_HEALTH_KEYS


def test_token_rotation_and_audit_lines(log_dir: Path, raw_upstream: str) -> None:
    env = {"GATEWAY_ADMIN_TOKENS": f"old:{OLD_TOKEN},new:{NEW_TOKEN}", "GATEWAY_LOG_FORMAT": "json"}
    first = Gateway(log_dir, raw_upstream, env, name="gateway-rotation-1")
    try:
        for token in (OLD_TOKEN, NEW_TOKEN):
            response = httpx.put(f"{first.url}/_gateway/maintenance", json={"message": f"m {token[:3]}"}, headers={"Authorization": f"Bearer {token}"})
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
    kept = json.loads((Path(__file__).parent.parent / "gateway" / "admin" / "openapi.json").read_text())
    assert document == kept
    from openapi_spec_validator import validate

    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    from gateway.app import Gateway as App
    from gateway.settings import load_settings
    from gateway.stores.memory import MemoryStore

    app = App(load_settings({}), store=MemoryStore())
    # One mount under the prefix holds every route.
    [mount] = app.admin.routes
    routed = {
        (mount.path + route.path, method)  # type: ignore[attr-defined]
        for route in mount.routes  # type: ignore[attr-defined]
        for method in route.methods - {"HEAD"}  # type: ignore[attr-defined]
    }
    # The status feed is answered by the gateway before the admin routes (raw ASGI).
    assert documented == routed | {("/_gateway/status", "GET")}
    # What a change did, as the CLI reads it: in the answer of PUT, PATCH and DELETE.
    for method in ("put", "patch", "delete"):
        answer = document["paths"]["/_gateway/maintenance"][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/ChangedState"}
    changed = document["components"]["schemas"]["ChangedState"]
    assert {"changed", "replaced", "previous"} <= set(changed["allOf"][1]["required"])


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



def raw_reply(gateway: Gateway, request: bytes) -> bytes:
    return exchange_until_close(gateway.port, request)


def raw_put(gateway: Gateway, body: bytes) -> httpx.Response:
    """A PUT whose JSON is sent exactly as given (escapes such as \ud800 included)."""
    return httpx.put(
        f"{gateway.url}/_gateway/maintenance",
        content=body,
        headers={"Authorization": f"Bearer {NEW_TOKEN}", "Content-Type": "application/json"},
    )


def assert_everything_renders(gateway: Gateway) -> None:
    """Health (public and detailed), the three 503 variants and the admin GET all answer."""
    public = httpx.get(f"{gateway.url}/_gateway/health")
    assert public.status_code == 200, public.text
    detailed = httpx.get(f"{gateway.url}/_gateway/health", headers={"Authorization": f"Bearer {NEW_TOKEN}"})
    assert detailed.status_code == 200, detailed.text
    assert httpx.get(f"{gateway.url}/_gateway/maintenance", headers={"Authorization": f"Bearer {NEW_TOKEN}"}).status_code == 200
    for accept in ("application/json", "text/html", "text/plain"):
        answer = httpx.get(f"{gateway.url}/echo", headers={"Accept": accept})
        assert answer.status_code in (200, 503), (accept, answer.text)
        assert answer.content.decode("utf-8") is not None


@pytest.mark.parametrize(
    ("field", "json_text", "ok"),
    [
        ("message", r'"\ud800"', False),  # a lone surrogate: no UTF-8 form exists
        ("reason", r'"why \udfff"', False),
        ("message", r'"nul \u0000 inside"', False),
        ("message", r'"\u001b[2J clears a terminal"', False),
        ("message", r'"C1 \u0085 control"', False),
        ("reason", r'"two\nlines"', False),  # a reason is one line of the audit record
        ("message", r'"two\nlines\tand a tab"', True),
        ("message", r'"\u202eRTL override and \u200f marks are text"', True),
        ("message", r'"\ud83d\ude00 a pair is one character"', True),
    ],
)
def test_text_that_cannot_be_shown_is_refused_naming_the_field(
    admin: httpx.Client, admin_gateway: Gateway, field: str, json_text: str, ok: bool
) -> None:
    version = admin.get("/maintenance").json()["version"]
    response = raw_put(admin_gateway, f'{{"{field}": {json_text}}}'.encode())
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
        assert admin.get("/maintenance").json()["version"] == version  # nothing written
    assert_everything_renders(admin_gateway)
    assert "Traceback" not in admin_gateway.server.log()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"duration_seconds": 1' + b"0" * 4000 + b"}", "duration_seconds"),
        (b'{"duration_seconds": -1' + b"0" * 4000 + b"}", "duration_seconds"),
        (b'{"duration_seconds": 1e4000}', "duration_seconds"),
        (b'{"duration_seconds": 1e308}', "duration_seconds"),
        (b'{"starts_at": "0001-01-01T00:00:00+01:00"}', "starts_at"),
        (b'{"ends_at": "9999-12-31T23:59:59-14:00"}', "ends_at"),
        (b'{"starts_at": "9999-12-31T23:00:00Z", "duration_seconds": 31536000}', "ends_at"),
        (b'{"ends_at": "' + b"2" * 5000 + b'"}', "ends_at"),
    ],
)
def test_numbers_and_dates_beyond_range_are_refused(admin: httpx.Client, admin_gateway: Gateway, body: bytes, field: str) -> None:
    version = admin.get("/maintenance").json()["version"]
    response = raw_put(admin_gateway, body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert admin.get("/maintenance").json()["version"] == version
    assert_everything_renders(admin_gateway)


def test_headers_and_queries_the_admin_routes_read_never_make_a_500(admin: httpx.Client, admin_gateway: Gateway) -> None:
    auth = f"Authorization: Bearer {NEW_TOKEN}\r\n".encode()

    def status(request: bytes) -> int:
        return int(raw_reply(admin_gateway, request).split(b" ", 2)[1])

    # "²" is a digit to str.isdigit() but not to int(); header bytes arrive as latin-1.
    for if_match in (b'"\xb2"', b'"1\xb9"', b'"' + b"9" * 100 + b'"', b"W/\"\xff\"", b'"-1"'):
        request = b"DELETE /_gateway/maintenance HTTP/1.1\r\nHost: a\r\n" + auth + b"If-Match: " + if_match + b"\r\nConnection: close\r\n\r\n"
        assert status(request) == 412, if_match
    for limit in ("\u00b2", "1" + "0" * 5000, "0", "501", "-1", " 5"):
        response = admin.get("/maintenance/history", params={"limit": limit})
        assert response.status_code == 400 and response.json()["field"] == "limit", limit
    for reason in ("nul\x00", "\x1b[31m", "C1 \x80 control"):
        response = admin.delete("/maintenance", params={"reason": reason})
        assert response.status_code == 400 and response.json()["field"] == "reason", (reason, response.text)
    admin.put("/maintenance", json={})  # on, so that turning it off writes the reason
    too_long = admin.delete("/maintenance", params={"reason": "r" * 10_000})
    assert too_long.status_code == 200 and len(too_long.json()["reason"]) == 500
    for content_type in (b"application/json\xff", b"\xb2", b";;;"):
        request = (
            b"PUT /_gateway/maintenance HTTP/1.1\r\nHost: a\r\n" + auth + b"Content-Type: " + content_type
            + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        assert status(request) == 415
    assert "Traceback" not in admin_gateway.server.log()


def test_wrong_bypass_secrets_of_any_form_count_and_never_make_a_500(admin_gateway: Gateway) -> None:
    url = f"{admin_gateway.url}/_gateway/bypass"
    client = {"X-Forwarded-For": "192.0.2.77"}
    attempts = [
        httpx.post(url, content=b"secret=%E2%82%AC", headers={**client, "Content-Type": "application/x-www-form-urlencoded"}),
        httpx.post(url, content=rb'{"secret": "\ud800"}', headers={**client, "Content-Type": "application/json"}),
        httpx.post(url, content=b"secret=%FF%FE&next=%ED%A0%80", headers={**client, "Content-Type": "application/x-www-form-urlencoded"}),
        httpx.post(url, content=b"{nope", headers={**client, "Content-Type": "application/json"}),
        httpx.post(url, content=b'{"secret": 5}', headers={**client, "Content-Type": "application/json"}),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 400, 400], [r.text for r in attempts]
    # The limit is 5 failures a minute: every one of those counted.
    limited = httpx.post(url, json={"secret": BYPASS}, headers=client)
    assert limited.status_code == 429
    header = b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.78\r\nX-Maintenance-Bypass: \xe2\x82\xac\xff\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert raw_reply(admin_gateway, header).split(b" ", 2)[1] == b"403"
    assert "Traceback" not in admin_gateway.server.log()


def test_the_failure_limit_reads_every_forwarded_for_line(admin_gateway: Gateway) -> None:
    """A trusted proxy that adds its own X-Forwarded-For line: the client is its entry, not the forged first line."""
    url = f"{admin_gateway.url}/_gateway/maintenance"
    statuses = []
    for attempt in range(8):
        headers = [
            ("X-Forwarded-For", f"198.18.0.{attempt}"),  # the client's own, forged and changing
            ("X-Forwarded-For", "203.0.113.201"),  # added by the proxy in front: the real client
            ("Authorization", "Bearer guess-guess-guess"),
        ]
        statuses.append(httpx.get(url, headers=headers).status_code)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    # The IP bypass reads the same address the same way.
    httpx.put(url, json={}, headers={"Authorization": f"Bearer {NEW_TOKEN}"})
    try:
        site = f"{admin_gateway.url}/echo"
        lines = [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-For", "198.51.100.7")]
        assert httpx.get(site, headers=lines).status_code == 200
        forged = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "203.0.113.5")]
        assert httpx.get(site, headers=forged).status_code == 503
    finally:
        httpx.delete(url, headers={"Authorization": f"Bearer {NEW_TOKEN}"})


@pytest.mark.parametrize("path", ["/_gateway", "/_gateway/", "/_gateway/maintenance/", "/_gateway/health/", "/_gateway/bypass/"])
def test_no_redirect_is_built_from_the_host_header(admin_gateway: Gateway, path: str) -> None:
    reply = raw_reply(admin_gateway, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"404", head
    assert b"location" not in head.lower() and b"evil.example" not in reply
    assert json.loads(body)["error"] == "not_found"


def test_health_without_a_token_says_only_what_a_load_balancer_needs(admin: httpx.Client, admin_gateway: Gateway) -> None:
    admin.put("/maintenance", json={"message": "Secret upgrade", "reason": "incident 42", "mode": "read-only"})
    public = httpx.get(f"{admin_gateway.url}/_gateway/health")
    assert public.status_code == 200
    payload = public.json()
    assert set(payload) == PUBLIC_HEALTH_KEYS
    assert payload["maintenance"] is True and payload["mode"] == "read-only" and payload["store"] == {"status": "ok"}
    for secret_detail in ("Secret upgrade", "incident 42", "ci-new", "file:", str(admin_gateway.pid)):
        assert secret_detail not in public.text
    detailed = httpx.get(f"{admin_gateway.url}/_gateway/health", headers={"Authorization": f"Bearer {NEW_TOKEN}"})
    assert detailed.status_code == 200
    details = detailed.json()
    assert details["state"]["reason"] == "incident 42" and details["pid"] == admin_gateway.pid
    assert details["store"]["kind"].startswith("file:") and details["store"]["status"] == "ok"
    wrong = httpx.get(f"{admin_gateway.url}/_gateway/health", headers={"Authorization": "Bearer wrong", "X-Forwarded-For": "192.0.2.91"})
    assert wrong.status_code == 401  # and it counts: health is no free token oracle


def test_metrics_need_a_token(admin_gateway: Gateway) -> None:
    url = f"{admin_gateway.url}/_gateway/metrics"
    assert httpx.get(url, headers={"X-Forwarded-For": "192.0.2.92"}).status_code == 401
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {NEW_TOKEN}"})
    assert scraped.status_code == 200 and "gateway_requests_total" in scraped.text


def test_a_flood_of_readiness_calls_opens_at_most_one_upstream_connection_a_second(log_dir: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    gateway = Gateway(log_dir, f"http://127.0.0.1:{listener.getsockname()[1]}", name="gateway-ready-flood")
    try:
        with httpx.Client(base_url=gateway.url, timeout=5) as client:
            started = time.monotonic()
            statuses = [client.get("/_gateway/ready").status_code for _ in range(60)]
            elapsed = time.monotonic() - started
        time.sleep(0.2)
    finally:
        gateway.stop()
        stop.set()
        acceptor.join()
        for connection in accepted:
            connection.close()
        listener.close()
    assert set(statuses) == {200}
    assert len(accepted) <= elapsed + 2, (len(accepted), elapsed)


def test_log_lines_with_undecodable_text_are_written(log_dir: Path, raw_upstream: str) -> None:
    """A token name read from the environment may hold bytes that are not UTF-8; the audit line stays."""
    for log_format in ("json", "text"):
        env = {"GATEWAY_ADMIN_TOKENS": f"op\udcff:{NEW_TOKEN}", "GATEWAY_LOG_FORMAT": log_format}
        gateway = Gateway(log_dir, raw_upstream, env, name=f"gateway-undecodable-{log_format}")
        try:
            response = httpx.put(f"{gateway.url}/_gateway/maintenance", json={"message": "m"}, headers={"Authorization": f"Bearer {NEW_TOKEN}"})
            assert response.status_code == 200
            assert response.json()["updated_by"] == "op\ufffd via admin API"
            assert_status_cli_works(gateway)
            time.sleep(0.2)
        finally:
            gateway.stop()
        log = gateway.server.log()
        assert "Logging error" not in log and "Traceback" not in log, log
        audit = [line for line in log.splitlines() if "maintenance changed through the admin API" in line]
        assert len(audit) == 1 and "\\udcff" in audit[0], log
        if log_format == "json":
            assert json.loads(audit[0])["token_name"] == "op\udcff"


def assert_status_cli_works(gateway: Gateway) -> None:
    for args in (["status"], ["status", "--json"]):
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), *args],
            env={**base_env(), "GATEWAY_STORE": gateway.env["GATEWAY_STORE"], **AWS_ENV},
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr


def test_raw_header_bytes_get_the_admin_routes_own_answers(log_dir: Path, raw_upstream: str) -> None:
    env = {
        "GATEWAY_ADMIN_TOKENS": f"ops:{NEW_TOKEN}",
        "GATEWAY_BYPASS_SECRET": BYPASS,
        "GATEWAY_ADMIN_FAILURE_LIMIT": "0",
    }
    gateway = Gateway(log_dir, raw_upstream, env, name="gateway-admin-bytes")
    auth = f"Authorization: Bearer {NEW_TOKEN}\r\n".encode()

    def status(request: bytes) -> bytes:
        reply = raw_reply(gateway, request)
        assert b"location:" not in reply.lower() and b"evil.example" not in reply
        return reply.split(b" ", 2)[1]

    try:
        checks = {
            b"DELETE /_gateway/maintenance HTTP/1.1\r\nHost: a\r\n" + auth + b'If-Match: "\xb2"\r\nConnection: close\r\n\r\n': b"412",
            b"GET /_gateway/maintenance/history?limit=%C2%B2 HTTP/1.1\r\nHost: a\r\n" + auth + b"Connection: close\r\n\r\n": b"400",
            b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nX-Maintenance-Bypass: \xe2\x82\xac\xff\r\nContent-Length: 0\r\nConnection: close\r\n\r\n": b"403",
            b"POST /_gateway/bypass HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\xff\r\nContent-Length: 16\r\nConnection: close\r\n\r\nsecret=%E2%82%AC": b"403",
            b"GET /_gateway/maintenance HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n": b"401",
            b"GET /_gateway/health HTTP/1.1\r\nHost: a\r\nAuthorization: \xc2\xb2\r\nConnection: close\r\n\r\n": b"401",
            b"GET /_gateway/maintenance/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n": b"404",
        }
        answers = {request: status(request) for request in checks}
    finally:
        gateway.stop()
    assert answers == checks
    assert "Traceback" not in gateway.server.log()


def test_put_with_a_scope_takes_only_those_paths_down(admin: httpx.Client, admin_gateway: Gateway) -> None:
    response = admin.put("/maintenance", json={"scope": ["/echo/checkout", "/echo/payments/"], "message": "Checkout paused"})
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == ["/echo/checkout/", "/echo/payments/"]
    assert admin.get("/maintenance").json()["scope"] == ["/echo/checkout/", "/echo/payments/"]
    assert httpx.get(f"{admin_gateway.url}/echo/checkout/pay").status_code == 503
    assert httpx.get(f"{admin_gateway.url}/echo/catalogue").status_code == 200
    # null and [] both say "the whole site": the second asks for what the first stored.
    for whole_site, changed in ((None, True), ([], False)):
        again = admin.put("/maintenance", json={"scope": whole_site})
        assert again.status_code == 200 and again.json()["scope"] is None
        assert again.json()["changed"] is changed
        assert httpx.get(f"{admin_gateway.url}/echo/catalogue").status_code == 503
    history = admin.get("/maintenance/history", params={"limit": 2}).json()["changes"]
    assert history[1]["new"]["scope"] == ["/echo/checkout/", "/echo/payments/"] and history[0]["new"]["scope"] is None


@pytest.mark.parametrize(
    "scope",
    ["/echo/", {"path": "/echo/"}, [5], ["/echo/../admin/"], ["/echo/./x/"], ["/echo/\u0000/"], ["/echo/\u001b[2J"],
     ["/echo/\ud800/"], ["/echo?x=1"], [""], ["/"], ["/a" * 101], ["/p"] * 17,
     ["/api/check%6Fut/"], ["/shop/caf%C3%A9/"], ["/echo/ x/"], ["/echo/\t/"], ["/echo/x\u3000/"], ["/echo\\x/"]],
)
def test_a_bad_scope_is_a_400_naming_the_field(admin: httpx.Client, scope: object) -> None:
    version = admin.get("/maintenance").json()["version"]
    # Sent as ASCII JSON: a lone surrogate travels as its \ud800 escape, as a client would send it.
    response = admin.put("/maintenance", content=json.dumps({"scope": scope}).encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "scope"
    assert admin.get("/maintenance").json()["version"] == version  # nothing written


def test_an_encoded_scope_is_refused_with_what_to_send_instead(admin: httpx.Client, admin_gateway: Gateway) -> None:
    refused = admin.put("/maintenance", json={"scope": ["/shop/caf%C3%A9/"]})
    assert refused.status_code == 400 and "decoded" in refused.json()["message"], refused.text
    decoded = admin.put("/maintenance", json={"scope": ["/echo/caf\u00e9/"]})
    assert decoded.status_code == 200, decoded.text
    # The scope covers the path however the client encodes it: the server decodes it first.
    assert httpx.get(f"{admin_gateway.url}/echo/caf%C3%A9/x").status_code == 503
    assert httpx.get(f"{admin_gateway.url}/echo/cafe/x").status_code == 200


def test_the_status_feed_is_public_and_listed(admin_gateway: Gateway) -> None:
    response = httpx.get(f"{admin_gateway.url}/_gateway/status")
    assert response.status_code == 200 and response.json()["maintenance"] is False
    document = httpx.get(f"{admin_gateway.url}/_gateway/openapi.json").json()
    assert set(document["paths"]["/_gateway/status"]) == {"get"}
    assert set(document["components"]["schemas"]["StatusFeed"]["required"]) == set(response.json())


def iso(moment: float) -> str:
    """``moment`` as the ISO-8601 UTC text the API takes, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}Z"


def newest_change(admin: httpx.Client) -> dict:
    return admin.get("/maintenance/history", params={"limit": 1}).json()["changes"][0]


def test_turning_off_while_off_writes_nothing_and_says_so(admin: httpx.Client, admin_gateway: Gateway) -> None:
    admin.put("/maintenance", json={"message": "about to end"})
    first = admin.delete("/maintenance", params={"reason": "done"})
    assert first.status_code == 200 and first.json()["changed"] is True and first.json()["replaced"] is None
    version = first.json()["version"]
    last_record = newest_change(admin)
    again = admin.delete("/maintenance", params={"reason": "done again"})
    assert again.status_code == 200, again.text
    answer = again.json()
    assert answer["changed"] is False and answer["replaced"] is None
    assert answer["enabled"] is False and answer["version"] == version and again.headers["etag"] == f'"{version}"'
    assert answer["reason"] == "done"  # the stored state, untouched
    put_off = admin.put("/maintenance", json={"enabled": False, "reason": "and again"})
    assert put_off.json()["changed"] is False and put_off.json()["version"] == version
    assert newest_change(admin) == last_record
    assert admin_gateway.store.read().version == version


def test_a_second_window_over_an_upcoming_one_says_what_it_replaced(admin: httpx.Client, admin_gateway: Gateway) -> None:
    start = time.time() + 3600
    first = admin.put("/maintenance", json={"starts_at": iso(start), "duration_seconds": 600, "message": "first"})
    assert first.status_code == 200, first.text
    first_state = first.json()
    assert first_state["changed"] is True and first_state["replaced"] is None and first_state["status"] == "upcoming"
    second_body = {"starts_at": iso(start + 3600), "duration_seconds": 600, "message": "second"}
    second = admin.put("/maintenance", json=second_body)
    assert second.status_code == 200, second.text
    second_state = second.json()
    assert second_state["changed"] is True and second_state["version"] == first_state["version"] + 1
    # The operator is told which window the change replaced, described as the state is.
    described = {key: value for key, value in first_state.items() if key not in ("changed", "replaced", "previous")}
    assert second_state["replaced"] == described == second_state["previous"]
    record = newest_change(admin)
    assert record["old"]["message"] == "first" and record["new"]["message"] == "second"
    # The same window asked for again: nothing is written, nothing replaced.
    repeated = admin.put("/maintenance", json=second_body)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["changed"] is False and repeated.json()["replaced"] is None
    assert repeated.json()["version"] == second_state["version"] and repeated.headers["etag"] == f'"{second_state["version"]}"'
    assert newest_change(admin) == record
    assert admin_gateway.store.read().version == second_state["version"]


def test_a_new_message_over_an_active_window_replaces_it_and_the_same_one_does_not(admin: httpx.Client) -> None:
    on = admin.put("/maintenance", json={"message": "Deploying", "reason": "release 10"}).json()
    same = admin.put("/maintenance", json={"message": "Deploying", "reason": "release 10"})
    assert same.json()["changed"] is False and same.json()["version"] == on["version"]
    other = admin.put("/maintenance", json={"message": "Still deploying", "reason": "release 10"}).json()
    assert other["changed"] is True and other["replaced"]["message"] == "Deploying" and other["replaced"]["status"] == "on"
    off = admin.delete("/maintenance").json()
    assert off["changed"] is True and off["replaced"] is None and off["version"] == other["version"] + 1


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def test_a_browser_with_a_wrong_secret_gets_the_form_again(admin: httpx.Client, admin_gateway: Gateway) -> None:
    url = f"{admin_gateway.url}/_gateway/bypass"
    browser = {"accept": BROWSER_ACCEPT, "x-forwarded-for": "192.0.2.70"}
    wrong = httpx.post(url, data={"secret": "not-it"}, headers=browser)
    assert wrong.status_code == 403
    assert wrong.headers["content-type"].startswith("text/html") and wrong.headers["cache-control"] == "no-store"
    assert "<form" in wrong.text and "not the bypass secret" in wrong.text
    # API clients keep the JSON answer.
    api = httpx.post(url, data={"secret": "not-it"}, headers={"x-forwarded-for": "192.0.2.71"})
    assert api.status_code == 403 and api.json()["error"] == "wrong_secret"
    as_json = httpx.post(url, json={"secret": "not-it"}, headers={"x-forwarded-for": "192.0.2.71", "accept": "application/json"})
    assert as_json.status_code == 403 and as_json.json()["error"] == "wrong_secret"
    # Over the failure limit (5): a 429 with Retry-After, as a page for the browser, as JSON for the rest.
    for _ in range(4):
        assert httpx.post(url, data={"secret": "not-it"}, headers=browser).status_code == 403
    locked = httpx.post(url, data={"secret": BYPASS}, headers=browser)
    assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 60
    assert locked.headers["content-type"].startswith("text/html") and "<form" in locked.text and "retry in" in locked.text
    locked_api = httpx.post(url, json={"secret": BYPASS}, headers={"x-forwarded-for": "192.0.2.70"})
    assert locked_api.status_code == 429 and locked_api.json()["error"] == "too_many_attempts"
