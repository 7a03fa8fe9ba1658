"""The whole task on loopback: nginx (the shipped config) -> gateway -> Django, state in DynamoDB (moto).

Everything goes through nginx, as the ALB's traffic would: normal requests, the
admin call that turns maintenance on, the browser on another origin, and the ALB
health path, which must stay 200 the whole time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import call_from
from tests.support import CORS_ENV, FRONT_ORIGIN, DynamoDBServer, Gateway, start_nginx

TOKEN = "stack-admin-token-0123456789"


@pytest.fixture(scope="module")
def stack(log_dir: Path, django_upstream: str) -> Iterator[str]:
    dynamodb = DynamoDBServer(log_dir, name="moto-stack")
    gateway = nginx = None
    try:
        store = dynamodb.store_url("maintenance-gateway", key="shop-prod")
        from gateway.stores import open_store

        open_store(store).create_table()  # what `maintenance-gateway init-table` does
        gateway = Gateway(
            log_dir,
            django_upstream,
            {**CORS_ENV, "GATEWAY_STORE": store, "GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}", "GATEWAY_REFRESH_INTERVAL": "1"},
            name="gateway-stack",
        )
        nginx, url = start_nginx(log_dir, gateway.port)
        yield url
    finally:
        for server in (nginx, gateway, dynamodb):
            if server is not None:
                server.stop()


def test_maintenance_through_the_whole_stack(stack: str, browser, front_pages) -> None:
    allowed_page, _ = front_pages
    health: list[tuple[str, int]] = []
    phase = ["before"]
    watching = threading.Event()
    watching.set()

    def watch_health() -> None:
        # What the ALB target group does, only faster.
        with httpx.Client(timeout=5) as client:
            while watching.is_set():
                health.append((phase[0], client.get(f"{stack}/_gateway/health").status_code))
                time.sleep(0.02)

    def enter(name: str) -> None:
        """Move to the next phase once the health check has been seen in the current one."""
        deadline = time.monotonic() + 5
        while not any(p == phase[0] for p, _ in health) and time.monotonic() < deadline:
            time.sleep(0.01)
        phase[0] = name

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    admin = httpx.Client(base_url=f"{stack}/_gateway", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        normal = httpx.get(f"{stack}/api/request-info", headers={"X-Forwarded-Proto": "https"})
        assert normal.status_code == 200
        seen = normal.json()
        assert seen["headers"]["X-Forwarded-Proto"] == "https"
        assert seen["headers"]["X-Forwarded-For"].endswith("127.0.0.1")

        enter("maintenance")
        turned_on = admin.put("/maintenance", json={"message": "Upgrading, back at 10:00 UTC", "duration_seconds": 900})
        assert turned_on.status_code == 200, turned_on.text
        page_sees = call_from(browser, allowed_page, f"{stack}/api/hello")
        assert page_sees["ok"] is True, page_sees
        assert page_sees["status"] == 503
        assert page_sees["body"]["message"] == "Upgrading, back at 10:00 UTC"
        assert 890 <= int(page_sees["retryAfter"]) <= 900
        html = httpx.get(f"{stack}/", headers={"Accept": "text/html"})
        assert html.status_code == 503 and "Upgrading, back at 10:00 UTC" in html.text
        direct = httpx.get(f"{stack}/api/hello", headers={"Origin": FRONT_ORIGIN})
        assert direct.headers.get_list("access-control-allow-origin") == [FRONT_ORIGIN]

        enter("after")
        assert admin.delete("/maintenance").status_code == 200
        restored = call_from(browser, allowed_page, f"{stack}/api/hello")
        assert restored["status"] == 200 and restored["body"]["message"] == "hello from Django"
        enter("done")
    finally:
        watching.clear()
        watcher.join()
        admin.close()
    assert {p for p, _ in health} >= {"before", "maintenance", "after"}
    assert {code for _, code in health} == {200}, health
