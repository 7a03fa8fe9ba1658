"""The maintenance state: one immutable value, swapped whole when it changes.

Times are kept as POSIX seconds so that ``active(now)`` on the hot path is two float
compares; they are written as ISO-8601 UTC text in the store and the APIs.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from gateway.errors import StateError

Mode = Literal["full", "read-only"]
MODES: tuple[Mode, ...] = get_args(Mode)


def parse_mode(value: object) -> Mode:
    """``value`` as a maintenance mode, or StateError naming the ones there are."""
    for mode in MODES:
        if value == mode:
            return mode
    raise StateError("mode", f"expected one of {', '.join(MODES)}")
MAX_MESSAGE_LENGTH = 2000
MAX_REASON_LENGTH = 500
MAX_ACTOR_LENGTH = 200
# What customers are told the scope is ("Checkout"): a few words in a sentence, never the paths.
MAX_LABEL_LENGTH = 100
# A scope is a short list of path prefixes: it travels in every notice header Django receives.
MAX_SCOPE_PREFIXES = 16
MAX_PREFIX_LENGTH = 200
# Versions stay exact in JSON readers that hold numbers as doubles (JavaScript front ends, jq).
MAX_VERSION = 2**53 - 1
# The instants datetime (and so ISO-8601 text) can name: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
MIN_TIME = -62135596800.0
MAX_TIME = 253402300799.999
_TEXT_FIELDS = ("mode", "message", "reason", "updated_by", "label")

# The store item's schema; an item of a newer schema is refused rather than misread.
# Schema 2 added ``scope``. An unscoped state is still written as schema 1, so during a
# rolling deploy the older gateways keep reading it; a scoped one is written as schema 2,
# which they refuse (keeping their last good state) instead of reading it as the whole site.
SCHEMA_VERSION = 2
UNSCOPED_SCHEMA_VERSION = 1


def safe_text(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate replaced by U+FFFD, so it always encodes as UTF-8.

    A surrogate pair split over two code points (as a JSON ``\\ud83d\\ude00`` escape may leave
    it) is joined into its character; anything else that is not a character becomes U+FFFD.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def format_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    # Whole milliseconds first: a float such as 253402300799.999 is 0.998999... after the point.
    seconds, millis = divmod(round(ts * 1000), 1000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=millis * 1000)
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def normalised_prefix(prefix: str) -> str:
    """A scope prefix as the state keeps it: starting and ending with "/" (whole segments)."""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix if prefix.endswith("/") else prefix + "/"


def has_dot_segment(path: str) -> bool:
    """Whether the (percent-decoded) ``path`` has a "." or ".." segment: the one rule for request
    paths, scopes, bypass paths and the admin prefix. Most paths hold no "/." and pay one scan."""
    if "/." in path or path.startswith("."):
        for segment in path.split("/"):
            if segment == "." or segment == "..":
                return True
    return False


def parse_scope(value: Any) -> tuple[str, ...] | None:
    """The scope an operator asks for (a list of path prefixes, or null / [] for the whole
    site), checked as a write must be; raises StateError naming ``scope``.

    Refused: a prefix with a dot-segment ("." or "..": no request path is ever under it, see
    ``under_segment_prefixes``), with control characters (it would reach terminals and headers),
    with percent-encoding, white space or a backslash (it would match no decoded request path).
    """
    if value is None:
        return None
    if not isinstance(value, list):
        raise StateError("scope", "expected a list of path prefixes such as [\"/api/checkout/\"], or null")
    if len(value) > MAX_SCOPE_PREFIXES:
        raise StateError("scope", f"more than {MAX_SCOPE_PREFIXES} prefixes")
    prefixes = []
    for prefix in value:
        if not isinstance(prefix, str):
            raise StateError("scope", "expected each prefix as text")
        shown = ascii(prefix[:64])
        if not prefix.strip("/"):
            raise StateError("scope", f"{shown} names the whole site; send null or [] for that")
        if len(prefix) > MAX_PREFIX_LENGTH:
            raise StateError("scope", f"a prefix is longer than {MAX_PREFIX_LENGTH} characters")
        if not prefix.isprintable():  # also refuses lone surrogates (category Cs)
            raise StateError("scope", f"{shown} holds control characters or is not text")
        if has_dot_segment(prefix):
            raise StateError("scope", f"{shown} holds a dot-segment")
        if "?" in prefix or "#" in prefix:
            raise StateError("scope", f"{shown} is not a path (no query or fragment)")
        if "%" in prefix:
            # Scopes are matched against the decoded path (what the server hands the gateway):
            # an encoded prefix would match nothing. Refused rather than decoded, since %2F
            # would then turn into a segment boundary the operator did not write.
            raise StateError("scope", f"{shown} holds a %: give the path decoded, as in /shop/caf\u00e9/")
        if "\\" in prefix or any(char.isspace() for char in prefix):
            # Stray white space is a typo that would silently cover nothing; a backslash is read
            # as a slash by browsers but not by the path match.
            raise StateError("scope", f"{shown} holds white space or a backslash")
        prefixes.append(prefix)
    return tuple(prefixes) or None


def stored_scope(value: Any) -> tuple[tuple[str, ...] | None, str | None]:
    """A stored scope read with the writer's own check (``parse_scope``), and why it was refused.

    A scope the admin API would refuse (written by hand, by a script) is neither cut down nor
    kept as written: cut, it silently drops prefixes; kept, a prefix that matches no request
    path puts those paths back online unseen. It covers the whole site instead, since
    maintenance is the safe side, and the reason travels with the state (health, ``status``,
    the log) so it is seen. Returns (scope, None) for a scope the API would take.
    """
    try:
        return parse_scope(value), None
    except StateError as exc:
        return None, exc.reason


def parse_time(field: str, value: Any) -> float | None:
    """ISO-8601 text (a zone is required) or None; returns POSIX seconds."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StateError(field, "expected an ISO-8601 time such as 2026-11-26T10:00:00Z")
    shown = ascii(value[:64])  # an error message quotes the text escaped: it may hold anything
    if len(value) > 64:
        raise StateError(field, f"{shown}... is not an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            raise StateError(field, f"{shown} has no time zone; add Z for UTC")
        seconds = moment.timestamp()
    except (ValueError, OverflowError):
        raise StateError(field, f"{shown} is not an ISO-8601 time") from None
    # 0001-01-01T00:00:00+01:00 is a valid text for an instant in year 0, which no ISO-8601 UTC text names.
    if not MIN_TIME <= seconds <= MAX_TIME:
        raise StateError(field, f"{shown} is outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z")
    return seconds


@dataclasses.dataclass(frozen=True, slots=True)
class MaintenanceState:
    enabled: bool = False
    mode: Mode = "full"
    message: str = ""
    starts_at: float | None = None
    ends_at: float | None = None
    reason: str = ""
    updated_at: float | None = None
    updated_by: str = ""
    version: int = 0
    # Path prefixes (whole segments) when only part of the site is in maintenance; None is the whole site.
    scope: tuple[str, ...] | None = None
    # Why the stored scope was refused (see ``stored_scope``), the state then covering the whole
    # site; never written to a store: it says how this item was read, not what a writer asked for.
    scope_refused: str | None = None
    # The scope's name for customers (the status feed and the 503 carry it beside the paths).
    label: str = ""

    def __post_init__(self) -> None:
        # Times are kept to the millisecond, as they are written, so a state read back equals the one written.
        for name in ("starts_at", "ends_at", "updated_at"):
            value = getattr(self, name)
            if value is not None:
                # Every time must be writable as ISO-8601 UTC text, or health and the 503 could not show it.
                if isinstance(value, bool) or not isinstance(value, int | float) or not MIN_TIME <= value <= MAX_TIME:
                    raise StateError(name, "outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z")
                object.__setattr__(self, name, min(round(value, 3), MAX_TIME))
        # Text that cannot be encoded would make every answer that shows it fail: it is repaired here,
        # once per state, so everything that renders a state can rely on it.
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise StateError(name, "expected text")
            repaired = safe_text(value)
            if repaired is not value:
                object.__setattr__(self, name, repaired)
        if self.scope is not None:
            self._normalise_scope()
        if self.scope_refused is not None:
            if not isinstance(self.scope_refused, str):
                raise StateError("scope_refused", "expected text")
            object.__setattr__(self, "scope_refused", safe_text(self.scope_refused))
        parse_mode(self.mode)
        if len(self.message) > MAX_MESSAGE_LENGTH:
            raise StateError("message", f"longer than {MAX_MESSAGE_LENGTH} characters")
        if len(self.reason) > MAX_REASON_LENGTH:
            raise StateError("reason", f"longer than {MAX_REASON_LENGTH} characters")
        if len(self.label) > MAX_LABEL_LENGTH:
            raise StateError("label", f"longer than {MAX_LABEL_LENGTH} characters")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise StateError("ends_at", "must be after starts_at")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise StateError("version", "expected an integer")
        if not 0 <= self.version <= MAX_VERSION:
            raise StateError("version", f"must be between 0 and {MAX_VERSION}")

    def _normalise_scope(self) -> None:
        scope = self.scope
        if not isinstance(scope, tuple | list) or not all(isinstance(prefix, str) for prefix in scope):
            raise StateError("scope", "expected a list of path prefixes")
        # Sorted and without repeats, so a state read back equals the one written.
        normalised = tuple(sorted({normalised_prefix(safe_text(prefix)) for prefix in scope}))
        object.__setattr__(self, "scope", normalised or None)

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
            "schema": UNSCOPED_SCHEMA_VERSION if self.scope is None else SCHEMA_VERSION,
            "enabled": self.enabled,
            "mode": self.mode,
            "message": self.message,
            "starts_at": format_time(self.starts_at),
            "ends_at": format_time(self.ends_at),
            "reason": self.reason,
            "updated_at": format_time(self.updated_at),
            "updated_by": self.updated_by,
            "version": self.version,
            "scope": list(self.scope) if self.scope is not None else None,
            "label": self.label,
        }

    def describe(self, now: float) -> dict[str, Any]:
        """The state as operators and the health endpoint see it."""
        item = self.to_item()
        del item["schema"]
        item["status"] = self.status(now)
        item["active"] = self.active(now)
        item["upcoming"] = self.upcoming(now)
        item["scope_refused"] = self.scope_refused
        return item

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> MaintenanceState:
        """A state as ``describe`` shows it (a gateway's answer): the stored fields, and the
        refusal of a stored scope, which is how that gateway read its store."""
        state = cls.from_item(described)
        refused = described.get("scope_refused")
        return dataclasses.replace(state, scope_refused=refused) if isinstance(refused, str) else state

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MaintenanceState:
        """Build from a stored item; anything malformed raises StateError naming the field.

        Whatever wrote the item (an older version, a person, a script), the result renders:
        text is repaired (lone surrogates) and cut to the limits, and anything that cannot be
        read as a state (wrong types, times out of range, a version beyond ``MAX_VERSION``)
        raises StateError, never another exception, so the reader keeps its last good state.
        """
        try:
            return cls._from_item(item)
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - a stored item may hold anything; the reader needs one error type
            raise StateError("item", f"unreadable: {type(exc).__name__}") from exc

    @classmethod
    def _from_item(cls, item: dict[str, Any]) -> MaintenanceState:
        if not isinstance(item, dict):
            raise StateError("item", "expected an object")
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
        for name in _TEXT_FIELDS:
            value = item.get(name, "full" if name == "mode" else "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise StateError(name, "expected text")
            texts[name] = safe_text(value)
        # The rules a write is held to, not a copy of them: see stored_scope. A scope that is no
        # list of text is refused there too, and the state then covers the whole site: read as
        # an unusable item instead, it would keep the last state, off, in force.
        scope, scope_refused = stored_scope(item.get("scope"))
        return cls(
            enabled=enabled,
            mode=parse_mode(texts["mode"] or "full"),
            message=texts["message"][:MAX_MESSAGE_LENGTH],
            starts_at=parse_time("starts_at", item.get("starts_at")),
            ends_at=parse_time("ends_at", item.get("ends_at")),
            reason=texts["reason"][:MAX_REASON_LENGTH],
            updated_at=parse_time("updated_at", item.get("updated_at")),
            updated_by=texts["updated_by"][:MAX_ACTOR_LENGTH],
            version=version,
            scope=scope,
            scope_refused=scope_refused,
            label=texts["label"][:MAX_LABEL_LENGTH],
        )


def switched_on(
    current: MaintenanceState,
    *,
    now: float,
    actor: str,
    message: str = "",
    mode: Mode = "full",
    starts_at: float | None = None,
    ends_at: float | None = None,
    reason: str = "",
    scope: tuple[str, ...] | None = None,
    label: str = "",
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
        scope=scope,
        label=label,
    )


def switched_off(current: MaintenanceState, *, now: float, actor: str, reason: str = "") -> MaintenanceState:
    """The state after an operator turns maintenance off; the last message is kept for the record
    (the scope and its label are not: the history keeps them, and an off state applies to no path)."""
    return dataclasses.replace(
        current,
        enabled=False,
        starts_at=None,
        ends_at=None,
        scope=None,
        scope_refused=None,
        label="",
        reason=reason,
        updated_at=now,
        updated_by=actor[:MAX_ACTOR_LENGTH],
        version=current.version + 1,
    )
