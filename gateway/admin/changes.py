"""Turning an admin API request body into the next maintenance state, or a 4xx naming the field."""

from __future__ import annotations

import dataclasses
import json
import math
import unicodedata
from typing import Any

from gateway.errors import RequestError, StateError
from gateway.admin.windows import window_in_force_refusal
from gateway.state import (
    MAX_ACTOR_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_REASON_LENGTH,
    MAX_VERSION,
    MaintenanceState,
    parse_mode,
    parse_scope,
    parse_time,
    switched_off,
    switched_on,
)

MAX_BODY_BYTES = 16 * 1024
MAX_DURATION_SECONDS = 366 * 86400
CHANGE_FIELDS = ("enabled", "mode", "message", "starts_at", "ends_at", "duration_seconds", "reason", "scope", "label", "replace", "by")
# What turning maintenance off takes; the other fields describe a window and mean nothing then.
OFF_FIELDS = ("enabled", "reason", "by")
# ``by``: who the operator says they are (``--by NAME``), recorded beside who wrote the change
# (``user@host``, the token's name), never instead of it; short, so that both fit ``updated_by``.
MAX_OPERATOR_LENGTH = 100
# A window shorter than this would end as it is written (times are kept to the millisecond).
MIN_DURATION_SECONDS = 1
# The history records one read returns: the admin API's ``limit`` and the CLI's ``--limit``.
DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 500


def invalid(field: str, message: str) -> RequestError:
    return RequestError(400, "invalid_field", f"{field}: {message}", field)


