"""Running the gateway under uvicorn with settings chosen for a reverse proxy."""

from __future__ import annotations

import importlib.util
import os

import uvicorn

from gateway.logs import logging_config
from gateway.settings import Settings

# Longer than nginx's upstream keepalive_timeout (60 s), so nginx always closes an
# idle connection first and never sends a request on one the gateway is closing.
KEEP_ALIVE_SECONDS = 75


def export_settings(settings: Settings) -> None:
    """Put the effective settings in the environment, where worker processes read them."""
    os.environ.update(settings.as_environment(masked=False))


def serve(settings: Settings) -> int:
    export_settings(settings)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools",
        lifespan="on",
        # The gateway sets X-Forwarded-* itself, from the real peer address.
        proxy_headers=False,
        # Django's own Server and Date headers pass through; no second copy.
        server_header=False,
        date_header=False,
        access_log=settings.access_log,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=int(settings.drain_timeout) or None,
        log_config=logging_config(settings.log_level, settings.log_format),
    )
    return 0
