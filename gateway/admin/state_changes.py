"""Applying an operator's change: the conditional write (``apply_operator_change``, which the
CLI calls on the store directly), and for the admin API this process's copy of the state and the
audit line; and reading the history of changes."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.admin.changes import replaced_window
from gateway.refresher import StateHolder
from gateway.state import MaintenanceState
from gateway.stores import Store, apply_change, call_off_loop


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What a change did: the state before and after (the same object when nothing was written),
    and the window it replaced, if it replaced one that was on (see ``replaced_window``).

    ``old`` is None for a change a gateway made, whose answer says what it wrote but not what was there.
    """

    old: MaintenanceState | None
    new: MaintenanceState
    replaced: MaintenanceState | None = None

    @property
    def changed(self) -> bool:
        return self.new is not self.old


def written_at(state: MaintenanceState) -> float:
    """When ``state`` was written (now, for one that never was): the time a change is judged at."""
    return state.updated_at if state.updated_at is not None else time.time()


def apply_operator_change(
    store: Store,
    build: Callable[[MaintenanceState], MaintenanceState],
    expected: int | None = None,
    floor: int = 0,
    record: Mapping[str, str] | None = None,
) -> ChangeOutcome:
    """Write the state ``build`` makes of the stored one, conditionally (``expected``: the
    version the operator saw, or None), and say what the write did. ``floor``: a version the
    new one must pass (see ``apply_change``); ``record``: fields the history record adds.
    Blocking: off the event loop in the gateway, straight on the store in the CLI."""
    old, new = apply_change(store, build, expected, floor, record)
    if new is old:
        return ChangeOutcome(old, new)
    # Judged at the write's own time: a window that was upcoming then was still on when replaced.
    return ChangeOutcome(old, new, replaced_window(old, new, written_at(new)))


class StateChanges:
    def __init__(self, store: Store, holder: StateHolder, audit: logging.Logger) -> None:
        self.store = store
        self.holder = holder
        self.audit = audit

    async def change(
        self,
        build: Callable[[MaintenanceState], MaintenanceState],
        *,
        expected: int | None,
        token_name: str,
        client: str,
    ) -> ChangeOutcome:
        """Write the next state conditionally, apply it here at once, and log the change for the audit."""
        # Numbered past the highest version this gateway has held too: the store may have gone
        # back since (a deleted item), and its history may not show that version.
        outcome = await call_off_loop(apply_operator_change, self.store, build, expected, self.holder.highest_version)
        # The other tasks follow at their next refresh; this one need not wait (and a state read
        # for a change that wrote nothing is still the freshest this process has seen).
        self.holder.apply_written(outcome.new, source=f"admin API ({token_name})")
        if not outcome.changed:
            self.audit.info(
                "maintenance unchanged: the admin API asked for the stored state",
                extra={"event": "admin_unchanged", "token_name": token_name, "client": client, "version": outcome.new.version},
            )
            return outcome
        self.audit.info(
            "maintenance changed through the admin API",
            extra={
                "event": "admin_change",
                "token_name": token_name,
                "client": client,
                "old": outcome.old.to_item() if outcome.old is not None else None,
                "new": outcome.new.to_item(),
            },
        )
        return outcome

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await call_off_loop(self.store.history, limit)
