"""What every store offers: read the current state, write a new one conditionally."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.errors import ConflictError, StoreBlocksChange
from gateway.state import MAX_VERSION, MaintenanceState, format_time


class Store(Protocol):
    """A shared place for the maintenance state.

    ``read`` and ``write`` block (they may do network or disk I/O): the gateway
    calls them off the event loop.
    """

    description: str

    def read(self, consistent: bool = False) -> MaintenanceState:
        """The stored state; version 0 and disabled when nothing was ever written.

        ``consistent`` asks for the latest write even where reads are eventually
        consistent (DynamoDB): writers want it; the refresher pays for it only to confirm a
        read that is not newer than what it holds (a lagging replica, or a store gone back).

        Raises StoreError when the store cannot be read or holds something unreadable.
        """
        ...

    def write(
        self, state: MaintenanceState, previous: MaintenanceState | None = None, record: Mapping[str, str] | None = None
    ) -> MaintenanceState:
        """Store ``state`` only if the stored version is still ``expected_version(state, previous)``,
        and record the change under ``state.version``.

        ``previous`` is the state the change was built from, kept in the history; ``record``
        adds fields to the history record (see ``history_record``).
        Raises ConflictError when another writer got there first.
        """
        ...

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest changes, newest first (see ``history_record``)."""
        ...

    def last_recorded_version(self) -> int:
        """The highest version the history records (0 for none), read as writers read the state.

        A deleted state (or one restored from an older backup) leaves higher versions behind in
        the history; a change is numbered past them (see ``apply_change``).
        """
        ...

    def close(self) -> None: ...


def expected_version(state: MaintenanceState, previous: MaintenanceState | None) -> int:
    """The stored version a write of ``state`` is conditional on: the one it was built from (not
    ``state.version - 1``: after a deletion or a restored backup a change skips versions)."""
    return previous.version if previous is not None else state.version - 1


def apply_change(
    store: Store,
    build: Callable[[MaintenanceState], MaintenanceState],
    expected: int | None = None,
    floor: int = 0,
    record: Mapping[str, str] | None = None,
) -> tuple[MaintenanceState, MaintenanceState]:
    """Read, build the next state from the current one, write it conditionally; (old, new).

    ``expected`` is the version the caller saw (an If-Match): a different one is a conflict.
    ``floor`` is a version the new one must pass (a gateway's: the highest it has held).
    When ``build`` returns the current state itself (the change asks for what is stored),
    nothing is written: no new version, no history record; ``new`` is then ``old``.

    The new state is numbered past every version anyone may hold: the stored state's, the
    history's and ``floor``. ``record``: fields the history record adds (who wrote it). After a deletion or a restored backup the stored version went back,
    and a change numbered from it would be ignored as old by a gateway that has not yet seen the
    store go back, and would reuse a history record's version.
    """
    current = store.read(consistent=True)
    if expected is not None and current.version != expected:
        raise ConflictError(expected, current.version)
    recorded = store.last_recorded_version()
    highest = max(current.version, recorded, floor)
    if highest >= MAX_VERSION:
        where = (
            "the state holds"
            if highest == current.version
            else "the history holds" if highest == recorded else "this gateway has held (restart it once the store is mended)"
        )
        raise StoreBlocksChange(
            f"{where} version {highest}, the highest a version can be, so no change can be numbered past it "
            "(no writer of the gateway's goes there: it was written by hand or by a script); put the state and its "
            "history back at lower versions; nothing was changed"
        )
    # ``build`` numbers its state after the one it is given (switched_on, switched_off).
    base = current if highest == current.version else dataclasses.replace(current, version=highest)
    wanted = build(base)
    if wanted is base:
        return current, current
    return current, store.write(wanted, current, record)


def change_state(store: Store, build: Callable[[MaintenanceState], MaintenanceState]) -> MaintenanceState:
    """``apply_change`` for callers that want only the new state (the current one, unwritten,
    when ``build`` returns it)."""
    return apply_change(store, build)[1]


def history_record(
    previous: MaintenanceState | None, state: MaintenanceState, record: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One change as every store keeps it: who, when, why, and the state before and after; and
    what ``record`` adds (``aws_caller``: the AWS identity a CLI wrote a DynamoDB store with),
    never in place of those."""
    kept = {
        "version": state.version,
        "at": format_time(state.updated_at if state.updated_at is not None else time.time()),
        "by": state.updated_by,
        "reason": state.reason,
        "old": previous.to_item() if previous is not None else None,
        "new": state.to_item(),
    }
    return {**kept, **{name: value for name, value in (record or {}).items() if name not in kept}}
