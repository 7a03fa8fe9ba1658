"""The admin app in-process, on a small context of fakes: what it reads and calls, the routes
mounted once under the prefix, and what a change answers (``changed``, ``replaced``); and the
rules that decide when a change writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.admin.changes import next_state, replaced_window
from gateway.admin.context import AdminContext
from gateway.admin.routes import build_admin_app
from gateway.admin.state_changes import ChangeOutcome, StateChanges
from gateway.bypass import BypassSecret
from gateway.errors import RequestError
from gateway.failure_limit import FailureLimiter
from gateway.forwarding import TrustedPeers
from gateway.metrics import Metrics
from gateway.refresher import StateHolder
from gateway.state import MAX_VERSION, MaintenanceState, switched_on
from gateway.stores import apply_change, change_state
from gateway.stores.memory import MemoryStore
from tests.support import ROOT

TOKEN = "context-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
NOW = 1_900_000_000.0


@dataclasses.dataclass
class Calls:
    """What the admin app asked of its context."""

    changes: list[tuple[Callable[[MaintenanceState], MaintenanceState], int | None, str, str]] = dataclasses.field(default_factory=list)
    history_limits: list[int] = dataclasses.field(default_factory=list)
    probes: int = 0
    outcome: ChangeOutcome | None = None
    probe_answer: str | None = None


def fake_context(calls: Calls, holder: StateHolder, **overrides: Any) -> AdminContext:
    async def change(build: Callable[[MaintenanceState], MaintenanceState], *, expected: int | None, token_name: str, client: str) -> ChangeOutcome:
        calls.changes.append((build, expected, token_name, client))
        assert calls.outcome is not None
        return calls.outcome

    async def probe() -> str | None:
        calls.probes += 1
        return calls.probe_answer

    async def history(limit: int) -> list[dict[str, Any]]:
        calls.history_limits.append(limit)
        return [{"version": 1}]

    fields: dict[str, Any] = {
        "prefix": "/_gateway",
        "admin_tokens": (("ops", TOKEN),),
        "body_timeout": 5.0,
        "fail_closed": False,
        "store_description": "fake:",
        "holder": holder,
        "metrics": Metrics(),
        "gauges": lambda: {"gateway_in_flight_requests": 7.0, "gateway_upstream_connections_open": 3.0, "gateway_upstream_connections_idle": 2.0},
        "trusted": TrustedPeers(()),
        "failure_limiter": FailureLimiter(3),
        "bypass": BypassSecret("bypass-secret-0123456789", 3600),
        "change_state": change,
        "probe_upstream": probe,
        "read_history": history,
    }
    return AdminContext(**(fields | overrides))


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def holder() -> StateHolder:
    return StateHolder(MaintenanceState(), loaded=True)


@pytest.fixture
def client(calls: Calls, holder: StateHolder) -> Iterator[TestClient]:
    with TestClient(build_admin_app(fake_context(calls, holder)), follow_redirects=False) as test_client:
        yield test_client


def test_the_admin_package_never_imports_the_gateway_app() -> None:
    for module in (ROOT / "gateway" / "admin").glob("*.py"):
        text = module.read_text()
        assert "gateway.app" not in text and "from gateway import app" not in text, module
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gateway.admin.routes, gateway.admin.context, gateway.admin.state_changes; print('gateway.app' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert imported.stdout.strip() == "False"


@pytest.mark.parametrize("path", ["/_gateway", "/_gateway/", "/_gateway/maintenance/", "/_gateway/health/", "/_gateway/bypass/", "/_gateway/nope"])
def test_the_prefix_itself_and_trailing_slashes_are_json_404s_never_redirects(client: TestClient, path: str) -> None:
    for method in ("GET", "PUT"):
        response = client.request(method, path, headers={"host": "evil.example", **AUTH})
        assert response.status_code == 404, (method, path, response.headers)
        assert "location" not in response.headers
        assert response.json()["error"] == "not_found"


def test_a_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.post("/_gateway/maintenance", headers=AUTH)
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    # RFC 9110 15.5.6: what the resource takes, from every route on its path.
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"
    assert client.post("/_gateway/health").headers["allow"] == "GET, HEAD"


def test_the_routes_read_the_context(client: TestClient, calls: Calls, holder: StateHolder) -> None:
    holder.apply(switched_on(holder.state, now=time.time(), actor="ops", message="Upgrade"), source="test")
    public = client.get("/_gateway/health").json()
    assert public["maintenance"] is True and "state" not in public
    detailed = client.get("/_gateway/health", headers=AUTH).json()
    assert detailed["state"]["message"] == "Upgrade" and detailed["store"]["kind"] == "fake:"
    metrics = client.get("/_gateway/metrics", headers=AUTH).text
    assert "gateway_in_flight_requests 7\n" in metrics and "gateway_upstream_connections_idle 2\n" in metrics
    assert "gateway_maintenance_active 1\n" in metrics and "gateway_state_version 1\n" in metrics
    assert client.get("/_gateway/maintenance/history", params={"limit": 3}, headers=AUTH).json() == {"changes": [{"version": 1}]}
    assert calls.history_limits == [3]
    assert client.get("/_gateway/openapi.json").json()["openapi"].startswith("3.")


def test_ready_asks_the_probe_and_caches_its_answer(client: TestClient, calls: Calls) -> None:
    calls.probe_answer = "cannot connect to 10.0.3.7:8000: connection refused"
    first = client.get("/_gateway/ready")
    second = client.get("/_gateway/ready", headers=AUTH)
    assert first.status_code == second.status_code == 503
    # Without a token: a word for the reason, never Django's address or the error it gave.
    assert first.json() == {"ready": False, "problems": ["upstream_unreachable"]}
    assert second.json()["problems"] == ["upstream_unreachable"]
    assert second.json()["details"] == ["cannot connect to 10.0.3.7:8000: connection refused"]
    assert calls.probes == 1
    assert client.get("/_gateway/ready", headers={"authorization": "Bearer wrong-token-0123456789"}).status_code == 401


def test_ready_in_fail_closed_waits_for_the_state(calls: Calls) -> None:
    context = fake_context(calls, StateHolder(MaintenanceState()), fail_closed=True)
    with TestClient(build_admin_app(context)) as test_client:
        response = test_client.get("/_gateway/ready")
        detailed = test_client.get("/_gateway/ready", headers=AUTH)
    assert response.status_code == 503 and response.json()["problems"] == ["state_unread"]
    assert "fail-closed" in detailed.json()["details"][0]


def test_the_answer_to_a_change_says_what_it_did(client: TestClient, calls: Calls) -> None:
    stored = switched_on(MaintenanceState(), now=NOW, actor="ops", message="first", starts_at=NOW + 3600, ends_at=NOW + 4200)
    newer = switched_on(stored, now=NOW, actor="ops", message="second", starts_at=NOW + 7200, ends_at=NOW + 7800)
    calls.outcome = ChangeOutcome(stored, newer, stored)
    body = {"message": "second", "starts_at": "2030-03-17T21:46:40Z", "duration_seconds": 600}
    answer = client.put("/_gateway/maintenance", json=body, headers={**AUTH, "if-match": '"1"'})
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] == '"2"'
    payload = answer.json()
    assert payload["changed"] is True and payload["version"] == 2 and payload["message"] == "second"
    assert payload["replaced"]["message"] == "first" and payload["replaced"]["version"] == 1
    assert set(payload["replaced"]) == set(payload) - {"changed", "replaced", "previous"}
    # The state the change was built on, so a client can say field by field what was kept.
    assert payload["previous"] == payload["replaced"]
    build, expected, token_name, _client = calls.changes[0]
    assert expected == 1 and token_name == "ops"
    # The one "turn on" shape: the body as the API took it, through next_state.
    built = build(MaintenanceState())
    assert built.message == "second" and built.ends_at is not None and built.ends_at - built.starts_at == 600  # type: ignore[operator]

    calls.outcome = ChangeOutcome(newer, newer)
    repeated = client.delete("/_gateway/maintenance", params={"reason": "x"}, headers=AUTH)
    assert repeated.json()["changed"] is False and repeated.json()["replaced"] is None
    assert repeated.headers["etag"] == '"2"'
    assert not calls.changes[1][0](MaintenanceState(version=4)).enabled


# -- when a change writes nothing, and what it replaced


def on(current: MaintenanceState, body: dict[str, Any], now: float = NOW) -> MaintenanceState:
    return next_state(current, body, now=now, actor="ops")


def test_an_off_while_off_is_the_stored_state_itself() -> None:
    stored = MaintenanceState(version=4, reason="done")
    assert next_state(stored, {"enabled": False, "reason": "again"}, now=NOW, actor="ops") is stored
    switched = next_state(MaintenanceState(enabled=True, version=4), {"enabled": False}, now=NOW, actor="ops")
    assert not switched.enabled and switched.version == 5


def test_an_on_that_asks_for_the_stored_state_is_the_stored_state_itself() -> None:
    body = {"message": "Deploying", "reason": "r1", "mode": "read-only", "scope": ["/api"], "starts_at": "2030-03-17T21:46:40Z", "ends_at": "2030-03-17T22:46:40Z"}
    stored = on(MaintenanceState(), body)
    assert stored.version == 1
    assert on(stored, body, now=NOW + 60) is stored
    # Anything else that differs is a change: the reason, the message, the times, the scope, the mode.
    for field, value in [("reason", "r2"), ("message", "Deploying!"), ("ends_at", "2030-03-17T22:46:41Z"), ("scope", ["/shop"]), ("mode", "full")]:
        changed = on(stored, body | {field: value}, now=NOW + 60)
        assert changed is not stored and changed.version == 2, field
    # A duration counts from now, so the same duration later is a later end: a change.
    lasting = on(MaintenanceState(), {"duration_seconds": 600})
    assert on(lasting, {"duration_seconds": 600}, now=NOW + 1) is not lasting


def test_replaced_window() -> None:
    upcoming = on(MaintenanceState(), {"message": "first", "starts_at": "2030-03-17T21:46:40Z", "duration_seconds": 600})
    other = on(upcoming, {"message": "second", "starts_at": "2030-03-17T23:46:40Z", "duration_seconds": 600})
    assert replaced_window(upcoming, other, NOW) is upcoming
    active = on(MaintenanceState(), {"message": "now"})
    assert replaced_window(active, on(active, {"message": "still"}), NOW) is active
    # Nothing was on, the window ended, nothing changed, or the change turned maintenance off: nothing replaced.
    assert replaced_window(MaintenanceState(), active, NOW) is None
    ended = on(MaintenanceState(), {"duration_seconds": 30}, now=NOW - 60)
    assert ended.ends_at == NOW - 30
    assert replaced_window(ended, on(ended, {"message": "again"}), NOW) is None
    assert replaced_window(active, active, NOW) is None
    assert replaced_window(active, dataclasses.replace(active, version=2, updated_by="other"), NOW) is None
    off = next_state(active, {"enabled": False}, now=NOW, actor="ops")
    assert replaced_window(active, off, NOW) is None


def test_a_build_that_returns_the_stored_state_writes_nothing() -> None:
    store = MemoryStore()
    first = change_state(store, lambda current: on(current, {"message": "m"}))
    old, new = apply_change(store, lambda current: on(current, {"message": "m"}, now=NOW + 5))
    assert old is new and new.version == first.version == 1
    assert change_state(store, lambda current: current) is store.read()
    assert len(store.history()) == 1 and store.read().version == 1


def test_state_changes_apply_here_and_log_what_happened(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(state_changes_apply_here_and_log_what_happened(caplog))


async def state_changes_apply_here_and_log_what_happened(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    holder = StateHolder(MaintenanceState(), loaded=True)
    changes = StateChanges(store, holder, logging.getLogger("gateway.audit"))
    caplog.set_level(logging.INFO, logger="gateway.audit")
    window = {"message": "first", "starts_at": "2099-01-01T00:00:00Z", "duration_seconds": 600}
    first = await changes.change(lambda current: on(current, window, now=time.time()), expected=None, token_name="ops", client="192.0.2.1")
    assert first.changed and first.replaced is None and holder.state is first.new
    second = await changes.change(lambda current: on(current, window | {"message": "second"}, now=time.time()), expected=1, token_name="ops", client="192.0.2.1")
    assert second.changed and second.replaced is first.new and holder.state is second.new
    same = await changes.change(lambda current: on(current, window | {"message": "second"}, now=time.time()), expected=None, token_name="ops", client="192.0.2.1")
    assert not same.changed and same.replaced is None and same.new is same.old and same.new.version == 2
    assert [record.__dict__["event"] for record in caplog.records] == ["admin_change", "admin_change", "admin_unchanged"]
    assert await changes.history(5) == store.history(5) and len(store.history()) == 2


@pytest.mark.parametrize(
    ("asked", "sent_back_to"),
    [("/shop/cart?item=3", "/shop/cart?item=3"), ("//evil.example/", "/"), ("https://evil.example/", "/"), (None, "/")],
)
def test_the_bypass_form_sends_the_browser_back_where_it_came_from(client: TestClient, asked: str | None, sent_back_to: str) -> None:
    params = {"next": asked} if asked is not None else {}
    form = client.get("/_gateway/bypass", params=params).text
    assert f'<input type="hidden" name="next" value="{html.escape(sent_back_to, quote=True)}">' in form
    taken = client.post(
        "/_gateway/bypass",
        params=params,
        data={"secret": "bypass-secret-0123456789", "next": sent_back_to},
        follow_redirects=False,
    )
    assert taken.status_code == 303 and taken.headers["location"] == sent_back_to


@pytest.mark.parametrize("body", [{"enabled": False}, {"enabled": True, "message": "once more"}])
def test_a_state_at_the_last_version_is_a_400_naming_it_never_a_500(body: dict[str, Any]) -> None:
    last = MaintenanceState(enabled=True, version=MAX_VERSION)
    with pytest.raises(RequestError) as refused:
        next_state(last, body, now=time.time(), actor="ops")
    assert refused.value.status == 400 and refused.value.field == "version"
