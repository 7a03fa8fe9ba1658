"""``on --wait`` and ``off --wait``: poll a gateway's health until it serves a change."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from gateway.cli.arguments import seconds_text
from gateway.cli.client import AdminClient
from gateway.cli.output import shown
from gateway.errors import GatewayUnreachable
from gateway.state import MaintenanceState

DEFAULT_WAIT_SECONDS = 30.0
# Behind a load balancer each poll may reach another task: the change counts as served once
# this many answers in a row show it (a task still on the old state breaks the run).
CONFIRMATIONS = 5
POLL_SECONDS = 0.1


def wait_until_served(client: AdminClient, target: MaintenanceState, timeout: float, wrote_to: str | None = None) -> str | None:
    """None once ``CONFIRMATIONS`` health answers in a row serve ``target``; else, after
    ``timeout`` seconds, what the gateway served last (or why it did not answer).

    ``wrote_to`` is the store the change was written to (its description), when this command
    wrote it: a gateway whose detailed health names another store is refused at once.
    A refused token is not waited out either: its AdminError reaches the caller at once.
    """
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while True:
        try:
            health = client.health()
        except GatewayUnreachable as exc:
            # A gateway that is restarting answers again soon; the deadline decides.
            served: str | None = str(exc)
        else:
            reads = store_read(health)
            if wrote_to is not None and reads is not None and not same_store(reads, wrote_to):
                return f"the gateway at {client.base} reads {shown(reads)}; this command wrote {wrote_to}"
            served = serving(health, target, time.time())
        in_a_row = in_a_row + 1 if served is None else 0
        if in_a_row >= CONFIRMATIONS:
            return None
        if time.monotonic() >= deadline:
            why = served if served is not None else f"only {in_a_row} answers in a row showed it"
            return f"the gateway at {client.base} did not serve version {target.version} within {seconds_text(timeout)} s: {why}"
        time.sleep(POLL_SECONDS)


def store_read(health: dict[str, Any]) -> str | None:
    """The store a detailed health answer names (``store.kind``); None in the public view."""
    store = health.get("store")
    kind = store.get("kind") if isinstance(store, dict) else None
    return kind if isinstance(kind, str) else None


def same_store(reads: str, wrote_to: str) -> bool:
    """Whether two store descriptions name one store; file paths are compared resolved, since a
    gateway started in this directory may name the file relatively."""
    if reads == wrote_to:
        return True
    if reads.startswith("file:") and wrote_to.startswith("file:"):
        return os.path.realpath(reads.removeprefix("file:")) == os.path.realpath(wrote_to.removeprefix("file:"))
    return False


# The fields of a state that decide what a request sees or what an operator reads; a gateway
# serving the version asked for with other fields reads a store of its own.
_COMPARED_FIELDS = ("enabled", "mode", "message", "starts_at", "ends_at", "reason", "scope")


def serving(health: dict[str, Any], target: MaintenanceState, now: float) -> str | None:
    """None when ``health`` shows ``target`` served, else what it shows instead.

    With a token health holds the state served: its version and fields are compared (a later
    version is a later change, which replaced this one). Without one, only whether maintenance
    applies now, in which mode, and whether a window is upcoming: enough to tell a change of
    those apart, which is what a request sees.
    """
    if "state" in health:
        state = health["state"]
        version = state.get("version") if isinstance(state, dict) else None
        if not isinstance(state, dict) or not isinstance(version, int):
            return "it has not read the store yet"
        if version < target.version:
            return f"it serves version {version}"
        wanted = target.to_item()
        differing = [name for name in _COMPARED_FIELDS if version == target.version and state.get(name) != wanted[name]]
        return f"it serves version {version} with another {', '.join(differing)}" if differing else None
    wanted_public = public_fields(target, now)
    shown_public = {key: health.get(key) for key in wanted_public}
    if shown_public == wanted_public:
        return None
    return "it answers " + ", ".join(f"{key}={json.dumps(value)}" for key, value in shown_public.items())


def public_fields(target: MaintenanceState, now: float) -> dict[str, object]:
    """What the public health shows of ``target`` at ``now``."""
    active = target.active(now)
    return {"maintenance": active, "upcoming": target.upcoming(now), **({"mode": target.mode} if active else {})}


def confirmation(target: MaintenanceState, checked_details: bool, now: float, base: str) -> str:
    """What a wait that succeeded proves, and no more."""
    answers = f"{CONFIRMATIONS} answers in a row from {base}/health"
    if checked_details:
        return f"gateways serve it now ({answers})"
    public = public_fields(target, now)
    seen = "maintenance on" if public["maintenance"] else "an upcoming window" if public["upcoming"] else "maintenance off"
    mode = f" ({target.mode})" if public["maintenance"] else ""
    return f"the public health shows {seen}{mode} ({answers}); without a token the version served was not checked"
