"""What the commands print: states, history records and changes, one line per field."""

from __future__ import annotations

import unicodedata
from typing import Any

from gateway.state import MaintenanceState, format_time, safe_text

# Control characters (an escape sequence could rewrite the operator's screen; a line break
# could print a forged "maintenance: off" line), format characters (U+202E turns the rest of a
# line around) and the Unicode line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def shown(text: str) -> str:
    """Stored text as one line a terminal may print: every character of ``_ESCAPED_CATEGORIES``
    is written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``), so it is seen, not obeyed."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in safe_text(text)
    )


def describe_state(state: MaintenanceState, now: float) -> str:
    status = state.status(now)
    lines = [f"maintenance: {status}" + (f" ({state.mode})" if status in ("on", "upcoming") else "")]
    if state.scope_refused is not None:
        # Said whether on or off: the stored item holds what a change through the API could not.
        lines.append(f"paths:       every path: the stored scope is refused ({shown(state.scope_refused)})")
    if state.enabled:
        if state.scope is not None:
            lines.append(f"paths:       {shown(', '.join(state.scope))} (only these)")
        if state.label:
            lines.append(f"label:       {shown(state.label)} (what customers are told is down)")
        if state.starts_at is not None:
            lines.append(f"starts at:   {format_time(state.starts_at)}")
        if state.ends_at is not None:
            lines.append(f"ends at:     {format_time(state.ends_at)}")
        if state.message:
            lines.append(f"message:     {shown(state.message)}")
    if state.reason:
        lines.append(f"reason:      {shown(state.reason)}")
    if state.updated_at is not None:
        lines.append(f"changed:     {format_time(state.updated_at)} by {shown(state.updated_by) or 'unknown'}")
    lines.append(f"version:     {state.version}")
    return "\n".join(lines)


def describe_unchanged(state: MaintenanceState) -> str:
    # A change that writes nothing is no change for a task either: an override a task holds
    # (set while the store was down) stays in force until the store changes or it is cleared.
    return (
        f"maintenance is already {'on' if state.enabled else 'off'} (version {state.version}); nothing changed "
        "(a task holding an override keeps it: end it with `maintenance-gateway override clear`)"
    )


def describe_replaced(window: MaintenanceState, status: str, new: MaintenanceState) -> str:
    """The window a change replaced; ``status`` is what it was then (``on`` or ``upcoming``).

    A change is a whole new state, not an edit of the old one: each of the old window's paths,
    message and reason is shown, marked when the new state does not keep it, so that an
    operator who meant to extend a window sees what went with it.
    """
    kind = "active" if status == "on" else status
    # A window without a start began when it was turned on.
    start = format_time(window.starts_at if window.starts_at is not None else window.updated_at) or "(start unknown)"
    end = format_time(window.ends_at) or "open-ended"
    lines = [f"replaced the {kind} window {start} .. {end} ({window.mode}, version {window.version}):"]
    kept = " (kept)"
    dropped = " (not kept)"
    paths = ", ".join(window.scope) if window.scope is not None else "every path"
    lines.append(f"  its paths:   {shown(paths)}" + (kept if window.scope == new.scope else dropped))
    if window.message:
        lines.append(f"  its message: {shown(window.message)}" + (kept if window.message == new.message else dropped))
    if window.reason:
        lines.append(f"  its reason:  {shown(window.reason)}" + (kept if window.reason == new.reason else dropped))
    return "\n".join(lines)


def history_line(record: dict[str, Any]) -> str:
    """One record of the history as one line, whatever a hand-edited history holds."""
    # What is not an object shows as "(none)".
    new, old = (value if isinstance(value := record.get(key), dict) else {} for key in ("new", "old"))
    change = f"{_onoff(old)} -> {_onoff(new)}"
    window = ""
    if new.get("enabled") and (new.get("starts_at") or new.get("ends_at")):
        window = f" [{new.get('starts_at') or 'now'} .. {new.get('ends_at') or 'open-ended'}]"
    reason = f": {record['reason']}" if record.get("reason") else ""
    # The AWS identity a CLI wrote a DynamoDB store with, when the record holds it.
    caller = f" [aws: {record['aws_caller']}]" if isinstance(record.get("aws_caller"), str) else ""
    by = f"{record.get('by') or 'unknown'}{caller}"
    return shown(f"v{record.get('version')}  {record.get('at')}  {by}  {change}{window}{reason}")


def _onoff(item: dict[str, object]) -> str:
    if not item:
        return "(none)"
    if not item.get("enabled"):
        return "off"
    scope = item.get("scope")
    paths = f" on {shown(', '.join(map(str, scope)))}" if isinstance(scope, list) and scope else ""
    return f"on ({item.get('mode', 'full')}){paths}"
