"""``PATCH /_gateway/maintenance`` (only the fields sent change), ``"replace": false`` on ``PUT``,
and ``by`` beside the token's name: over real HTTP to a gateway process, and ``updated_state``
(the one function behind PATCH, ``update`` and ``extend``) in process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import RequestError
from gateway.state import MAX_TIME, MaintenanceState, format_time, parse_time
from tests.support import SUPPORT_ADMIN_TOKEN, Gateway


@pytest.fixture(scope="module")
def gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    server = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": "30"}, name="gateway-admin-updates")
    yield server
    server.stop()


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {SUPPORT_ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"{gateway.url}/_gateway", headers=headers, timeout=10) as client:
        yield client
        if client.get("/maintenance").json()["enabled"]:
            client.delete("/maintenance")


def test_patch_changes_only_the_fields_sent(admin: httpx.Client, gateway: Gateway) -> None:
    on = admin.put("/maintenance", json={"message": "Deploying", "duration_seconds": 600, "reason": "release 9", "mode": "read-only"})
    assert on.status_code == 200, on.text
    before = on.json()
    patched = admin.patch("/maintenance", json={"message": "Back at 10"}, headers={"If-Match": on.headers["etag"]})
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert after["message"] == "Back at 10" and after["version"] == before["version"] + 1
    for kept in ("ends_at", "reason", "mode", "scope", "starts_at"):
        assert after[kept] == before[kept], kept
    assert after["changed"] is True and patched.headers["etag"] == f'"{after["version"]}"'
    assert after["previous"]["message"] == "Deploying" and after["previous"]["version"] == before["version"]
    # Applied by the gateway that took it at once (its refresh is every 30 s).
    served = httpx.post(f"{gateway.url}/echo", content=b"x", headers={"Accept": "application/json"})  # read-only: a write
    assert served.status_code == 503 and served.json()["message"] == "Back at 10"
    # If-Match as for PUT: a stale version is a 412, and nothing is written.
    stale = admin.patch("/maintenance", json={"reason": "x"}, headers={"If-Match": on.headers["etag"]})
    assert stale.status_code == 412 and stale.json()["error"] == "version_conflict"
    # The end moves; an extension counts from the end, not from now.
    extended = admin.patch("/maintenance", json={"extend_seconds": 300}).json()
    assert parse_time("t", extended["ends_at"]) == parse_time("t", before["ends_at"]) + 300  # type: ignore[operator]
    assert extended["message"] == "Back at 10" and extended["reason"] == "release 9"
    same = admin.patch("/maintenance", json={"message": "Back at 10"})
    assert same.json()["changed"] is False and same.json()["version"] == extended["version"]
    assert gateway.store.read().version == extended["version"]


def test_patch_refusals(admin: httpx.Client) -> None:
    off = admin.patch("/maintenance", json={"message": "x"})
    assert off.status_code == 409 and off.json()["error"] == "no_window", off.text
    assert "no window to update" in off.json()["message"]
    assert admin.put("/maintenance", json={"message": "on"}).status_code == 200
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({}, 400, "nothing_to_change", None),
        ({"by": "alice"}, 400, "nothing_to_change", None),
        ({"enabled": False}, 400, "unknown_field", "enabled"),
        ({"replace": True}, 400, "unknown_field", "replace"),
        ({"extend_seconds": 60}, 400, "invalid_field", "extend_seconds"),  # an open-ended window
        ({"ends_at": "2001-01-01T00:00:00Z"}, 400, "invalid_field", "ends_at"),
        ({"duration_seconds": 60, "ends_at": format_time(time.time() + 60)}, 400, "invalid_field", "duration_seconds"),
        ({"message": "\x1b[2J"}, 400, "invalid_field", "message"),
        ({"scope": ["/a/../b/"]}, 400, "invalid_field", "scope"),
    ]
    for body, status, error, field in cases:
        answer = admin.patch("/maintenance", json=body)
        assert (answer.status_code, answer.json()["error"], answer.json().get("field")) == (status, error, field), (body, answer.text)
    assert admin.get("/maintenance").json()["message"] == "on"


def test_put_keeps_replacing_unless_asked_not_to(admin: httpx.Client) -> None:
    first = admin.put("/maintenance", json={"starts_at": format_time(time.time() + 3600), "duration_seconds": 600}).json()
    # The documented contract: a PUT is the whole state, whatever window was in force.
    second = admin.put("/maintenance", json={"scope": ["/api/"]})
    assert second.status_code == 200 and second.json()["replaced"]["version"] == first["version"], second.text
    refused = admin.put("/maintenance", json={"duration_seconds": 60, "replace": False})
    assert refused.status_code == 409 and refused.json()["error"] == "window_in_force", refused.text
    assert "the active window" in refused.json()["message"] and "(/api/, full," in refused.json()["message"]
    kept = admin.put("/maintenance", json={"scope": ["/api/"], "message": "new text", "replace": False})
    assert kept.status_code == 200 and kept.json()["message"] == "new text", kept.text
    assert admin.put("/maintenance", json={"replace": "no"}).json()["field"] == "replace"


def test_by_is_recorded_beside_the_token_name_and_checked(admin: httpx.Client, gateway: Gateway) -> None:
    on = admin.put("/maintenance", json={"message": "m", "by": "  Alice Ops  "}).json()
    assert on["updated_by"] == "Alice Ops / tests via admin API"
    patched = admin.patch("/maintenance", json={"reason": "r", "by": "bob"}).json()
    assert patched["updated_by"] == "bob / tests via admin API"
    off = admin.delete("/maintenance", params={"by": "carol", "reason": "done"}).json()
    assert off["updated_by"] == "carol / tests via admin API" and off["reason"] == "done"
    records = admin.get("/maintenance/history", params={"limit": 3}).json()["changes"]
    assert [record["by"] for record in records] == [off["updated_by"], patched["updated_by"], on["updated_by"]]
    version = gateway.store.read().version
    for by, problem in (("a\nb", "control character U+000A"), ("x" * 101, "longer than 100")):
        refused = admin.put("/maintenance", json={"by": by})
        assert refused.status_code == 400 and refused.json()["field"] == "by" and problem in refused.json()["message"], refused.text
    surrogate = httpx.put(
        f"{gateway.url}/_gateway/maintenance",
        content=b'{"by": "\\ud800"}',
        headers={"Authorization": f"Bearer {SUPPORT_ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 400 and "lone UTF-16 surrogate" in surrogate.json()["message"], surrogate.text
    assert admin.delete("/maintenance", params={"by": "x\x00"}).json()["field"] == "by"
    assert gateway.store.read().version == version


def test_the_patch_operation_is_documented(gateway: Gateway) -> None:
    document = httpx.get(f"{gateway.url}/_gateway/openapi.json").json()
    patch = document["paths"]["/_gateway/maintenance"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/StateUpdate"}
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChangedState"}
    from gateway.admin.updates import UPDATE_FIELDS

    assert set(document["components"]["schemas"]["StateUpdate"]["properties"]) == set(UPDATE_FIELDS)
    assert {"replace", "by"} <= set(document["components"]["schemas"]["StateChange"]["properties"])
    assert "previous" in document["components"]["schemas"]["ChangedState"]["allOf"][1]["required"]


# -- updated_state in process: the edges

NOW = 1_900_000_000.0


def window(**fields: Any) -> MaintenanceState:
    return MaintenanceState(enabled=True, updated_at=NOW - 60, version=3, **fields)


def update(current: MaintenanceState, changes: dict[str, Any]) -> MaintenanceState:
    from gateway.admin.updates import updated_state  # here: the HTTP tests above run (and fail) without it

    return updated_state(current, changes, now=NOW, actor="ops")


def refusal(current: MaintenanceState, changes: dict[str, Any]) -> RequestError:
    with pytest.raises(RequestError) as refused:
        update(current, changes)
    return refused.value


def test_updated_state_edges() -> None:
    upcoming = window(starts_at=NOW + 3600, ends_at=NOW + 7200)
    assert update(upcoming, {"starts_at": None}).starts_at is None  # null: start now, as in PUT
    assert update(upcoming, {"ends_at": None}).ends_at is None  # null: no end
    assert update(upcoming, {"duration_seconds": 60}).ends_at == NOW + 3660
    assert update(upcoming, {"starts_at": format_time(NOW + 60), "duration_seconds": 60}).ends_at == NOW + 120
    assert update(upcoming, {"extend_until": format_time(NOW + 9000)}).ends_at == NOW + 9000
    assert update(upcoming, {"message": "x"}).version == 4
    assert refusal(upcoming, {"extend_until": format_time(NOW + 7200)}).field == "extend_until"  # not later
    assert refusal(upcoming, {"extend_seconds": 0}).field == "extend_seconds"
    assert refusal(upcoming, {"extend_seconds": 60, "ends_at": None}).field == "extend_seconds"
    far = window(ends_at=MAX_TIME - 10)
    past_the_last_time = refusal(far, {"extend_seconds": 60})
    assert past_the_last_time.field == "extend_seconds" and "9999" in past_the_last_time.message
    # A stored value the writer's checks refuse (written by hand) is named as kept.
    hand_written = window(message="bell \x07")
    kept = refusal(hand_written, {"reason": "r"})
    assert kept.field == "message" and "the stored value (kept)" in kept.message
    assert update(hand_written, {"message": "fine"}).message == "fine"
    ended = window(ends_at=NOW - 1)
    assert refusal(ended, {"message": "x"}).status == 409


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"message": "\\ud800", "message": "ok"}', "message"),  # a filter in front may read the first
        (b'{"reason": "x", "reason": "y"}', "reason"),
        (b'{"duration_seconds": NaN}', None),
        (b'{"duration_seconds": Infinity}', None),
    ],
)
def test_a_body_that_means_two_things_is_refused(admin: httpx.Client, method: str, body: bytes, field: str | None) -> None:
    before = admin.get("/maintenance").json()["version"]
    answer = admin.request(method, "/maintenance", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json().get("field") == field and answer.json()["error"] in ("invalid_field", "invalid_json")
    assert admin.get("/maintenance").json()["version"] == before  # nothing written
