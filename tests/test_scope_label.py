"""The scope's label ("Checkout"): what customers are told is down instead of the paths.

Checked as a write checks it (admin API, in process), kept by PATCH, cleared by off, stored and
read back, and set and shown by the CLI (``on --paths ... --label ...``, ``status``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.admin.updates import updated_state
from gateway.app import Gateway
from gateway.settings import load_settings
from gateway.state import MAX_LABEL_LENGTH, MaintenanceState
from gateway.stores.file import FileStore
from gateway.stores.memory import MemoryStore
from tests.support import cli

TOKEN = "label-token-0123456789"


@pytest.fixture(scope="module")
def admin() -> Iterator[TestClient]:
    settings = load_settings({"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}"})
    with TestClient(Gateway(settings, store=MemoryStore()), headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def test_the_admin_api_takes_a_label_checked_like_the_message(admin: TestClient) -> None:
    on = admin.put("/_gateway/maintenance", json={"scope": ["/api/checkout/"], "label": "  Checkout  ", "message": "Back soon"})
    assert on.status_code == 200, on.text
    assert on.json()["label"] == "Checkout"  # stripped: it goes into a sentence
    assert admin.get("/_gateway/maintenance").json()["label"] == "Checkout"
    refused = {
        "x" * (MAX_LABEL_LENGTH + 1): f"longer than {MAX_LABEL_LENGTH} characters",
        "Check\nout": "control character U+000A",  # one line, unlike a message
        "\x1b[2Jowned": "control character U+001B",
        "\ud800": "lone UTF-16 surrogate",
        42: "expected a string",
    }
    for label, why in refused.items():
        # As a client can send it: JSON text with \uXXXX escapes (a lone surrogate included).
        body = json.dumps({"scope": ["/api/checkout/"], "label": label}, ensure_ascii=True)
        answer = admin.put("/_gateway/maintenance", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400, label
        assert answer.json()["field"] == "label" and why in answer.json()["message"], answer.json()
    # Kept by a change of other fields (PATCH), gone with the window (off).
    patched = admin.patch("/_gateway/maintenance", json={"message": "Back at ten"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["label"] == "Checkout" and patched.json()["message"] == "Back at ten"
    off = admin.delete("/_gateway/maintenance")
    assert off.status_code == 200 and off.json()["label"] == ""


def test_turning_off_off_is_refused_a_label() -> None:
    settings = load_settings({"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}"})
    with TestClient(Gateway(settings, store=MemoryStore()), headers={"authorization": f"Bearer {TOKEN}"}) as client:
        answer = client.put("/_gateway/maintenance", json={"enabled": False, "label": "Checkout"})
    assert answer.status_code == 400 and answer.json()["field"] == "label"


def test_the_label_is_stored_and_read_back_and_a_stored_one_is_cut_to_the_limit() -> None:
    state = MaintenanceState(enabled=True, scope=("/api/checkout/",), label="Checkout", version=3)
    assert state.to_item()["label"] == "Checkout"
    assert MaintenanceState.from_item(json.loads(json.dumps(state.to_item()))) == state
    # Written by hand or by an older gateway: cut, or absent, never unreadable.
    assert MaintenanceState.from_item({"enabled": True, "label": "y" * 500}).label == "y" * MAX_LABEL_LENGTH
    assert MaintenanceState.from_item({"enabled": True}).label == ""
    kept = updated_state(state, {"message": "m"}, now=time.time(), actor="tests")
    assert kept.label == "Checkout"


def test_the_cli_sets_the_label_with_the_paths_and_shows_it(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", "--paths", "/api/checkout/", "--label", "Checkout and payment", "--message", "Paused", store=store)
    assert on.returncode == 0, on.stderr
    assert FileStore(str(store)).read().label == "Checkout and payment"
    status = cli("status", store=store).stdout
    assert "label:       Checkout and payment" in status and "/api/checkout/" in status
    assert json.loads(cli("status", "--json", store=store).stdout)["label"] == "Checkout and payment"
    too_long = cli("on", "--paths", "/api/checkout/", "--label", "x" * 101, "--replace", store=store)
    assert too_long.returncode == 2 and "--label" in too_long.stderr, too_long.stderr
