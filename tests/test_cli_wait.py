"""``on``/``off``: when the gateways serve the change, and ``--wait`` for it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support import SUPPORT_ADMIN_TOKEN, Gateway, cli, free_port

# Slow enough that a request sent right after the store is written would still be forwarded.
REFRESH_INTERVAL = "1.5"


def test_on_and_off_say_when_the_gateways_follow(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", store=store, env={"GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL})
    assert on.returncode == 0, on.stderr
    assert "gateways follow within 1.5 s (GATEWAY_REFRESH_INTERVAL)" in on.stdout
    off = cli("off", store=store)
    assert "gateways follow within 2 s (GATEWAY_REFRESH_INTERVAL)" in off.stdout


def test_wait_returns_once_the_local_gateway_serves_the_change(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL}, name="gateway-cli-wait")
    local = {"GATEWAY_PORT": str(gateway.port), "GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL}
    try:
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
        # With a token: the health details name the version served.
        started = time.monotonic()
        on = cli("on", "--wait", store=gateway.state_path, env={**local, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN})
        waited = time.monotonic() - started
        during = httpx.get(f"{gateway.url}/echo")
        # Without one: the public health's maintenance flag.
        off = cli("off", "--wait", "10", store=gateway.state_path, env=local)
        after = httpx.get(f"{gateway.url}/echo")
        upcoming = cli("on", "--from", "+1h", "--wait", store=gateway.state_path, env=local)
        warned = httpx.get(f"{gateway.url}/_gateway/health").json()
    finally:
        gateway.stop()
    assert on.returncode == 0, on.stderr
    assert "gateways serve it now" in on.stdout, on.stdout
    assert during.status_code == 503
    assert waited < 10
    assert off.returncode == 0, off.stderr
    assert after.status_code == 200
    assert upcoming.returncode == 0, upcoming.stderr
    assert warned["upcoming"] is True


def test_wait_through_the_url_polls_the_gateway_health(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL}, name="gateway-cli-wait-url")
    remote = {"GATEWAY_ADMIN_URL": gateway.url, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN}
    try:
        on = cli("on", "--wait", "10", store=gateway.state_path, env=remote)
        during = httpx.get(f"{gateway.url}/echo")
    finally:
        gateway.stop()
    assert on.returncode == 0, on.stderr
    assert "gateways serve it now" in on.stdout
    assert during.status_code == 503


def test_wait_that_times_out_is_a_failure(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    nobody = {"GATEWAY_PORT": str(free_port())}
    started = time.monotonic()
    result = cli("on", "--wait", "1", store=store, env=nobody)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert "did not serve" in result.stderr and "within 1 s" in result.stderr, result.stderr
    assert "maintenance: on" in result.stdout  # the change itself was made
