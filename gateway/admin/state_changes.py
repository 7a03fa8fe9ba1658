"""Applying an operator's change: the conditional write, this process's copy of the state,
and the audit line; and reading the history of changes."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.admin.changes import replaced_window
from gateway.refresher import StateHolder
from gateway.state import MaintenanceState
from gateway.stores import Store, apply_change, call_off_loop


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What a change did: the state before and after (the same object when nothing was written),
    and the window it replaced, if it replaced one that was on (see ``replaced_window``)."""

    old: MaintenanceState
    new: MaintenanceState
    replaced: MaintenanceState | None = None

    @property
    def changed(self) -> bool:
        return self.new is not self.old


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
        old, new = await call_off_loop(apply_change, self.store, build, expected)
        # The other tasks follow at their next refresh; this one need not wait (and a state read
        # for a change that wrote nothing is still the freshest this process has seen).
        self.holder.apply(new, source=f"admin API ({token_name})")
        if new is old:
            self.audit.info(
                "maintenance unchanged: the admin API asked for the stored state",
                extra={"event": "admin_unchanged", "token_name": token_name, "client": client, "version": old.version},
            )
            return ChangeOutcome(old, new)
        self.audit.info(
            "maintenance changed through the admin API",
            extra={
                "event": "admin_change",
                "token_name": token_name,
                "client": client,
                "old": old.to_item(),
                "new": new.to_item(),
            },
        )
        # Judged at the write's own time: a window that was upcoming then was still on when replaced.
        now = new.updated_at if new.updated_at is not None else time.time()
        return ChangeOutcome(old, new, replaced_window(old, new, now))

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await call_off_loop(self.store.history, limit)
