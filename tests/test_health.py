"""Health and readiness, the container health check command, and the lifespan's end."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from typing import Any

import httpx
import pytest

from gateway.app import Gateway as App
from gateway.settings import load_settings
from gateway.stores.memory import MemoryStore

from tests.support import BIN, Gateway, base_env, free_port


def test_health_is_200_in_maintenance_with_state_details(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Upgrade")
    response = httpx.get(f"{raw_gateway.url}/_gateway/health", headers=raw_gateway.admin_headers)
    assert response.status_code == 200
    payload = response.json()
    assert payload["maintenance"] is True
    assert payload["store"]["status"] == "ok"
    assert payload["store"]["kind"].startswith("file:")
    assert 0 <= payload["state_age_seconds"] < 2
    assert payload["state"]["message"] == "Upgrade"
    assert response.headers["cache-control"] == "no-store"


def test_health_shows_a_stale_store_and_keeps_the_last_good_state(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Kept through corruption")
    good = raw_gateway.state_path.read_text()
    raw_gateway.state_path.write_text("{ corrupt")
    try:
        time.sleep(1.0)  # several refresh intervals of 0.1 s
        payload = raw_gateway.health()
        answer = httpx.get(f"{raw_gateway.url}/echo")
    finally:
        raw_gateway.state_path.write_text(good)
    assert payload["store"]["status"] == "stale"
    assert payload["store"]["failures"] >= 2
    assert payload["state_age_seconds"] >= 0.5
    assert payload["maintenance"] is True
    assert answer.status_code == 503
    assert answer.json()["message"] == "Kept through corruption"
    log = raw_gateway.server.log()
    # One line per failure streak, however many polls failed.
    assert log.count("store read failed") == 1, log
    deadline = time.monotonic() + 3
    while raw_gateway.health()["store"]["status"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw_gateway.health()["store"]["status"] == "ok"
    assert "store readable again" in raw_gateway.server.log()


def test_an_item_of_an_unknown_version_is_not_misread(raw_gateway: Gateway) -> None:
    state = raw_gateway.turn_on(message="Kept")
    newer = state.to_item() | {"schema": 3, "enabled": False, "version": state.version + 1}
    raw_gateway.state_path.write_text(json.dumps(newer))
    try:
        deadline = time.monotonic() + 3
        while raw_gateway.health()["store"]["status"] != "stale" and time.monotonic() < deadline:
            time.sleep(0.05)
        payload = raw_gateway.health()
        answer = httpx.get(f"{raw_gateway.url}/echo")
    finally:
        raw_gateway.state_path.write_text(json.dumps(state.to_item()))
    assert payload["store"]["status"] == "stale"
    assert "unknown schema version 3" in payload["store"]["error"]
    assert payload["state"]["version"] == state.version and answer.status_code == 503
    failures = [line for line in raw_gateway.server.log().splitlines() if "unknown schema version" in line]
    assert len(failures) == 1, failures


def test_ready_needs_the_upstream(log_dir) -> None:
    gateway = Gateway(log_dir, f"http://127.0.0.1:{free_port()}", name="gateway-ready-no-upstream")
    try:
        response = httpx.get(f"{gateway.url}/_gateway/ready")
        detailed = httpx.get(f"{gateway.url}/_gateway/ready", headers=gateway.admin_headers)
        health = httpx.get(f"{gateway.url}/_gateway/health")
    finally:
        gateway.stop()
    assert response.status_code == detailed.status_code == 503
    # The public answer says why in one word; where Django is and what it said need the token.
    assert response.json() == {"ready": False, "problems": ["upstream_unreachable"]}
    assert "127.0.0.1" not in response.text and "connect" not in response.text
    assert "cannot connect" in detailed.json()["details"][0]
    assert health.status_code == 200  # liveness does not depend on Django


def test_ready_when_everything_is_there(raw_gateway: Gateway) -> None:
    response = httpx.get(f"{raw_gateway.url}/_gateway/ready")
    assert response.status_code == 200
    assert response.json()["ready"] is True


def test_unknown_gateway_path_is_404_and_never_forwarded(raw_gateway: Gateway) -> None:
    response = httpx.get(f"{raw_gateway.url}/_gateway/nothing-here")
    assert response.status_code == 404


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), "healthcheck", "--port", str(port)],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_healthcheck_command_exit_codes(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on()
    assert healthcheck(raw_gateway.port).returncode == 0  # in maintenance too
    down = healthcheck(free_port())
    assert down.returncode == 1
    assert "unhealthy" in down.stderr


def start_and_stop(app: App) -> list[dict[str, Any]]:
    """Drive the app's ASGI lifespan through a start and a stop; what it sent the server."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))  # type: ignore[arg-type]
    return sent


class StoreThatFailsToClose(MemoryStore):
    def close(self) -> None:
        raise OSError("the store's connection pool would not close")


def test_a_failed_shutdown_is_reported_to_the_server_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = App(load_settings({}), store=StoreThatFailsToClose())
    caplog.set_level(logging.ERROR, logger="gateway")
    sent = start_and_stop(app)
    assert [message["type"] for message in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "would not close" in sent[1]["message"]
    [record] = [record for record in caplog.records if record.__dict__.get("event") == "shutdown_failed"]
    assert "would not close" in record.getMessage()


def test_a_failing_step_of_the_shutdown_does_not_leave_the_others_open() -> None:
    store = StoreThatFailsToClose()
    app = App(load_settings({}), store=store)
    closed = []

    async def refresher_fails() -> None:
        raise RuntimeError("the refresher would not stop")

    app.refresher.stop = refresher_fails  # type: ignore[method-assign]
    pool_close = app.pool.close
    app.pool.close = lambda: (closed.append("pool"), pool_close())[1]  # type: ignore[method-assign]
    sent = start_and_stop(app)
    assert closed == ["pool"]
    assert sent[-1]["type"] == "lifespan.shutdown.failed"
    # Both failures are named: the refresher's, and the store's close that still ran after it.
    assert "would not stop" in sent[-1]["message"] and "would not close" in sent[-1]["message"]
