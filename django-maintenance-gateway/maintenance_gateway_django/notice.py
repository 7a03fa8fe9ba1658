"""The gateway's ``X-Maintenance-Notice`` request header, read into a ``MaintenanceNotice``.

While a maintenance window is upcoming, or read-only or partial maintenance is on, the
gateway adds this header to every request it forwards, and always removes a client's own
copy first. Its value is compact ASCII JSON::

    {"mode":"read-only","scope":["/api/checkout/"],"starts_at":"2026-11-26T22:00:00Z",
     "ends_at":"2026-11-26T23:00:00Z","upcoming":false,"message":"Checkout pauses tonight"}

(keys with no value left out). The header can be trusted only as far as Django is reached
through the gateway alone; whatever arrives is read defensively all the same: anything that
is not a notice as the gateway writes it (bad JSON, wrong types, values over the gateway's own
limits) reads as no notice, never as an error.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

HEADER = "X-Maintenance-Notice"
MODES = ("full", "read-only")
# The gateway's own limits (gateway/state.py), and its budget for the whole value
# (gateway/status_feed.py NOTICE_VALUE_BUDGET, 4096): anything beyond is not the gateway's.
MAX_VALUE_LENGTH = 8192
MAX_MESSAGE_LENGTH = 2000
MAX_SCOPE_PREFIXES = 16
MAX_PREFIX_LENGTH = 200
_MAX_TIME_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class MaintenanceNotice:
    """What the gateway says about maintenance, as ``request.maintenance``.

    ``mode`` is ``"full"`` or ``"read-only"``; ``scope`` the path prefixes in maintenance (a
    tuple), or None for the whole site; ``starts_at`` and ``ends_at`` are aware datetimes (UTC)
    or None; ``upcoming`` is true while the window has not started; ``message`` is the
    operator's message, or "" when none was given.
    """

    mode: str
    upcoming: bool = False
    message: str = ""
    scope: tuple[str, ...] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def read_only(self) -> bool:
        return self.mode == "read-only"

    @property
    def partial(self) -> bool:
        """Whether only some paths (``scope``) are in maintenance."""
        return self.scope is not None

    @property
    def active(self) -> bool:
        """Whether the window has started (it is not merely upcoming)."""
        return not self.upcoming

    def covers(self, path: str) -> bool:
        """Whether ``path`` is in maintenance (or will be, while upcoming): under a prefix of
        the scope by whole segments, as the gateway matches it, or anywhere without a scope."""
        if self.scope is None:
            return True
        return any(path.startswith(prefix) or path == prefix.rstrip("/") for prefix in self.scope)


class _NotANotice(ValueError):
    """A value the gateway never sends."""


def parse_notice(value: str | None) -> MaintenanceNotice | None:
    """The notice in ``value`` (the header's text), or None when there is none or it is not one
    the gateway would send. Never raises."""
    if not value or len(value) > MAX_VALUE_LENGTH:
        return None
    try:
        data = json.loads(value)
        if not isinstance(data, dict):
            return None
        return _notice(data)
    except (ValueError, TypeError, OverflowError, RecursionError):  # _NotANotice is a ValueError
        return None


def _notice(data: dict[str, Any]) -> MaintenanceNotice:
    mode = data.get("mode")
    upcoming = data.get("upcoming", False)
    message = data.get("message", "")
    if mode not in MODES or not isinstance(upcoming, bool):
        raise _NotANotice("mode, upcoming")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_LENGTH or not _shown_text(message):
        raise _NotANotice("message")
    return MaintenanceNotice(
        mode=mode,
        upcoming=upcoming,
        message=message,
        scope=_scope(data.get("scope")),
        starts_at=_time(data.get("starts_at")),
        ends_at=_time(data.get("ends_at")),
    )


def _scope(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_SCOPE_PREFIXES:
        raise _NotANotice("scope")
    if not all(
        isinstance(prefix, str) and prefix.startswith("/") and len(prefix) <= MAX_PREFIX_LENGTH and prefix.isprintable()
        for prefix in value
    ):
        raise _NotANotice("scope")
    return tuple(value)


def _shown_text(text: str) -> bool:
    """Text the gateway's writers let through: no lone surrogates (a JSON escape such as
    ``\\ud800`` decodes to one, and no page can encode it) and no control characters but
    line breaks and tabs."""
    return all(char.isprintable() or char in "\n\t" for char in text)


def _time(value: Any) -> datetime | None:
    """An aware datetime in UTC, or None for no time."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TIME_LENGTH:
        raise _NotANotice("time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise _NotANotice("time without a zone")
    # Raises OverflowError for a moment before year 1 or after 9999 once in UTC.
    return moment.astimezone(timezone.utc)