def field_problem(field: str, message: str) -> str:
    """What an ``invalid`` error's message says about ``field``, without the field's name."""
    return message.removeprefix(f"{field}: ")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose every key appears once: ``{"message": "\\ud800", "message": "ok"}``
    means one thing to one parser (a filter in front) and the other to the next, so it means
    nothing here."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise invalid(key[:64], "appears twice in the body")
        body[key] = value
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(raw: bytes, content_type: str | None, fields: tuple[str, ...] = CHANGE_FIELDS) -> dict[str, Any]:
    """A JSON object body holding only ``fields``, each once (every admin route's bodies)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise RequestError(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError also for an integer of more digits than Python converts (4300), and NaN.
        raise RequestError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestError(400, "unknown_field", f"unknown field {unknown[0][:64]!r}; expected some of {', '.join(fields)}", unknown[0][:64])
    return body


def text_problem(value: str, *, multiline: bool) -> str | None:
    """Why ``value`` cannot be shown to users or written to a log line, or None.

    Refused: lone UTF-16 surrogates (``"\\ud800"`` in JSON; no UTF-8 encoding exists, so no
    page, log line or store could hold them) and control characters (category Cc: NUL,
    escape sequences that rewrite an operator's terminal in ``status``, C1 codes). A
    message may keep line breaks and tabs (a page may show several lines); a reason is
    one line of the audit record. Format characters (RTL marks, zero-width joiners) are
    real text in some languages and stay allowed.
    """
    if value.isascii() and value.isprintable():
        return None
    for char in value:
        if "\ud800" <= char <= "\udfff":
            return f"holds a lone UTF-16 surrogate (U+{ord(char):04X}), which is not a character"
        if unicodedata.category(char) == "Cc" and not (multiline and char in "\n\t"):
            return f"holds the control character U+{ord(char):04X}"
    return None


def text_field(body: dict[str, Any], field: str, limit: int, *, multiline: bool = False) -> str:
    """``body[field]`` as text a page, a log line and a store can hold ("" when absent or
    null), or a 400 naming the field (every admin body's text fields)."""
    value = body.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(field, "expected a string")
    if len(value) > limit:
        raise invalid(field, f"longer than {limit} characters")
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise invalid(field, problem)
    return value


def _time(body: dict[str, Any], field: str) -> float | None:
    try:
        return parse_time(field, body.get(field))
    except StateError as exc:
        raise invalid(field, exc.reason) from None


def with_operator(actor: str, by: str) -> str:
    """``updated_by`` for a change ``actor`` wrote for the operator ``by`` (``--by``): ``by / actor``,
    cut in ``by`` rather than in ``actor`` when both do not fit."""
    if not by:
        return actor
    room = MAX_ACTOR_LENGTH - len(actor) - len(" / ")
    return f"{by[:room]} / {actor}" if room > 0 else actor


def next_state(
    current: MaintenanceState, body: dict[str, Any], *, now: float, actor: str, counted_from: float | None = None
) -> MaintenanceState:
    """The state a PUT asks for, built on ``current`` (its version + 1); ``current`` itself when
    the request asks for what is already stored (an off while off, or an on that would store
    the same state but for who, when and the version), so a repeated command writes nothing.

    ``"replace": false`` (the CLI's ``on`` without ``--replace``) refuses, with a 409, a window
    that would replace the one in force with other times or another scope (``windows``).
    ``counted_from``: the moment ``duration_seconds`` counts from (default: ``starts_at``, else
    now), for an update that keeps a start already past (``updates``)."""
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise invalid("enabled", "expected true or false")
    reason = text_field(body, "reason", MAX_REASON_LENGTH)
    actor = with_operator(actor, text_field(body, "by", MAX_OPERATOR_LENGTH).strip())
    replace = body.get("replace", True)
    if not isinstance(replace, bool):
        raise invalid("replace", "expected true or false")
    if not enabled:
        # Refused rather than dropped: a message sent with "enabled": false would be lost unseen.
        ignored = [field for field in CHANGE_FIELDS if field not in OFF_FIELDS and body.get(field) is not None]
        if ignored:
            raise invalid(ignored[0], "has no meaning when turning maintenance off (\"enabled\": false)")
        if not current.enabled:
            return current
        try:
            return switched_off(current, now=now, actor=actor, reason=reason)
        except StateError as exc:  # the stored version is the last one a state can have
            raise invalid(exc.field, exc.reason) from None
    try:
        mode = parse_mode(body.get("mode", "full"))
    except StateError as exc:
        raise invalid("mode", exc.reason) from None
    message = text_field(body, "message", MAX_MESSAGE_LENGTH, multiline=True)
    # What customers call the scope ("Checkout"), so front ends never show them the paths: one line.
    label = text_field(body, "label", MAX_LABEL_LENGTH).strip()
    try:
        scope = parse_scope(body.get("scope"))
    except StateError as exc:
        raise invalid(exc.field, exc.reason) from None
    starts_at = _time(body, "starts_at")
    ends_at = _time(body, "ends_at")
    duration = body.get("duration_seconds")
    if duration is not None:
        if ends_at is not None:
            raise invalid("duration_seconds", "give ends_at or duration_seconds, not both")
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise invalid("duration_seconds", "expected a number of seconds")
        # Compared before any float arithmetic: an integer of thousands of digits has no float.
        if (isinstance(duration, float) and not math.isfinite(duration)) or not MIN_DURATION_SECONDS <= duration <= MAX_DURATION_SECONDS:
            raise invalid("duration_seconds", f"must be between {MIN_DURATION_SECONDS} and {MAX_DURATION_SECONDS} seconds")
        ends_at = (counted_from if counted_from is not None else starts_at if starts_at is not None else now) + duration
    # switched_on and the state itself refuse an end in the past or before the start.
    try:
        wanted = switched_on(
            current,
            now=now,
            actor=actor,
            message=message,
            mode=mode,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            scope=scope,
            label=label,
        )
    except StateError as exc:
        raise invalid(exc.field, exc.reason) from None
    if same_state(current, wanted):
        return current
    refusal = None if replace else window_in_force_refusal(current, wanted, now)
    if refusal is not None:
        raise RequestError(409, "window_in_force", refusal)
    return wanted


def same_state(stored: MaintenanceState, wanted: MaintenanceState) -> bool:
    """Whether ``wanted`` says what ``stored`` says: equal but for who wrote it, when, and the version."""
    return dataclasses.replace(wanted, updated_at=stored.updated_at, updated_by=stored.updated_by, version=stored.version) == stored


def replaced_window(old: MaintenanceState, new: MaintenanceState, now: float) -> MaintenanceState | None:
    """``old`` when the change to ``new`` replaced a maintenance window that was on at ``now``
    (active or upcoming) with a different one, so the operator is told what is gone (a second
    scheduled window over an upcoming one would otherwise vanish unseen); else None. Turning
    maintenance off replaces nothing: that is what the request says."""
    was_on = old.active(now) or old.upcoming(now)
    if not was_on or not new.enabled or new is old or same_state(old, new):
        return None
    return old


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` names; None for absent or ``*``."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    version = whole_number(tag, MAX_VERSION)
    if version is None:
        raise RequestError(412, "precondition_failed", "If-Match must be the ETag of the state, such as \"3\"")
    return version


def whole_number(text: str, maximum: int) -> int | None:
    """``text`` as a whole number from 0 to ``maximum``, or None.

    ASCII digits only: str.isdigit() accepts "²" and other digits int() refuses, and a
    string of thousands of digits is refused before int() would spend time on it.
    """
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None
