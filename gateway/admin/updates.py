"""Changes that add, not replace: ``PATCH /_gateway/maintenance`` and the CLI's ``update`` and
``extend``, which edit the window in force (active or upcoming) field by field.

The fields a change names replace the stored ones, with the meaning ``PUT`` gives them; every
other field is kept. The result is built by ``next_state`` from the kept fields and the given
ones, so it gets the very checks a ``PUT`` gets (one function, no copy of them).
"""

from __future__ import annotations

from typing import Any

from gateway.admin.changes import CHANGE_FIELDS, field_problem, invalid, next_state
from gateway.admin.windows import no_window_refusal
from gateway.errors import RequestError, StateError
from gateway.state import MaintenanceState, format_time, parse_time

# What a PATCH may send: the window's fields, two ways to move its end, and who asks.
EXTEND_FIELDS = ("extend_seconds", "extend_until")
UPDATE_FIELDS = (*(field for field in CHANGE_FIELDS if field not in ("enabled", "replace")), *EXTEND_FIELDS)
# The fields that change the window (``by`` only says who asked).
WINDOW_FIELDS = tuple(field for field in UPDATE_FIELDS if field != "by")
_END_FIELDS = ("ends_at", "duration_seconds", *EXTEND_FIELDS)


def kept_fields(state: MaintenanceState) -> dict[str, Any]:
    """``state``'s window as the body of a PUT that asks for it again."""
    return {
        "enabled": True,
        "mode": state.mode,
        "message": state.message,
        "starts_at": format_time(state.starts_at),
        "ends_at": format_time(state.ends_at),
        "reason": state.reason,
        "scope": list(state.scope) if state.scope is not None else None,
        "label": state.label,
    }


def updated_state(current: MaintenanceState, changes: dict[str, Any], *, now: float, actor: str) -> MaintenanceState:
    """The window in force with the fields of ``changes`` changed and every other one kept, or
    ``current`` itself when that is what is stored (nothing to write).

    - no window active or upcoming: 409 ``no_window``; no window field given: 400;
    - ``duration_seconds`` counts from the ``starts_at`` given, else from the kept start while it
      is ahead, else from now;
    - ``extend_seconds`` moves the end that much later, ``extend_until`` moves it to a later time;
      either needs a window with an end, and neither goes with another end field.
    """
    refusal = no_window_refusal(current, now, "extend" if any(field in changes for field in EXTEND_FIELDS) else "update")
    if refusal is not None:
        raise RequestError(409, "no_window", refusal)
    if not any(field in changes for field in WINDOW_FIELDS):
        raise RequestError(400, "nothing_to_change", f"send at least one of {', '.join(WINDOW_FIELDS)}")
    ends = [field for field in _END_FIELDS if field in changes]
    if len(ends) > 1:
        raise invalid(ends[1], f"give one of {', '.join(_END_FIELDS)}, not {ends[0]} and {ends[1]}")
    body = {**kept_fields(current), **{name: value for name, value in changes.items() if name not in EXTEND_FIELDS}}
    counted_from = None
    if "duration_seconds" in changes:
        body["ends_at"] = None
        if "starts_at" not in changes and not current.upcoming(now):
            counted_from = now  # the window is on: "for 30m" is from now, not from when it began
    moved = ends[0] if ends and ends[0] in EXTEND_FIELDS else None
    if moved is not None:
        if current.ends_at is None:
            raise invalid(moved, "the window has no end to move; give it one with ends_at or duration_seconds (update --until, --for)")
        if moved == "extend_seconds":
            # The end moves as a duration counted from it: the duration's own checks apply.
            body["ends_at"], body["duration_seconds"] = None, changes["extend_seconds"]
            counted_from = current.ends_at
        else:
            try:
                until = parse_time("extend_until", changes["extend_until"])
            except StateError as exc:
                raise invalid("extend_until", exc.reason) from None
            if until is None or until <= current.ends_at:
                raise invalid("extend_until", f"must be later than the window's end, {format_time(current.ends_at)} (update --until moves it earlier)")
            body["ends_at"] = changes["extend_until"]
    try:
        return next_state(current, body, now=now, actor=actor, counted_from=counted_from)
    except RequestError as exc:
        raise _as_asked(exc, changes, moved) from None


def _as_asked(exc: RequestError, changes: dict[str, Any], moved: str | None) -> RequestError:
    """``exc`` naming what the change asked for: the end it moved, or a kept field as kept."""
    field = exc.field
    if field is None:
        return exc
    if moved is not None and field in ("ends_at", "duration_seconds"):
        return invalid(moved, field_problem(field, exc.message))
    if field == "ends_at" and not any(name in changes for name in _END_FIELDS):
        # The kept end, refused against a start the change moved: the start is what was asked.
        return invalid("starts_at", f"is not before the window's end (kept): {field_problem(field, exc.message)}; move the end too")
    if field in changes or field not in _KEPT:
        return exc
    # A stored value the writer's checks refuse (written by hand): the change must replace it.
    return invalid(field, f"the stored value (kept) {field_problem(field, exc.message)}; send a new {field}")


_KEPT = tuple(kept_fields(MaintenanceState()))
