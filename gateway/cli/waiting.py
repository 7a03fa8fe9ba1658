"""``on --wait`` and ``off --wait``: poll a gateway's health until it serves a change."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.cli.client import AdminClient
from gateway.errors import GatewayUnreachable
from gateway.state import MaintenanceState

DEFAULT_WAIT_SECONDS = 30.0
# Behind a load balancer each poll may reach another task: the change counts as served once
# this many answers in a row show it (a task still on the old state breaks the run).
CONFIRMATIONS = 5
POLL_SECONDS = 0.1


def wait_until_served(client: AdminClient, target: MaintenanceState, timeout: float) -> str | None:
    """None once ``CONFIRMATIONS`` health answers in a row serve ``target``; else, after
    ``timeout`` seconds, what the gateway served last (or why it did not answer).

    A refused token is not waited out: its AdminError reaches the caller at once.
    """
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while True:
        try:
            served = serving(client.health(), target, time.time())
        except GatewayUnreachable as exc:
            # A gateway that is restarting answers again soon; the deadline decides.
            served = str(exc)
        in_a_row = in_a_row + 1 if served is None else 0
        if in_a_row >= CONFIRMATIONS:
            return None
        if time.monotonic() >= deadline:
            return served if served is not None else f"only {in_a_row} answers in a row showed it"
        time.sleep(POLL_SECONDS)


def serving(health: dict[str, Any], target: MaintenanceState, now: float) -> str | None:
    """None when ``health`` shows ``target`` served, else what it shows instead.

    With a token health names the version served; without one, only whether maintenance
    applies now, in which mode, and whether a window is upcoming: enough to tell a change of
    those apart, which is what a request sees.
    """
    if "state" in health:
        state = health["state"]
        version = state.get("version") if isinstance(state, dict) else None
        if not isinstance(version, int):
            return "it has not read the store yet"
        return None if version >= target.version else f"it serves version {version}"
    active = target.active(now)
    wanted = {"maintenance": active, "upcoming": target.upcoming(now), **({"mode": target.mode} if active else {})}
    shown = {key: health.get(key) for key in wanted}
    return None if shown == wanted else "it answers " + ", ".join(f"{key}={json.dumps(value)}" for key, value in shown.items())
