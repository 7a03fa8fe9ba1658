"""What every store offers: read the current state, write a new one conditionally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.state import MaintenanceState


class Store(Protocol):
    """A shared place for the maintenance state.

    ``read`` and ``write`` block (they may do network or disk I/O): the gateway
    calls them off the event loop.
    """

    description: str

    def read(self) -> MaintenanceState:
        """The stored state; version 0 and disabled when nothing was ever written.

        Raises StoreError when the store cannot be read or holds something unreadable.
        """
        ...

    def write(self, state: MaintenanceState) -> MaintenanceState:
        """Store ``state`` only if the stored version is ``state.version - 1``.

        Raises ConflictError when another writer got there first.
        """
        ...

    def close(self) -> None: ...


def change_state(store: Store, build: Callable[[MaintenanceState], MaintenanceState]) -> MaintenanceState:
    """Read, build the next state from the current one, write it conditionally."""
    return store.write(build(store.read()))
