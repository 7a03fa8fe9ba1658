"""``memory:``: a state held in this process only (tests, a single gateway without sharing)."""

from __future__ import annotations

import threading

from gateway.errors import ConflictError
from gateway.state import MaintenanceState


class MemoryStore:
    description = "memory:"

    def __init__(self) -> None:
        self._state = MaintenanceState()
        self._lock = threading.Lock()

    def read(self) -> MaintenanceState:
        return self._state

    def write(self, state: MaintenanceState) -> MaintenanceState:
        with self._lock:
            if self._state.version != state.version - 1:
                raise ConflictError(state.version - 1, self._state.version)
            self._state = state
            return state

    def close(self) -> None:
        pass
