"""What a process serves of the stored state: the emergency override, and GATEWAY_MAX_WINDOW.

Both are in memory only and never write the store. The holder (``refresher.StateHolder``)
keeps the state as stored; ``Serving.served`` makes of it what requests are served, and the
hot path reads only that (one attribute, as before):

1. an **override** in force decides: maintenance on (the whole site, full) or off, whatever the
   store says. An operator sets it through ``PUT /_gateway/override`` on each task (the CLI's
   ``override`` command reaches them all) when the store cannot be written: with DynamoDB
   down, ``off`` cannot reach the store, and the last state read stays in force;
2. else the stored state, a window without an end ending at its start (``starts_at``, else
   ``updated_at``) plus GATEWAY_MAX_WINDOW, when that is set (0, the default, sets no ceiling).

An override drops at the first of:

- its TTL (``ttl_seconds``, default 1 h, at most 24 h), on the monotonic clock;
- ``DELETE /_gateway/override``;
- a read of the store that shows a state other than the one this process held when the
  override was set (a write, a deletion, a restored backup): someone changed the store since,
  with the store readable, and the store decides again. A failed read changes nothing, and so
  does a read of the same state: an override set because the store is down is not undone by
  the next failed read, nor by the store coming back as it was (the stale window that made
  the override needed); writing the state wanted (``maintenance-gateway off``) ends it on
  every task that reads the store. A process that had not read the store yet when the
  override was set takes its first read as the state the override was set against.

Bounded: one override per process (a new one replaces it), its texts within the state's
limits, one timer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Literal, Protocol

from gateway.instance import Instance
from gateway.state import MAX_ACTOR_LENGTH, MAX_TIME, MaintenanceState, format_time

Decision = Literal["on", "off"]
DECISIONS: tuple[Decision, ...] = ("on", "off")
DEFAULT_TTL_SECONDS = 3600
MIN_TTL_SECONDS = 1
MAX_TTL_SECONDS = 86400
# What a caller may name its override by (the CLI sends one, so a repeated call is harmless).
MAX_ID_LENGTH = 64

logger = logging.getLogger("gateway.state")


@dataclasses.dataclass(frozen=True, slots=True)
class Override:
    id: str
    maintenance: Decision
    reason: str
    message: str
    set_by: str
    client: str
    set_at: float  # time.time() when it was set
    ttl: float  # seconds it was set for
    deadline: float  # time.monotonic() when it drops

    @property
    def expires_at(self) -> float:
        return self.set_at + self.ttl

    def asks_for_the_same(self, other: Override) -> bool:
        """Whether ``other`` is this override sent again (the CLI repeats its call per task)."""
        return (self.id, self.maintenance, self.reason, self.message, self.ttl) == (
            other.id, other.maintenance, other.reason, other.message, other.ttl
        )

    def state(self, stored: MaintenanceState) -> MaintenanceState:
        """The state served while this override is in force (the stored version kept, so
        health and metrics still say which stored state is behind it)."""
        common: dict[str, Any] = {
            "reason": self.reason,
            "updated_at": min(self.set_at, MAX_TIME),
            "updated_by": self.set_by[:MAX_ACTOR_LENGTH],
            "version": stored.version,
        }
        if self.maintenance == "off":
            return MaintenanceState(enabled=False, **common)
        return MaintenanceState(enabled=True, mode="full", message=self.message, **common)

    def describe(self, now_monotonic: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "maintenance": self.maintenance,
            "reason": self.reason,
            "message": self.message,
            "set_by": self.set_by,
            "client": self.client,
            "set_at": format_time(min(self.set_at, MAX_TIME)),
            "expires_at": format_time(min(self.expires_at, MAX_TIME)),
            "ttl_seconds": self.ttl,
            "seconds_left": max(0, round(self.deadline - now_monotonic, 3)),
        }


def capped(state: MaintenanceState, max_window: float) -> MaintenanceState:
    """``state`` with the GATEWAY_MAX_WINDOW ceiling: an enabled window without an end ends at
    its start (``starts_at``, else ``updated_at``) plus ``max_window``; any other state is
    returned as it is (the same object). A window with no time at all (an item written by hand)
    has no start to count from and is left as it is."""
    if not max_window or not state.enabled or state.ends_at is not None:
        return state
    start = state.starts_at if state.starts_at is not None else state.updated_at
    if start is None or start + max_window >= MAX_TIME:
        return state
    return dataclasses.replace(state, ends_at=start + max_window)


class Held(Protocol):
    """What ``Serving`` reads of the holder it serves (``refresher.StateHolder``)."""

    rule: Any  # set to the Serving that serves it

    @property
    def stored(self) -> MaintenanceState: ...
    @property
    def loaded(self) -> bool: ...
    def serve(self) -> None: ...


class Serving:
    """This process's override and ceiling, and who this process is (``instance``: every answer
    about the override names it, so the CLI can count the tasks it reached)."""

    def __init__(self, max_window: float, audit: logging.Logger, instance: Instance) -> None:
        self.max_window = max_window
        self.audit = audit
        self.instance = instance
        self._override: Override | None = None
        # The stored state held when the override was set; None until this process reads the store.
        self._baseline: MaintenanceState | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._holder: Held | None = None

    def attach(self, holder: Held) -> None:
        """Serve ``holder``'s state from now on (it asks this object what to serve)."""
        self._holder = holder
        holder.rule = self
        holder.serve()

    # -- what the holder asks (see refresher.ServingRule)

    def served(self, stored: MaintenanceState) -> MaintenanceState:
        override = self._override
        if override is not None:
            return override.state(stored)
        return capped(stored, self.max_window)

    def stored_changed(self, stored: MaintenanceState) -> None:
        """The holder took in ``stored``, a state other than the one it held (or its first read)."""
        if self._override is None:
            return
        if self._baseline is None:
            self._baseline = stored  # set before the first read: counted from what that read shows
            return
        if stored != self._baseline:
            self._drop(
                "override_superseded",
                "the override ended: the store changed since it was set (version %d, now %d); the store decides again",
                self._baseline.version,
                stored.version,
                new={"enabled": stored.enabled, "version": stored.version},
            )

    def store_recovered(self) -> None:
        override = self._override
        if override is not None:
            logger.warning(
                "the store is readable again; the override (maintenance %s) stays in force until the store changes, "
                "it is cleared, or its TTL ends at %s",
                override.maintenance,
                format_time(min(override.expires_at, MAX_TIME)),
                extra={"event": "override_outlives_outage", "override": override.id},
            )

    # -- the admin API's operations

    def current(self) -> Override | None:
        """The override in force (one past its deadline is dropped here, should its timer be late)."""
        override = self._override
        if override is not None and time.monotonic() >= override.deadline:
            self._drop("override_expired", "the override (maintenance %s) reached its TTL; the stored state decides again", override.maintenance)
            return None
        return override

    def put(self, override: Override, *, token_name: str) -> tuple[Override, bool]:
        """Set ``override`` (replacing any other); (the override in force, whether it changed)."""
        held = self.current()
        if held is not None and held.asks_for_the_same(override):
            self.audit.info(
                "override unchanged: the same override was sent again",
                extra={"event": "override_unchanged", "token_name": token_name, "client": override.client, "override": held.id},
            )
            return held, False
        holder = self._require_holder()
        if held is None:
            self._baseline = holder.stored if holder.loaded else None
        self._override = override
        self._schedule(override)
        holder.serve()
        self.audit.warning(
            "override set: maintenance %s for %g s, instead of the stored state",
            override.maintenance,
            override.ttl,
            extra={
                "event": "override_set",
                "token_name": token_name,
                "client": override.client,
                "override": override.describe(time.monotonic()),
                "replaced": held.id if held is not None else None,
                "stored_version": holder.stored.version,
                "instance": self.instance.id,
            },
        )
        return override, True

    def clear(self, *, token_name: str, client: str) -> Override | None:
        """Drop the override in force, if any; the one dropped."""
        held = self.current()
        if held is None:
            return None
        self._drop("override_cleared", "the override was cleared; the stored state decides again", token_name=token_name, client=client)
        return held

    def decided_by(self) -> str:
        return "override" if self._override is not None else "store"

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- inside

    def _require_holder(self) -> Held:
        if self._holder is None:
            raise RuntimeError("Serving.attach(holder) was not called")
        return self._holder

    def _schedule(self, override: Override) -> None:
        self.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test): ``current`` drops it when asked after its deadline
        self._timer = loop.call_later(max(0.0, override.deadline - time.monotonic()), self._expire, override)

    def _expire(self, override: Override) -> None:
        self._timer = None
        if self._override is override:
            self._drop("override_expired", "the override (maintenance %s) reached its TTL; the stored state decides again", override.maintenance)

    def _drop(self, event: str, message: str, *args: object, **extra: object) -> None:
        override = self._override
        if override is None:
            return
        self._override = None
        self._baseline = None
        self.close()
        self._require_holder().serve()
        self.audit.warning(message, *args, extra={"event": event, "override": override.id, "maintenance": override.maintenance, **extra})
