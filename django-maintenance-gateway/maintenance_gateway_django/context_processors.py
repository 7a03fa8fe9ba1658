"""``maintenance`` in every template rendered with a request: the notice, or None."""

from __future__ import annotations

from typing import Any


def maintenance(request: Any) -> dict[str, Any]:
    """Add ``"maintenance_gateway_django.context_processors.maintenance"`` to the template
    engine's ``context_processors``; needs ``MaintenanceNoticeMiddleware``."""
    return {"maintenance": getattr(request, "maintenance", None)}
