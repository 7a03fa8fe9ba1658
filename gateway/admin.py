"""The gateway's own endpoints under the admin prefix (Starlette, off the hot path).

``/health`` is liveness for the ALB and ECS: it stays 200 in maintenance, since a
503 there would make ECS replace every task. ``/ready`` says whether this task
can serve: the state has been read (or fail-open applies) and Django answers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from gateway.app import Gateway

NO_STORE = {"cache-control": "no-store"}


def health_payload(gateway: Gateway) -> dict[str, Any]:
    holder = gateway.holder
    now = time.time()
    state = holder.state
    age = holder.age()
    return {
        "status": "ok",
        "maintenance": state.active(now),
        "mode": state.mode,
        "upcoming": state.upcoming(now),
        "state": state.describe(now) if holder.loaded else None,
        "store": {
            "kind": gateway.store.description,
            "status": holder.store_status(),
            "failures": holder.failures,
            "error": holder.last_error,
        },
        "state_age_seconds": None if age is None else round(age, 3),
    }


def build_admin_app(gateway: Gateway) -> Starlette:
    prefix = gateway.settings.admin_prefix

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(health_payload(gateway), headers=NO_STORE)

    async def ready(request: Request) -> JSONResponse:
        problems = []
        holder = gateway.holder
        if not holder.loaded and gateway.settings.fail_mode == "closed":
            problems.append("the maintenance state has not been read yet (fail-closed)")
        upstream_error = await gateway.probe_upstream()
        if upstream_error:
            problems.append(upstream_error)
        payload = {"ready": not problems, "problems": problems, "store": holder.store_status()}
        return JSONResponse(payload, status_code=503 if problems else 200, headers=NO_STORE)

    return Starlette(
        routes=[
            Route(f"{prefix}/health", health, methods=["GET", "HEAD"]),
            Route(f"{prefix}/ready", ready, methods=["GET", "HEAD"]),
        ]
    )
