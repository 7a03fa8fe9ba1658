"""The maintenance state: one immutable value, swapped whole when it changes.

Times are kept as POSIX seconds so that ``active(now)`` on the hot path is two float
compares; they are written as ISO-8601 UTC text in the store and the APIs.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timezone
from typing import Any

from gateway.errors import StateError

MODES = ("full", "read-only")
MAX_MESSAGE_LENGTH = 2000
MAX_REASON_LENGTH = 500
MAX_ACTOR_LENGTH = 200

# The store item's schema; an item of a newer schema is refused rather than misread.
SCHEMA_VERSION = 1


def format_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_time(field: str, value: Any) -> float | None:
    """ISO-8601 text (a zone is required) or None; returns POSIX seconds."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StateError(field, "expected an ISO-8601 time such as 2026-11-26T10:00:00Z")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise StateError(field, f"{value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise StateError(field, f"{value!r} has no time zone; add Z for UTC")
    return moment.timestamp()


@dataclasses.dataclass(frozen=True, slots=True)
class MaintenanceState:
    enabled: bool = False
    mode: str = "full"
    message: str = ""
    starts_at: float | None = None
    ends_at: float | None = None
    reason: str = ""
    updated_at: float | None = None
    updated_by: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        # Times are kept to the millisecond, as they are written, so a state read back equals the one written.
        for name in ("starts_at", "ends_at", "updated_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, round(value, 3))
        if self.mode not in MODES:
            raise StateError("mode", f"expected one of {', '.join(MODES)}")
        if len(self.message) > MAX_MESSAGE_LENGTH:
            raise StateError("message", f"longer than {MAX_MESSAGE_LENGTH} characters")
        if len(self.reason) > MAX_REASON_LENGTH:
            raise StateError("reason", f"longer than {MAX_REASON_LENGTH} characters")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise StateError("ends_at", "must be after starts_at")
        if self.version < 0:
            raise StateError("version", "must not be negative")

    def active(self, now: float) -> bool:
        """Whether maintenance applies at ``now`` (POSIX seconds, this task's own clock)."""
        if not self.enabled:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return self.ends_at is None or now < self.ends_at

    def upcoming(self, now: float) -> bool:
        """Enabled with a start still ahead: the front end may warn its users."""
        return self.enabled and self.starts_at is not None and now < self.starts_at

    def expired(self, now: float) -> bool:
        return self.enabled and self.ends_at is not None and now >= self.ends_at

    def seconds_until_end(self, now: float) -> int | None:
        if self.ends_at is None:
            return None
        return max(0, math.ceil(self.ends_at - now))

    def next_change(self, now: float) -> float | None:
        """The next moment ``active`` flips by itself, if any."""
        for moment in (self.starts_at, self.ends_at):
            if self.enabled and moment is not None and moment > now:
                return moment
        return None

    def status(self, now: float) -> str:
        if self.active(now):
            return "on"
        if self.upcoming(now):
            return "upcoming"
        if self.expired(now):
            return "ended"
        return "off"

    def to_item(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "enabled": self.enabled,
            "mode": self.mode,
            "message": self.message,
            "starts_at": format_time(self.starts_at),
            "ends_at": format_time(self.ends_at),
            "reason": self.reason,
            "updated_at": format_time(self.updated_at),
            "updated_by": self.updated_by,
            "version": self.version,
        }

    def describe(self, now: float) -> dict[str, Any]:
        """The state as operators and the health endpoint see it."""
        item = self.to_item()
        del item["schema"]
        item["status"] = self.status(now)
        item["active"] = self.active(now)
        item["upcoming"] = self.upcoming(now)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MaintenanceState:
        """Build from a stored item; anything malformed raises StateError naming the field."""
        schema = item.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise StateError("schema", f"unknown schema version {schema!r} (this gateway reads {SCHEMA_VERSION})")
        enabled = item.get("enabled", False)
        if not isinstance(enabled, bool):
            raise StateError("enabled", "expected true or false")
        version = item.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise StateError("version", "expected an integer")
        texts: dict[str, str] = {}
        for name in ("mode", "message", "reason", "updated_by"):
            value = item.get(name, "full" if name == "mode" else "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise StateError(name, "expected text")
            texts[name] = value
        return cls(
            enabled=enabled,
            mode=texts["mode"] or "full",
            message=texts["message"],
            starts_at=parse_time("starts_at", item.get("starts_at")),
            ends_at=parse_time("ends_at", item.get("ends_at")),
            reason=texts["reason"],
            updated_at=parse_time("updated_at", item.get("updated_at")),
            updated_by=texts["updated_by"][:MAX_ACTOR_LENGTH],
            version=version,
        )


def switched_on(
    current: MaintenanceState,
    *,
    now: float,
    actor: str,
    message: str = "",
    mode: str = "full",
    starts_at: float | None = None,
    ends_at: float | None = None,
    reason: str = "",
) -> MaintenanceState:
    """The state after an operator turns maintenance on (the next version)."""
    if ends_at is not None and ends_at <= now:
        raise StateError("ends_at", "is in the past")
    return MaintenanceState(
        enabled=True,
        mode=mode,
        message=message,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        updated_at=now,
        updated_by=actor[:MAX_ACTOR_LENGTH],
        version=current.version + 1,
    )


def switched_off(current: MaintenanceState, *, now: float, actor: str, reason: str = "") -> MaintenanceState:
    """The state after an operator turns maintenance off; the last message is kept for the record."""
    return dataclasses.replace(
        current,
        enabled=False,
        starts_at=None,
        ends_at=None,
        reason=reason,
        updated_at=now,
        updated_by=actor[:MAX_ACTOR_LENGTH],
        version=current.version + 1,
    )
