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

    def read(self, consistent: bool = False) -> MaintenanceState:
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


class ReplicatedStore:
    """A store read through a replica that may lag: an eventually consistent read answers with
    ``replica``, a strongly consistent one with ``primary`` (what DynamoDB's GetItem does)."""

    description = "replicated:"

    def __init__(self, state: MaintenanceState) -> None:
        self.primary = self.replica = state
        self.reads = {False: 0, True: 0}

    def read(self, consistent: bool = False) -> MaintenanceState:
        self.reads[consistent] += 1
        return self.primary if consistent else self.replica


def went_back_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.__dict__.get("event") == "state_went_back"]


def test_a_lagging_replica_is_confirmed_and_never_replaces_a_newer_state(caplog: pytest.LogCaptureFixture) -> None:
    newer = MaintenanceState(enabled=True, version=5)
    store = ReplicatedStore(newer)
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(store, holder, interval=0.01)
    caplog.set_level(logging.INFO, logger="gateway.state")

    async def scenario() -> None:
        assert await refresher.refresh_once()
        store.replica = MaintenanceState(version=4)  # the replica has not seen version 5 yet
        for _ in range(3):
            assert await refresher.refresh_once()

    asyncio.run(scenario())
    assert holder.state is newer
    # Each read of the older version was checked with a strongly consistent read, which said 5.
    assert store.reads == {False: 4, True: 3} and holder.confirming_reads == 3
    assert holder.went_back == 0 and holder.last_went_back is None and not went_back_events(caplog)


def test_a_store_that_went_back_is_followed_logged_and_counted_once(caplog: pytest.LogCaptureFixture) -> None:
    held = MaintenanceState(enabled=True, message="on", version=5)
    store = ReplicatedStore(held)
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(store, holder, interval=0.01)
    caplog.set_level(logging.INFO, logger="gateway.state")

    async def scenario() -> None:
        assert await refresher.refresh_once()
        store.primary = store.replica = MaintenanceState()  # the item deleted: off, version 0
        assert await refresher.refresh_once()
        assert holder.state is store.primary
        for _ in range(3):
            assert await refresher.refresh_once()
        assert store.reads[True] == 1  # once followed, the reads cost what they did before
        store.replica = held  # a replica that has not seen the deletion yet
        for _ in range(3):
            assert await refresher.refresh_once()

    asyncio.run(scenario())
    assert holder.state == MaintenanceState()  # no flap back to version 5
    assert holder.went_back == 1
    assert holder.last_went_back is not None and (holder.last_went_back["from"], holder.last_went_back["to"]) == (5, 0)
    [record] = went_back_events(caplog)
    assert record.levelno == logging.WARNING and "from version 5 to 0" in record.getMessage()


def test_the_answer_to_a_write_never_replaces_a_newer_refresh() -> None:
    holder = StateHolder(MaintenanceState(), loaded=True)
    newer = MaintenanceState(enabled=True, version=7)  # a refresh saw another writer's version 7
    assert holder.apply(newer, source="store")
    assert not holder.apply_written(MaintenanceState(version=6), source="admin API (ops)")
    assert holder.state is newer and holder.went_back == 0
    written = MaintenanceState(version=8)
    assert holder.apply_written(written, source="admin API (ops)") and holder.state is written


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
