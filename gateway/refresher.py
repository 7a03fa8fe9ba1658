"""Keeping the in-memory state current: the holder the hot path reads, and the refresher.

The hot path reads ``holder.state`` (one attribute) and never waits on the store.
The refresher reads the store in a worker thread every interval, one read at a time
(a slow store delays the next read instead of piling up threads), and swaps the
state whole. A failed read keeps the last good state in force.

The store is the source of truth, and its version can go back (a deleted item or file,
a restored backup). A read that is not newer than every version held since start may
also be a replica that lags behind; such a read is confirmed by a strongly consistent
one before it is taken in, so a lagging replica never flaps the state and a store that
went back is followed within the interval.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Protocol

from gateway.errors import StoreError
from gateway.state import MaintenanceState, format_time
from gateway.stores import Store, call_off_loop

logger = logging.getLogger("gateway.state")

# A failing store is read less often (up to this many intervals apart), so a
# throttled or overloaded store is not hammered by every task at once.
MAX_BACKOFF_FACTOR = 8
JITTER = 0.1
# Its own generator: reseeding the module-wide one (as test frameworks do) cannot line up a fleet.
_JITTER_RANDOM = random.Random()


def _summary(state: MaintenanceState) -> dict[str, object]:
    return {
        "enabled": state.enabled,
        "mode": state.mode,
        "starts_at": state.to_item()["starts_at"],
        "ends_at": state.to_item()["ends_at"],
        "version": state.version,
    }


class ServingRule(Protocol):
    """What is served of the stored state (``override.Serving``: an override, GATEWAY_MAX_WINDOW)."""

    def served(self, stored: MaintenanceState) -> MaintenanceState: ...
    def stored_changed(self, stored: MaintenanceState) -> None: ...
    def store_recovered(self) -> None: ...


class StateHolder:
    """The current state and how fresh it is.

    ``stored`` is the state as the store holds it (before the first read, the fail-mode
    default); ``state`` is what requests are served: ``stored`` itself (the same object), or
    what the ``rule`` makes of it. The hot path reads ``state`` only.
    """

    def __init__(self, initial: MaintenanceState, *, loaded: bool = False) -> None:
        self.state = initial
        self.stored = initial
        self.rule: ServingRule | None = None
        self.loaded = loaded
        self.last_good_read: float | None = None  # time.monotonic() of the last successful read
        self.failures = 0  # consecutive failed reads
        self.last_error: str | None = None
        self.reads = 0  # store reads attempted since start: flat under load, one per interval
        self.errors = 0  # failed reads since start
        self.highest_version = initial.version  # the highest version held since start
        self.confirming_reads = 0  # strongly consistent reads made to confirm a read (see needs_confirmation)
        self.went_back = 0  # times the store was confirmed to hold a lower version than the one held
        self.last_went_back: dict[str, object] | None = None  # the last time: from, to, at
        self._was_active: bool | None = None

    def needs_confirmation(self, state: MaintenanceState) -> bool:
        """Whether an eventually consistent read of ``state`` must be confirmed by a strongly
        consistent one before it is taken in: it differs from the state held and is not newer
        than every version held since start, so it may come from a replica that has not seen
        the latest write (this process's own, or the one it followed when the store went back)."""
        return self.loaded and state != self.stored and state.version <= self.highest_version

    def apply(self, state: MaintenanceState, *, source: str) -> bool:
        """Swap in ``state``, the store as it is (a strongly consistent read, or a read newer than
        any version held); True when it changed. A lower version is followed, and said so."""
        current = self.stored
        first = not self.loaded
        self.loaded = True
        if state == current:
            if first and self.rule is not None:
                self.rule.stored_changed(state)
            return False
        self.stored = state
        self.highest_version = max(self.highest_version, state.version)
        if self.rule is not None:
            self.rule.stored_changed(state)  # may end an override: see override.Serving
        self.serve()
        if first:
            logger.info("maintenance state loaded", extra={"event": "state_loaded", "source": source, "new": _summary(state)})
        elif state.version < current.version:
            self._note_went_back(current, state, source)
        else:
            logger.info(
                "maintenance state changed",
                extra={"event": "state_changed", "source": source, "old": _summary(current), "new": _summary(state)},
            )
        if state.scope_refused is not None and state.scope_refused != current.scope_refused:
            # Once per refusal, not per read: the same item is read every interval.
            logger.warning(
                "the stored scope is refused (%s); maintenance covers the whole site",
                state.scope_refused,
                extra={"event": "scope_refused", "source": source, "reason": state.scope_refused, "version": state.version},
            )
        return True

    def apply_written(self, state: MaintenanceState, *, source: str) -> bool:
        """``apply`` for a state this process wrote (or read to build a change that wrote nothing),
        unless a refresh brought a newer version meanwhile: the write's answer is then the older."""
        if self.loaded and state.version < self.stored.version:
            return False
        return self.apply(state, source=source)

    def serve(self) -> None:
        """Work out ``state`` from ``stored`` again (the stored state changed, or the rule did)."""
        self.state = self.stored if self.rule is None else self.rule.served(self.stored)
        self._was_active = self.state.active(time.time())  # a change by hand is logged, not as a window

    def _note_went_back(self, old: MaintenanceState, new: MaintenanceState, source: str) -> None:
        self.went_back += 1
        self.last_went_back = {"from": old.version, "to": new.version, "at": format_time(time.time()), "times": self.went_back}
        logger.warning(
            "the store went back from version %d to %d (confirmed by a consistent read); following it",
            old.version,
            new.version,
            extra={"event": "state_went_back", "source": source, "old": _summary(old), "new": _summary(new)},
        )

    def note_schedule(self, now: float) -> None:
        """Log when maintenance starts or ends by itself (a scheduled window), once per change.

        Requests see the change at the exact moment; this line comes at the next refresh.
        """
        active = self.state.active(now)
        if self._was_active is not None and active != self._was_active:
            logger.info(
                "maintenance window %s" % ("started" if active else "ended"),
                extra={"event": "window_started" if active else "window_ended", "state": _summary(self.state)},
            )
        self._was_active = active

    def record_success(self) -> None:
        if self.failures:
            logger.info(
                "store readable again after %d failed reads",
                self.failures,
                extra={"event": "store_recovered", "failures": self.failures},
            )
            if self.rule is not None:
                self.rule.store_recovered()
        self.failures = 0
        self.last_error = None
        self.last_good_read = time.monotonic()

    def record_failure(self, error: str) -> None:
        if not self.failures:
            # Once per failure streak: an outage must not flood the logs every interval.
            logger.error(
                "store read failed; keeping the last good state: %s",
                error,
                extra={"event": "store_failed", "error": error},
            )
        self.failures += 1
        self.errors += 1
        self.last_error = error

    def age(self) -> float | None:
        """Seconds since the last good read, or None if the store was never read."""
        if self.last_good_read is None:
            return None
        return time.monotonic() - self.last_good_read

    def store_status(self) -> str:
        if self.last_good_read is None:
            return "unread"
        return "stale" if self.failures else "ok"


class Refresher:
    def __init__(self, store: Store, holder: StateHolder, interval: float) -> None:
        self.store = store
        self.holder = holder
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def refresh_once(self) -> bool:
        """One read of the store; True when it succeeded."""
        self.holder.reads += 1
        try:
            # A daemon thread: a read stuck for good cannot keep the process alive after SIGTERM.
            state = await call_off_loop(self.store.read)
            if self.holder.needs_confirmation(state):
                # A lagging replica, or a store that went back: only a strongly consistent read
                # (the dearer kind, made only now) tells them apart, and what it says is followed.
                self.holder.confirming_reads += 1
                state = await call_off_loop(self.store.read, True)  # consistent=True
        except StoreError as exc:
            self.holder.record_failure(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - any failure of a store must keep the last good state
            self.holder.record_failure(f"{type(exc).__name__}: {exc}")
            return False
        self.holder.record_success()
        self.holder.apply(state, source=self.store.description)
        return True

    def next_delay(self) -> float:
        factor = min(2 ** max(self.holder.failures - 1, 0), MAX_BACKOFF_FACTOR) if self.holder.failures else 1
        # Jitter spreads the reads of a fleet of tasks that started together.
        return self.interval * factor * _JITTER_RANDOM.uniform(1 - JITTER, 1 + JITTER)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            await self.refresh_once()
            self.holder.note_schedule(time.time())

    def start(self) -> None:
        # Held here: the event loop keeps only a weak reference to tasks.
        self._task = asyncio.get_running_loop().create_task(self.run(), name="gateway-state-refresher")

    async def stop(self, timeout: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await asyncio.wait_for(task, timeout)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            pass
