"""When two maintenance windows cannot coexist, and when there is no window to edit.

A state holds one window. An ``on`` that asks for other times or another scope than the window
in force (active or upcoming) would silently drop it: the CLI's ``on`` sends ``"replace": false``
and is refused (409 ``window_in_force``) unless the operator adds ``--replace``, while ``PUT``
keeps replacing, as it is documented to. ``update`` and ``extend`` (``PATCH``) edit the window in
force, so they are refused (409 ``no_window``) when there is none. Each refusal is one sentence
that says which window is in force and what to do instead.
"""

from __future__ import annotations

from gateway.state import MaintenanceState, format_time


def in_force(state: MaintenanceState, now: float) -> bool:
    """Whether ``state`` holds a window that is active or upcoming at ``now``."""
    return state.active(now) or state.upcoming(now)


def same_window(old: MaintenanceState, new: MaintenanceState, now: float) -> bool:
    """Whether ``new`` keeps the times and the scope of ``old``, the window in force at ``now``
    (its message, mode and reason may differ). An active window and a new one without a start
    still ahead both start "now"; an upcoming window's start must be the same."""
    if old.scope != new.scope or old.ends_at != new.ends_at:
        return False
    if old.upcoming(now):
        return new.starts_at == old.starts_at
    return new.starts_at is None or new.starts_at <= now


def window_text(state: MaintenanceState, *, written: bool = True) -> str:
    """``2026-11-26T09:00:00Z .. 2026-11-26T10:00:00Z (every path, full``: one window as a sentence
    shows it, its parenthesis left open for more. A window without a start began when it was
    written, or (``written`` false: one asked for) begins now."""
    start = state.starts_at if state.starts_at is not None else state.updated_at if written else None
    end = format_time(state.ends_at) or "open-ended"
    paths = ", ".join(state.scope) if state.scope is not None else "every path"
    return f"{format_time(start) or 'now'} .. {end} ({paths}, {state.mode}"


def _kind(state: MaintenanceState, now: float) -> str:
    return "upcoming" if state.upcoming(now) else "active"


def window_in_force_refusal(old: MaintenanceState, new: MaintenanceState, now: float) -> str | None:
    """Why ``new`` may not replace ``old`` without ``--replace``, or None when it may: nothing is
    in force, or ``new`` keeps the window's times and scope (or turns maintenance off)."""
    if not in_force(old, now) or not new.enabled or same_window(old, new, now):
        return None
    status = "scheduled" if old.upcoming(now) else "on"
    return (
        f"maintenance is {status}: the {_kind(old, now)} window {window_text(old)}, version {old.version}) is in force, "
        f"and this change would replace it with {window_text(new, written=False)}); to change only some of its fields use "
        "`maintenance-gateway update` (PATCH /_gateway/maintenance), to move its end `maintenance-gateway extend`, "
        'to replace it add --replace ("replace": true)'
    )


def no_window_refusal(state: MaintenanceState, now: float, verb: str) -> str | None:
    """Why there is no window to ``verb`` (update, extend) at ``now``, or None when there is one."""
    if in_force(state, now):
        return None
    if state.expired(now):
        situation = f"maintenance is off: the window ended at {format_time(state.ends_at)}"
    else:
        situation = "maintenance is off and no window is upcoming"
    return f"{situation} (version {state.version}), so there is no window to {verb}; turn maintenance on with `maintenance-gateway on` (PUT /_gateway/maintenance)"
