"""What a change kept and what it changed, field by field, as the write commands print it."""

from __future__ import annotations

from gateway.cli.output import shown
from gateway.state import MaintenanceState, format_time


def _fields(state: MaintenanceState, at: float) -> list[tuple[str, str]]:
    """The fields an operator reads of ``state`` at ``at``, each as one line of text."""
    return [
        ("maintenance", state.status(at)),
        ("mode", state.mode),
        ("paths", ", ".join(state.scope) if state.scope is not None else "every path"),
        ("starts at", format_time(state.starts_at) or "(none)"),
        ("ends at", format_time(state.ends_at) or "(none)"),
        ("message", state.message or "(none)"),
        ("reason", state.reason or "(none)"),
    ]


def _label(state: MaintenanceState) -> str:
    return str(getattr(state, "label", "")) or "(none)"


def describe_fields(old: MaintenanceState, new: MaintenanceState, at: float) -> str:
    """``changed`` or ``kept`` for each field, old and new judged at ``at`` (the write's time)::

        field by field (version 3 -> 4):
          changed  ends at:     2026-11-26T10:00:00Z -> 2026-11-26T10:30:00Z
          kept     message:     Back at 10
    """
    lines = [f"field by field (version {old.version} -> {new.version}):"]
    fields = list(zip(_fields(old, at), _fields(new, at), strict=True))
    if _label(old) != "(none)" or _label(new) != "(none)":  # the scope's name for customers, when there is one
        fields.insert(3, (("label", _label(old)), ("label", _label(new))))
    for (name, before), (_, after) in fields:
        title = f"{name}:".ljust(13)
        if before == after:
            lines.append(f"  kept     {title}{shown(after)}")
        else:
            lines.append(f"  changed  {title}{shown(before)} -> {shown(after)}")
    return "\n".join(lines)
