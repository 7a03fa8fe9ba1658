"""The state value and the embedded stores (unit tests, in-process)."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from gateway.errors import ConflictError, StateError, StoreError
from gateway.state import MaintenanceState, format_time, parse_time, switched_off, switched_on
from gateway.stores import change_state, open_store, parse_store_url
from gateway.stores.file import FileStore
from gateway.stores.memory import MemoryStore

NOW = 1_800_000_000.0


def test_active_follows_the_window() -> None:
    state = MaintenanceState(enabled=True, starts_at=NOW + 10, ends_at=NOW + 20)
    assert not state.active(NOW)
    assert state.upcoming(NOW)
    assert state.active(NOW + 10)
    assert state.active(NOW + 19.999)
    assert not state.active(NOW + 20)
    assert state.status(NOW + 25) == "ended"
    assert not MaintenanceState(enabled=False).active(NOW)
    assert MaintenanceState(enabled=True).active(NOW)


def test_retry_after_counts_to_the_end() -> None:
    state = MaintenanceState(enabled=True, ends_at=NOW + 90.2)
    assert state.seconds_until_end(NOW) == 91
    assert state.seconds_until_end(NOW + 100) == 0
    assert MaintenanceState(enabled=True).seconds_until_end(NOW) is None


def test_item_round_trip() -> None:
    state = switched_on(MaintenanceState(), now=NOW, actor="ops", message="m", mode="read-only", ends_at=NOW + 60, reason="r")
    item = state.to_item()
    assert item["ends_at"] == "2027-01-15T08:01:00Z"
    assert MaintenanceState.from_item(json.loads(json.dumps(item))) == state
    assert state.version == 1


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": True, "mode": "partial"}, "mode"),
        ({"version": "3"}, "version"),
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"ends_at": "2026-01-01T00:00:00"}, "ends_at"),
        ({"starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}, "ends_at"),
        ({"schema": 2}, "schema"),
        ({"message": "x" * 5000}, "message"),
    ],
)
def test_malformed_items_name_the_field(item: dict, field: str) -> None:
    with pytest.raises(StateError) as caught:
        MaintenanceState.from_item(item)
    assert caught.value.field == field


def test_times_parse_and_format() -> None:
    assert parse_time("t", "2026-11-26T10:00:00Z") == parse_time("t", "2026-11-26T11:00:00+01:00")
    assert format_time(parse_time("t", "2026-11-26T10:00:00.250Z")) == "2026-11-26T10:00:00.250Z"


def test_switching_on_with_an_end_in_the_past_is_refused() -> None:
    with pytest.raises(StateError):
        switched_on(MaintenanceState(), now=NOW, actor="ops", ends_at=NOW - 1)


def test_switched_off_keeps_the_record() -> None:
    on = switched_on(MaintenanceState(), now=NOW, actor="ops", message="m")
    off = switched_off(on, now=NOW + 5, actor="ops2")
    assert not off.enabled and off.version == 2 and off.updated_by == "ops2" and off.message == "m"


@pytest.mark.parametrize("make", [MemoryStore, lambda: FileStore("PLACEHOLDER")])
def test_conditional_writes(make, tmp_path: Path) -> None:
    store = make()
    if isinstance(store, FileStore):
        store = FileStore(str(tmp_path / "state.json"))
    assert store.read() == MaintenanceState()
    first = change_state(store, lambda s: switched_on(s, now=NOW, actor="a"))
    assert store.read() == first
    stale = switched_off(MaintenanceState(), now=NOW, actor="b")  # built from version 0
    with pytest.raises(ConflictError) as caught:
        store.write(stale)
    assert caught.value.actual == 1
    assert store.read() == first


def test_file_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStore(str(path))
    path.write_text("{ nope")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read()
    path.write_text(json.dumps({"schema": 9, "enabled": True}))
    with pytest.raises(StoreError, match="unknown schema version"):
        store.read()
    path.write_text("[1, 2]")
    with pytest.raises(StoreError, match="JSON object"):
        store.read()
    path.write_bytes(b"x" * 70_000)
    with pytest.raises(StoreError, match="larger than"):
        store.read()


def _race(path: str, results) -> None:  # runs in another process
    store = FileStore(path)
    current = store.read()
    time.sleep(0.2)  # both processes read version 0 before either writes
    try:
        store.write(switched_on(current, now=time.time(), actor="racer"))
        results.put("won")
    except ConflictError:
        results.put("conflict")


def test_file_store_lets_one_of_two_racing_processes_win(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    results: multiprocessing.Queue = multiprocessing.Queue()
    racers = [multiprocessing.Process(target=_race, args=(path, results)) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(10)
    assert sorted([results.get(timeout=5), results.get(timeout=5)]) == ["conflict", "won"]
    assert FileStore(path).read().version == 1


def test_store_urls() -> None:
    assert parse_store_url("file:/var/run/state.json") == ("file", "/var/run/state.json")
    assert parse_store_url("file:///var/run/state.json") == ("file", "/var/run/state.json")
    assert parse_store_url("memory:") == ("memory", "")
    assert isinstance(open_store("memory:"), MemoryStore)
    with pytest.raises(ValueError):
        parse_store_url("redis://x")
