"""``/_gateway/override``: the emergency override of this process (``gateway.override``).

``PUT`` sets it (``{"maintenance": "off" | "on", "ttl_seconds": N, "reason": ..., "message": ...,
"id": ...}``), ``DELETE`` clears it, ``GET`` shows it. Every answer names the process that gave it
(``instance``: its ECS task, host and pid), what it serves now and whether it can read its store,
so that the CLI, calling through the ALB on fresh connections, can tell when every task holds it.
An admin token is needed, as for every admin route (a wrong one counts toward the failure
limit); a change is written to the audit log, never to the store.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.answers import SafeJSONResponse, read_body
from gateway.admin.changes import invalid, parse_json_body, text_field
from gateway.admin.context import StateReadings
from gateway.errors import RequestError
from gateway.http import NO_STORE_FIELDS
from gateway.override import (
    DECISIONS,
    DEFAULT_TTL_SECONDS,
    MAX_ID_LENGTH,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    Override,
    Serving,
)
from gateway.state import MAX_MESSAGE_LENGTH, MAX_REASON_LENGTH, format_time

OVERRIDE_FIELDS = ("maintenance", "ttl_seconds", "reason", "message", "id")
# An override body holds at most a reason and a message: 4 KiB of characters, escaped.
MAX_OVERRIDE_BODY_BYTES = 16 * 1024
_ID = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_ID_LENGTH)


def parse_override_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    return parse_json_body(raw, content_type, OVERRIDE_FIELDS)


def _ttl(body: dict[str, Any]) -> float:
    ttl = body.get("ttl_seconds")
    if ttl is None:
        return float(DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise invalid("ttl_seconds", "expected a number of seconds")
    # Compared before any float arithmetic: an integer of thousands of digits has no float.
    if (isinstance(ttl, float) and not math.isfinite(ttl)) or not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
        raise invalid("ttl_seconds", f"must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS} seconds")
    return round(float(ttl), 3)


def override_from_body(body: dict[str, Any], *, token_name: str, client: str) -> Override:
    """The override a PUT asks for, or a 400 naming the field."""
    maintenance = body.get("maintenance")
    if maintenance not in DECISIONS:
        raise invalid("maintenance", 'expected "on" or "off"')
    ttl = _ttl(body)
    reason = text_field(body, "reason", MAX_REASON_LENGTH, multiline=False)
    message = text_field(body, "message", MAX_MESSAGE_LENGTH, multiline=True)
    if message and maintenance == "off":
        raise invalid("message", 'has no meaning with "maintenance": "off"')
    given = body.get("id")
    if given is not None and (not isinstance(given, str) or not _ID.fullmatch(given)):
        raise invalid("id", f"expected 1 to {MAX_ID_LENGTH} of A-Z a-z 0-9 . _ -")
    return Override(
        id=given if given is not None else secrets.token_hex(8),
        maintenance="on" if maintenance == "on" else "off",
        reason=reason,
        message=message,
        set_by=f"{token_name} via override",
        client=client,
        set_at=time.time(),
        ttl=ttl,
        deadline=time.monotonic() + ttl,
    )


def served_summary(holder: StateReadings, serving: Serving, now: float) -> dict[str, Any]:
    """What requests are served now, and what decides it."""
    state = holder.state
    decided_by = serving.decided_by()
    return {
        "status": state.status(now),
        "active": state.active(now),
        "ends_at": format_time(state.ends_at),
        "decided_by": decided_by,
        # The stored state served but for its end, GATEWAY_MAX_WINDOW's (the stored window has none).
        "capped_by_max_window": decided_by == "store" and state is not holder.stored,
    }


def override_details(serving: Serving, holder: StateReadings) -> dict[str, Any]:
    """The override, what is served and who serves it: in health details, GET /maintenance and
    every /override answer (an admin token is needed for each)."""
    override = serving.current()
    return {
        "override": override.describe(time.monotonic()) if override is not None else None,
        "served": served_summary(holder, serving, time.time()),
        "instance": serving.instance.describe(),
    }


def override_gauges(serving: Serving | None, holder: StateReadings) -> dict[str, float | None]:
    if serving is None:
        return {"gateway_override_active": 0.0, "gateway_override_seconds_left": None, "gateway_maintenance_window_capped": 0.0}
    override = serving.current()
    details = served_summary(holder, serving, time.time())
    return {
        "gateway_override_active": float(override is not None),
        "gateway_override_seconds_left": None if override is None else max(0.0, override.deadline - time.monotonic()),
        "gateway_maintenance_window_capped": float(details["capped_by_max_window"]),
    }


def override_routes(
    serving: Serving, holder: StateReadings, authorize: Callable[[Request], tuple[str, str]], body_timeout: float
) -> list[Route]:
    """The three routes, for ``routes.build_admin_app`` to mount with the others."""

    def answer(**extra: Any) -> Response:
        payload = {**override_details(serving, holder), "store": {"status": holder.store_status(), "version": holder.stored.version}, **extra}
        return SafeJSONResponse(payload, headers=NO_STORE_FIELDS)

    async def get_override(request: Request) -> Response:
        authorize(request)
        return answer()

    async def put_override(request: Request) -> Response:
        name, client = authorize(request)
        body = parse_override_body(await read_body(request, body_timeout, MAX_OVERRIDE_BODY_BYTES), request.headers.get("content-type"))
        _, changed = serving.put(override_from_body(body, token_name=name, client=client), token_name=name)
        return answer(changed=changed)

    async def delete_override(request: Request) -> Response:
        name, client = authorize(request)
        cleared = serving.clear(token_name=name, client=client)
        return answer(changed=cleared is not None, cleared=cleared.describe(time.monotonic()) if cleared is not None else None)

    return [
        Route("/override", get_override, methods=["GET", "HEAD"]),
        Route("/override", put_override, methods=["PUT"]),
        Route("/override", delete_override, methods=["DELETE"]),
    ]
