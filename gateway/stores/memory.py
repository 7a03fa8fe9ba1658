"""``memory:``: a state held in this process only (tests, a single gateway without sharing)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from gateway.errors import ConflictError
from gateway.state import MaintenanceState
from gateway.stores.base import expected_version, history_record


class MemoryStore:
    description = "memory:"

    def __init__(self) -> None:
        self._state = MaintenanceState()
        self._lock = threading.Lock()
        self._history: list[dict[str, Any]] = []

    def read(self, consistent: bool = False) -> MaintenanceState:
        return self._state

    def write(
        self, state: MaintenanceState, previous: MaintenanceState | None = None, record: Mapping[str, str] | None = None
    ) -> MaintenanceState:
        expected = expected_version(state, previous)
        with self._lock:
            if self._state.version != expected:
                raise ConflictError(expected, self._state.version)
            self._state = state
            self._history.append(history_record(previous, state, record))
            return state

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._history[::-1][:limit]

    def last_recorded_version(self) -> int:
        return max((int(record["version"]) for record in self._history), default=0)

    def close(self) -> None:
        pass
