"""The emergency override and GATEWAY_MAX_WINDOW (``gateway.override``, ``admin.override_routes``):
what decides what is served, when an override drops, the ceiling on open-ended windows, and the
/override routes attacked in-process through the whole gateway (a store that goes down on demand)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.admin.changes import next_state
from gateway.admin.override_routes import OVERRIDE_FIELDS
from gateway.app import Gateway
from gateway.errors import StoreError
from gateway.instance import local_instance
from gateway.override import MAX_TTL_SECONDS, Override, Serving, capped
from gateway.refresher import Refresher, StateHolder
from gateway.settings import load_settings
from gateway.state import MAX_TIME, MaintenanceState
from gateway.stores import change_state
from gateway.stores.memory import MemoryStore
from tests.raw_http import exchange_until_close
from tests.support import ROOT
from tests.support import Gateway as SupportGateway

TOKEN = "override-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
NOW = 1_900_000_000.0
audit = logging.getLogger("gateway.audit")


def override(maintenance: str = "off", ttl: float = 60.0, **fields: Any) -> Override:
    values: dict[str, Any] = {
        "id": "ov-1",
        "maintenance": maintenance,
        "reason": "dynamodb down",
        "message": "",
        "set_by": "ops via override",
        "client": "203.0.113.9",
        "set_at": time.time(),
        "ttl": ttl,
        "deadline": time.monotonic() + ttl,
        **fields,
    }
    return Override(**values)


def served_holder(stored: MaintenanceState | None = None, max_window: float = 0, loaded: bool = True) -> tuple[StateHolder, Serving]:
    holder = StateHolder(stored if stored is not None else MaintenanceState(), loaded=loaded)
    serving = Serving(max_window, audit, local_instance(1))
    serving.attach(holder)
    return holder, serving


ON = MaintenanceState(enabled=True, message="Upgrading", reason="release 42", updated_at=NOW, updated_by="alice", version=7)


# -- what decides


def test_an_override_decides_instead_of_the_stored_state_and_clearing_it_gives_the_store_back() -> None:
    holder, serving = served_holder(ON)
    assert holder.state is ON  # nothing decides but the store: the very object, the hot path's identity check
    serving.put(override("off"), token_name="ops")
    assert not holder.state.enabled and holder.stored is ON
    assert holder.state.version == ON.version and holder.state.reason == "dynamodb down"
    serving.put(override("on", id="ov-2", message="Down for repairs"), token_name="ops")
    assert holder.state.active(time.time()) and holder.state.message == "Down for repairs" and holder.state.scope is None
    cleared = serving.clear(token_name="ops", client="203.0.113.9")
    assert cleared is not None and cleared.id == "ov-2"
    assert holder.state is ON and serving.current() is None
    assert serving.clear(token_name="ops", client="x") is None


def test_on_over_a_stored_off_serves_maintenance() -> None:
    holder, serving = served_holder(MaintenanceState(version=3))
    serving.put(override("on"), token_name="ops")
    assert holder.state.active(time.time()) and holder.state.mode == "full" and holder.state.version == 3


class DownableStore(MemoryStore):
    """The memory store, unreadable and unwritable while ``down``."""

    description = "downable:"

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def read(self, consistent: bool = False) -> MaintenanceState:
        if self.down:
            raise StoreError("the store cannot be reached (down on purpose)")
        return super().read(consistent)

    def write(self, state: MaintenanceState, previous: MaintenanceState | None = None, record: Any = None) -> MaintenanceState:
        if self.down:
            raise StoreError("the store cannot be reached (down on purpose)")
        return super().write(state, previous, record)


def turn(store: MemoryStore, body: dict[str, Any]) -> MaintenanceState:
    return change_state(store, lambda current: next_state(current, body, now=time.time(), actor="tests"))


def test_failed_reads_and_the_same_state_keep_the_override_a_changed_store_ends_it() -> None:
    store = DownableStore()
    on = turn(store, {"enabled": True})
    holder, serving = served_holder(MaintenanceState(), loaded=False)
    refresher = Refresher(store, holder, interval=0.01)

    async def scenario() -> list[bool]:
        seen = []
        assert await refresher.refresh_once()
        store.down = True
        assert not await refresher.refresh_once()
        serving.put(override("off"), token_name="ops")
        for _ in range(3):
            assert not await refresher.refresh_once()  # the very next failed reads change nothing
            seen.append(holder.state.enabled)
        store.down = False
        assert await refresher.refresh_once()  # back, as it was: the stale window the override is for
        seen.append(serving.current() is not None)
        turn(store, {"enabled": False, "reason": "fixed"})  # the operator writes what they want
        assert await refresher.refresh_once()
        seen.append(serving.current() is not None)
        return seen

    assert asyncio.run(scenario()) == [False, False, False, True, False]
    assert holder.stored == store.read() and holder.state is holder.stored and not holder.state.enabled
    assert on.version < holder.stored.version


def test_an_override_set_before_the_first_read_counts_from_that_read() -> None:
    # A task started while the store was down, fail-closed: the override is what gets it serving.
    holder, serving = served_holder(MaintenanceState(enabled=True, reason="not read yet"), loaded=False)
    serving.put(override("off"), token_name="ops")
    assert not holder.state.enabled
    holder.apply(ON, source="store")  # the first read: the state the override was set against
    assert serving.current() is not None and not holder.state.enabled
    holder.apply(ON, source="store")
    assert serving.current() is not None
    holder.apply(dataclasses.replace(ON, version=8, enabled=False), source="store")
    assert serving.current() is None and holder.state is holder.stored


def test_a_store_gone_back_is_a_change_too() -> None:
    holder, serving = served_holder(ON)
    serving.put(override("off"), token_name="ops")
    holder.apply(MaintenanceState(), source="store")  # the item deleted: version 0, off
    assert serving.current() is None and holder.state == MaintenanceState()


def test_the_ttl_ends_an_override_by_its_timer_and_when_asked() -> None:
    async def by_timer() -> tuple[bool, bool]:
        holder, serving = served_holder(ON)
        serving.put(override("off", ttl=0.05), token_name="ops")
        during = holder.state.enabled
        await asyncio.sleep(0.15)
        return during, holder.state is ON

    assert asyncio.run(by_timer()) == (False, True)
    # Without a loop (no timer), the first question after the deadline drops it.
    holder, serving = served_holder(ON)
    serving.put(override("off", ttl=0.01), token_name="ops")
    time.sleep(0.02)
    assert serving.current() is None and holder.state is ON


def test_the_same_override_sent_again_changes_nothing_another_replaces_it(caplog: pytest.LogCaptureFixture) -> None:
    holder, serving = served_holder(ON)
    first = override("off")
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        assert serving.put(first, token_name="ops") == (first, True)
        again = dataclasses.replace(first, set_at=first.set_at + 5, deadline=first.deadline + 5)
        assert serving.put(again, token_name="ops") == (first, False)  # the TTL is not pushed back
        other = override("on", id="ov-2")
        assert serving.put(other, token_name="ops") == (other, True)
    events = [record.__dict__["event"] for record in caplog.records if record.name == "gateway.audit"]
    assert events == ["override_set", "override_unchanged", "override_set"]


def test_an_override_holds_one_timer_and_one_override_however_often_it_is_set() -> None:
    async def scenario() -> tuple[int, int]:
        holder, serving = served_holder(ON)
        for number in range(2000):
            serving.put(override("off", id=f"ov-{number}", reason="x" * 500, ttl=MAX_TTL_SECONDS), token_name="ops")
        loop = asyncio.get_running_loop()
        live = sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]
        return live, int(serving.current() is not None)

    assert asyncio.run(scenario()) == (1, 1)


# -- GATEWAY_MAX_WINDOW


def test_the_ceiling_ends_an_open_ended_window_at_its_start_plus_the_ceiling() -> None:
    assert capped(ON, 3600).ends_at == NOW + 3600  # from updated_at: when it was turned on
    scheduled = dataclasses.replace(ON, starts_at=NOW + 600)
    assert capped(scheduled, 3600).ends_at == NOW + 600 + 3600  # from starts_at
    forgotten = capped(ON, 3600)
    assert not forgotten.active(NOW + 3601) and forgotten.status(NOW + 3601) == "ended"
    for untouched in (
        dataclasses.replace(ON, ends_at=NOW + 99 * 86400),  # a window with an end keeps it, however long
        MaintenanceState(),  # off
        MaintenanceState(enabled=True),  # no time to count from (the fail-closed default, an item by hand)
        dataclasses.replace(ON, updated_at=MAX_TIME - 10),  # past the last instant ISO-8601 names
    ):
        assert capped(untouched, 3600) is untouched
    assert capped(ON, 0) is ON


def test_an_override_is_not_capped_and_the_ceiling_never_rewrites_the_holders_stored_state() -> None:
    holder, serving = served_holder(ON, max_window=60)
    assert holder.stored is ON and holder.state.ends_at == NOW + 60
    serving.put(override("on"), token_name="ops")
    assert holder.state.ends_at is None


# -- through the whole gateway, in-process


@pytest.fixture
def gateway_parts() -> Iterator[tuple[TestClient, DownableStore, Gateway]]:
    store = DownableStore()
    settings = load_settings(
        {
            "GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}",
            "GATEWAY_ADMIN_FAILURE_LIMIT": "4",
            "GATEWAY_REFRESH_INTERVAL": "0.05",
            "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9",
        }
    )
    gateway = Gateway(settings, store=store)
    with TestClient(gateway) as client:
        yield client, store, gateway


def wait_until(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def test_with_the_store_down_the_override_brings_the_site_back_and_says_so(gateway_parts: tuple[TestClient, DownableStore, Gateway]) -> None:
    client, store, gateway = gateway_parts
    turn(store, {"enabled": True, "message": "Upgrading"})
    wait_until(lambda: client.get("/page").status_code == 503)
    store.down = True
    wait_until(lambda: gateway.holder.failures > 0)
    refused = client.delete("/_gateway/maintenance", headers=AUTH)
    assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable"
    put = client.put("/_gateway/override", json={"maintenance": "off", "ttl_seconds": 600, "reason": "dynamodb down"}, headers=AUTH)
    assert put.status_code == 200, put.text
    answer = put.json()
    assert answer["changed"] is True and answer["store"]["status"] == "stale"
    assert answer["served"] == {"status": "off", "active": False, "ends_at": None, "decided_by": "override", "capped_by_max_window": False}
    assert answer["instance"]["pid"] > 0 and answer["instance"]["workers"] == 1 and answer["instance"]["task"] is None
    assert answer["override"]["maintenance"] == "off" and answer["override"]["set_by"] == "ops via override"
    assert 599 <= answer["override"]["seconds_left"] <= 600
    assert client.get("/page").status_code == 502  # forwarded (to an upstream that is not there)
    # The public health says maintenance no, as for any off; nothing of the override.
    public = client.get("/_gateway/health").json()
    assert public == {"status": "ok", "maintenance": False, "mode": "full", "upcoming": False, "store": {"status": "stale"}}
    assert "override" not in client.get("/_gateway/status").text
    details = client.get("/_gateway/health", headers=AUTH).json()
    assert details["state"]["enabled"] is True  # as stored: what `on --wait` compares
    assert details["override"]["reason"] == "dynamodb down" and details["served"]["decided_by"] == "override"
    shown = client.get("/_gateway/maintenance", headers=AUTH)
    assert shown.json()["enabled"] is True and shown.json()["override"]["id"] == answer["override"]["id"]
    assert shown.headers["etag"] == f'"{gateway.holder.stored.version}"'
    metrics = client.get("/_gateway/metrics", headers=AUTH).text
    assert "gateway_override_active 1\n" in metrics and "gateway_maintenance_active 0\n" in metrics
    assert "gateway_store_stale 1\n" in metrics
    # Back, unchanged: the override stays. Changed: it drops, and the store decides.
    store.down = False
    wait_until(lambda: gateway.holder.failures == 0)
    time.sleep(0.2)
    assert client.get("/_gateway/override", headers=AUTH).json()["override"] is not None
    off = client.delete("/_gateway/maintenance", headers=AUTH)
    assert off.status_code == 200, off.text
    after = client.get("/_gateway/override", headers=AUTH).json()
    assert after["override"] is None and after["served"]["decided_by"] == "store"
    assert "gateway_override_active 0\n" in client.get("/_gateway/metrics", headers=AUTH).text


def test_delete_clears_it_and_a_second_delete_changes_nothing(gateway_parts: tuple[TestClient, DownableStore, Gateway]) -> None:
    client, store, _ = gateway_parts
    turn(store, {"enabled": True})
    wait_until(lambda: client.get("/page").status_code == 503)
    client.put("/_gateway/override", json={"maintenance": "off"}, headers=AUTH)
    first = client.delete("/_gateway/override", headers=AUTH).json()
    assert first["changed"] is True and first["cleared"]["maintenance"] == "off" and first["override"] is None
    assert client.get("/page").status_code == 503
    second = client.delete("/_gateway/override", headers=AUTH).json()
    assert second["changed"] is False and second["cleared"] is None


def test_fail_closed_and_never_read_an_override_makes_the_task_ready() -> None:
    store = DownableStore()
    store.down = True
    settings = load_settings({"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}", "GATEWAY_FAIL_MODE": "closed", "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})
    with TestClient(Gateway(settings, store=store)) as client:
        assert client.get("/page").status_code == 503
        assert "state_unread" in client.get("/_gateway/ready").json()["problems"]
        client.put("/_gateway/override", json={"maintenance": "off"}, headers=AUTH)
        assert client.get("/page").status_code == 502
        assert "state_unread" not in client.get("/_gateway/ready").json()["problems"]


def test_the_ceiling_shows_in_the_503_the_feed_health_and_metrics_and_the_store_is_untouched() -> None:
    store = MemoryStore()
    settings = load_settings(
        {"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}", "GATEWAY_MAX_WINDOW": "3600", "GATEWAY_REFRESH_INTERVAL": "0.05", "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"}
    )
    with TestClient(Gateway(settings, store=store)) as client:
        stored = turn(store, {"enabled": True})
        wait_until(lambda: client.get("/page").status_code == 503)
        refused = client.get("/page", headers={"accept": "application/json"})
        end = stored.updated_at + 3600  # type: ignore[operator]
        assert abs(int(refused.headers["retry-after"]) - (end - time.time())) <= 2
        assert refused.json()["ends_at"] is not None and refused.json()["ends_at"] == client.get("/_gateway/status").json()["ends_at"]
        assert client.get("/_gateway/status").json()["retry_after"] > 3500
        details = client.get("/_gateway/health", headers=AUTH).json()
        assert details["state"]["ends_at"] is None  # the store's window has none
        assert details["served"]["capped_by_max_window"] is True and details["served"]["ends_at"] == refused.json()["ends_at"]
        assert "gateway_maintenance_window_capped 1\n" in client.get("/_gateway/metrics", headers=AUTH).text
        assert store.read() == stored


def test_a_window_older_than_the_ceiling_is_over_on_every_request() -> None:
    store = MemoryStore()
    change_state(store, lambda current: next_state(current, {"enabled": True}, now=time.time() - 7200, actor="forgotten"))
    settings = load_settings({"GATEWAY_MAX_WINDOW": "3600", "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})
    with TestClient(Gateway(settings, store=store)) as client:
        assert client.get("/page").status_code == 502  # forwarded: the forgotten window ended an hour ago
        assert client.get("/_gateway/status").json()["maintenance"] is False


def test_max_window_has_a_range() -> None:
    assert load_settings({}).max_window == 0
    assert load_settings({"GATEWAY_MAX_WINDOW": "86400"}).max_window == 86400
    for bad in ("-1", "1.5", "31622401", "24h", "nan"):
        with pytest.raises(Exception, match="GATEWAY_MAX_WINDOW"):
            load_settings({"GATEWAY_MAX_WINDOW": bad})


# -- the route as a hostile client meets it


HOSTILE_BODIES = [
    ('{"maintenance": "off", "reason": "\\ud800"}', "reason"),
    ('{"maintenance": "off", "reason": "a\\u0000b"}', "reason"),
    ('{"maintenance": "off", "reason": "\\u001b[2Jmaintenance: off"}', "reason"),
    ('{"maintenance": "off", "reason": "two\\nlines"}', "reason"),
    ('{"maintenance": "on", "message": "\\udfff"}', "message"),
    (json.dumps({"maintenance": "off", "reason": "x" * 501}), "reason"),
    ('{"maintenance": "off", "ttl_seconds": ' + "9" * 4000 + "}", "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": ' + "9" * 5000 + "}", None),  # more digits than Python converts
    ('{"maintenance": "off", "ttl_seconds": 1e999}', "ttl_seconds"),  # infinity
    ('{"maintenance": "off", "ttl_seconds": NaN}', None),
    ('{"maintenance": "off", "ttl_seconds": -Infinity}', None),
    ('{"maintenance": "off", "ttl_seconds": 86401}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": 0}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": 0.5}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": -5}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": true}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": "3600"}', "ttl_seconds"),
    ('{"maintenance": "off", "ttl_seconds": [3600]}', "ttl_seconds"),
    ('{"maintenance": "OFF"}', "maintenance"),
    ('{"maintenance": false}', "maintenance"),
    ('{"maintenance": null}', "maintenance"),
    ('{"ttl_seconds": 60}', "maintenance"),
    ('{"maintenance": "off", "message": "shown to nobody"}', "message"),
    ('{"maintenance": "off", "reason": 5}', "reason"),
    ('{"maintenance": "off", "id": "a b"}', "id"),
    ('{"maintenance": "off", "id": "' + "a" * 65 + '"}', "id"),
    ('{"maintenance": "off", "id": 7}', "id"),
    ('{"maintenance": "on", "maintenance": "off"}', "maintenance"),
    ('{"maintenance": "off", "enabled": false}', "enabled"),
    ('{"maintenance": "off", "\\ud800": 1}', "\ud800"),
    ('["maintenance", "off"]', None),
    ('"off"', None),
    ("[" * 5000 + "]" * 5000, None),
    ("{", None),
    ('{"maintenance": "off"}\x00', None),
]


@pytest.mark.parametrize(("raw", "field"), HOSTILE_BODIES)
def test_hostile_bodies_are_400s_naming_the_field_and_set_nothing(gateway_parts: tuple[TestClient, DownableStore, Gateway], raw: str, field: str | None) -> None:
    client, _, gateway = gateway_parts
    response = client.put(
        "/_gateway/override", content=raw.encode("utf-8", "surrogatepass"), headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json().get("field") == field, response.text
    assert gateway.serving.current() is None
    json.dumps(response.json()).encode("utf-8")  # the refusal always encodes


def test_bodies_too_big_or_not_json_are_refused(gateway_parts: tuple[TestClient, DownableStore, Gateway]) -> None:
    client, _, gateway = gateway_parts
    huge = client.put("/_gateway/override", content=b'{"reason": "' + b"x" * 20_000 + b'"}', headers={**AUTH, "content-type": "application/json"})
    assert huge.status_code == 413
    form = client.put("/_gateway/override", content=b"maintenance=off", headers={**AUTH, "content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert client.post("/_gateway/override", json={"maintenance": "off"}, headers=AUTH).status_code == 405
    assert client.post("/_gateway/override", json={"maintenance": "off"}, headers=AUTH).headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert gateway.serving.current() is None


def test_the_longest_texts_are_taken_and_shown_whole(gateway_parts: tuple[TestClient, DownableStore, Gateway]) -> None:
    client, _, _ = gateway_parts
    body = {"maintenance": "on", "reason": "\u00e9" * 500, "message": "\U0001f6a7\n" * 1000, "ttl_seconds": MAX_TTL_SECONDS, "id": "x" * 64}
    answer = client.put("/_gateway/override", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["override"]["reason"] == body["reason"] and answer.json()["override"]["message"] == body["message"]
    page = client.get("/page", headers={"accept": "text/html"})
    assert page.status_code == 503 and "\U0001f6a7" in page.text


def test_no_token_a_wrong_one_or_two_are_refused_and_counted_toward_the_limit(gateway_parts: tuple[TestClient, DownableStore, Gateway]) -> None:
    client, _, gateway = gateway_parts
    body = {"maintenance": "off"}
    missing = client.put("/_gateway/override", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert client.put("/_gateway/override", json=body, headers={"authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    # Two Authorization fields are one too many, even when one of them (or both) is right.
    twice = [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer wrong-token-0123456789")]
    assert client.put("/_gateway/override", json=body, headers=twice).status_code == 401
    assert client.put("/_gateway/override", json=body, headers=[("authorization", f"Bearer {TOKEN}")] * 2).status_code == 401
    # The fifth attempt: over GATEWAY_ADMIN_FAILURE_LIMIT=4, refused even with the right token.
    limited = client.put("/_gateway/override", json=body, headers=AUTH)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert client.get("/_gateway/override", headers=AUTH).status_code == 429
    assert client.delete("/_gateway/override", headers=AUTH).status_code == 429
    assert gateway.serving.current() is None


def test_with_the_admin_api_off_there_is_no_override() -> None:
    with TestClient(Gateway(load_settings({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"}), store=MemoryStore())) as client:
        assert client.put("/_gateway/override", json={"maintenance": "off"}).status_code == 404
        assert client.get("/_gateway/override").status_code == 404


def test_the_audit_log_names_the_token_and_the_client_never_the_token_itself(
    gateway_parts: tuple[TestClient, DownableStore, Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = gateway_parts
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        client.put("/_gateway/override", json={"maintenance": "off", "reason": "db down", "id": "ov-audit"}, headers=AUTH)
        client.put("/_gateway/override", json={"maintenance": "off", "reason": "db down", "id": "ov-audit"}, headers=AUTH)
        client.delete("/_gateway/override", headers=AUTH)
    records = [record for record in caplog.records if record.name == "gateway.audit"]
    assert [record.__dict__["event"] for record in records] == ["override_set", "override_unchanged", "override_cleared"]
    assert records[0].__dict__["token_name"] == "ops" and records[0].__dict__["override"]["reason"] == "db down"
    assert records[2].__dict__["token_name"] == "ops"
    assert all(TOKEN not in json.dumps(record.__dict__, default=str) for record in records)


def test_the_openapi_document_describes_the_override_as_the_route_takes_it() -> None:
    document = json.loads((ROOT / "gateway" / "admin" / "openapi.json").read_text())
    request = document["components"]["schemas"]["OverrideRequest"]
    assert tuple(request["properties"]) == OVERRIDE_FIELDS
    assert request["properties"]["ttl_seconds"]["maximum"] == MAX_TTL_SECONDS
    assert set(document["paths"]["/_gateway/override"]) == {"get", "put", "delete"}


# -- against real gateway processes


@pytest.fixture(scope="module")
def process(log_dir: Path, raw_upstream: str) -> Iterator[SupportGateway]:
    env = {"GATEWAY_ADMIN_FAILURE_LIMIT": "3"}
    gateway = SupportGateway(log_dir, raw_upstream, env, name="gateway-override")
    yield gateway
    gateway.stop()


def raw_put(port: int, lines: list[str], body: bytes) -> bytes:
    head = "".join(f"{line}\r\n" for line in ["PUT /_gateway/override HTTP/1.1", "Host: shop.example", *lines])
    request = f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    return exchange_until_close(port, request)


def test_a_real_process_refuses_hostile_bodies_and_two_authorization_fields_and_counts_them(process: SupportGateway) -> None:
    right = process.admin_headers["authorization"]
    for raw in (b'{"maintenance": "off", "reason": "\\ud800"}', b'{"maintenance": "off", "ttl_seconds": NaN}', b'{"maintenance": "on", "maintenance": "off"}',
                b'{"maintenance": "off", "ttl_seconds": 1e999}', b'{"maintenance": "off", "reason": "a\\u0000b"}'):
        answer = httpx.put(f"{process.url}/_gateway/override", content=raw, headers={"authorization": right, "content-type": "application/json"})
        assert answer.status_code == 400, (raw, answer.text)
    assert process.health()["override"] is None
    body = b'{"maintenance": "off"}'
    # The bytes as sent: an HTTP library would fold or refuse the second field itself.
    both = raw_put(process.port, [f"Authorization: {right}", "Authorization: Bearer wrong-token-0123456789"], body)
    assert both.startswith(b"HTTP/1.1 401"), both[:200]
    twice = raw_put(process.port, [f"Authorization: {right}", f"Authorization: {right}"], body)
    assert twice.startswith(b"HTTP/1.1 401"), twice[:200]
    assert httpx.put(f"{process.url}/_gateway/override", json={"maintenance": "off"}).status_code == 401
    # Three failures: GATEWAY_ADMIN_FAILURE_LIMIT=3, so the right token is refused for a minute.
    limited = httpx.put(f"{process.url}/_gateway/override", json={"maintenance": "off"}, headers={"authorization": right})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert httpx.get(f"{process.url}/_gateway/health", headers={"authorization": right}).status_code == 429


def test_a_real_process_serves_the_override_until_its_ttl(log_dir: Path, raw_upstream: str) -> None:
    gateway = SupportGateway(log_dir, raw_upstream, name="gateway-override-ttl")
    try:
        gateway.turn_on(message="Upgrading")
        assert httpx.get(f"{gateway.url}/echo").status_code == 503
        set_ = httpx.put(f"{gateway.url}/_gateway/override", json={"maintenance": "off", "ttl_seconds": 1}, headers=gateway.admin_headers)
        assert set_.status_code == 200, set_.text
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
        time.sleep(1.3)
        assert httpx.get(f"{gateway.url}/echo").status_code == 503  # its TTL passed: the stored window again
        assert gateway.health()["override"] is None
        assert "override_expired" in gateway.server.log()
    finally:
        gateway.stop()


# -- any request at all


texts = st.text(alphabet=st.characters() | st.characters(categories=["Cs", "Cc", "Cf"]), max_size=40)
numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
override_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "maintenance": st.sampled_from(["on", "off", "OFF", ""]) | texts | numbers | st.none(),
            "ttl_seconds": numbers | texts | st.none() | st.lists(numbers, max_size=2),
            "reason": texts | st.text(min_size=490, max_size=520) | numbers | st.none(),
            "message": texts | numbers | st.none(),
            "id": st.from_regex(r"[A-Za-z0-9._-]{1,70}", fullmatch=True) | texts | numbers,
        },
    ),
    st.dictionaries(texts, numbers | texts, max_size=4),
    st.lists(numbers, max_size=3),
    texts,
)


@pytest.fixture(scope="module")
def any_client() -> Iterator[tuple[TestClient, Gateway]]:
    settings = load_settings({"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}", "GATEWAY_ADMIN_FAILURE_LIMIT": "0", "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})
    gateway = Gateway(settings, store=MemoryStore())
    with TestClient(gateway, raise_server_exceptions=True) as client:
        yield client, gateway


@hypothesis.settings(max_examples=600, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"]),
    body=override_bodies,
    raw=st.booleans(),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    authorized=st.booleans(),
)
def test_no_override_request_makes_a_500(any_client: tuple[TestClient, Gateway], method: str, body: Any, raw: bool, content_type: str, authorized: bool) -> None:
    client, gateway = any_client
    content = json.dumps(body).encode() if not raw else repr(body).encode("utf-8", "surrogatepass")
    headers = {"content-type": content_type, **(AUTH if authorized else {})}
    response = client.request(method, "/_gateway/override", content=content, headers=headers)
    assert response.status_code < 500, response.text
    if method != "HEAD":
        payload = response.json()
        assert isinstance(payload, dict)
    # Whatever was sent, one override at most, within its bounds.
    held = gateway.serving.current()
    assert held is None or (held.ttl <= MAX_TTL_SECONDS and len(held.reason) <= 500 and len(held.message) <= 2000 and len(held.id) <= 64)
