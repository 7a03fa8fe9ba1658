"""The gateway's exceptions. Library errors are translated into these at one boundary each."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A setting is wrong; the process must not start."""

    exit_code = 78  # EX_CONFIG from sysexits.h: distinct from crashes (1) and usage errors (2)

    def __init__(self, key: str, value: str, reason: str) -> None:
        super().__init__(f"{key}={value!r}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


class StoreError(GatewayError):
    """The store could not be read or written (outage, corrupt data, unknown format)."""


class ConflictError(StoreError):
    """A conditional write lost: the stored version is not the one the writer expected."""

    def __init__(self, expected: int | None, actual: int) -> None:
        super().__init__(f"version conflict: expected version {expected}, the store has version {actual}")
        self.expected = expected
        self.actual = actual


class StateError(GatewayError):
    """A maintenance state (from an operator or the store) is invalid."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
