"""The background refresher, in-process with a store that fails on demand."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.errors import StoreError
from gateway.refresher import JITTER, Refresher, StateHolder
from gateway.state import MaintenanceState


class FlakyStore:
    description = "flaky:"

    def __init__(self) -> None:
        self.state = MaintenanceState()
        self.failing = False
        self.reads = 0

    def read(self) -> MaintenanceState:
        self.reads += 1
        if self.failing:
            raise StoreError("store unreachable")
        return self.state

    def write(self, state: MaintenanceState) -> MaintenanceState:
        self.state = state
        return state

    def close(self) -> None:
        pass


def test_failures_keep_the_last_good_state_and_log_once_per_streak(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(store, holder, interval=0.01)
    on = MaintenanceState(enabled=True, message="on", version=1)

    async def scenario() -> None:
        store.state = on
        assert await refresher.refresh_once()
        store.failing = True
        for _ in range(5):
            assert not await refresher.refresh_once()
        store.failing = False
        assert await refresher.refresh_once()
        store.failing = True
        assert not await refresher.refresh_once()

    with caplog.at_level(logging.INFO, logger="gateway.state"):
        asyncio.run(scenario())
    assert holder.state is on
    failed = [r for r in caplog.records if r.getMessage().startswith("store read failed")]
    assert len(failed) == 2  # two streaks, one line each
    assert any("readable again after 5 failed reads" in r.getMessage() for r in caplog.records)
    assert holder.store_status() == "stale"


def test_an_older_version_never_replaces_a_newer_one() -> None:
    holder = StateHolder(MaintenanceState())
    newer = MaintenanceState(enabled=True, version=5)
    assert holder.apply(newer, source="admin")
    assert not holder.apply(MaintenanceState(version=4), source="lagging read")
    assert holder.state is newer


def test_backoff_and_jitter() -> None:
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(FlakyStore(), holder, interval=2.0)
    delays = [refresher.next_delay() for _ in range(200)]
    assert all(2.0 * (1 - JITTER) <= d <= 2.0 * (1 + JITTER) for d in delays)
    assert max(delays) - min(delays) > 0.1  # really jittered
    holder.failures = 10
    assert 16 * (1 - JITTER) <= refresher.next_delay() <= 16 * (1 + JITTER)


def test_run_refreshes_until_stopped() -> None:
    store = FlakyStore()
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(store, holder, interval=0.02)

    async def scenario() -> None:
        refresher.start()
        await asyncio.sleep(0.3)
        store.state = MaintenanceState(enabled=True, version=1)
        await asyncio.sleep(0.1)
        await refresher.stop()
        reads = store.reads
        await asyncio.sleep(0.1)
        assert store.reads == reads  # stopped means stopped

    asyncio.run(scenario())
    assert holder.state.enabled
    assert store.reads >= 8


def test_a_scheduled_window_is_logged_when_it_starts_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    holder = StateHolder(MaintenanceState())
    holder.apply(MaintenanceState(enabled=True, starts_at=100.0, ends_at=200.0, version=1), source="test")
    with caplog.at_level(logging.INFO, logger="gateway.state"):
        for now in (50.0, 99.0, 100.5, 150.0, 199.0, 200.0, 250.0):
            holder.note_schedule(now)
    events = [record.event for record in caplog.records if hasattr(record, "event")]  # type: ignore[attr-defined]
    assert events == ["window_started", "window_ended"]
