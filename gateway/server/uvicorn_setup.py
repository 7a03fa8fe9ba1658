"""Running the gateway under uvicorn with settings chosen for a reverse proxy."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import signal
from types import FrameType

import uvicorn

from gateway.server.http_protocol import PROTOCOL
from gateway.server.log_format import logging_config
from gateway.settings import Settings

logger = logging.getLogger("gateway.server")

# Longer than nginx's upstream keepalive_timeout (60 s), so nginx always closes an
# idle connection first and never sends a request on one the gateway is closing.
KEEP_ALIVE_SECONDS = 75


def export_settings(settings: Settings) -> None:
    """Put the effective settings in the environment, where worker processes read them."""
    os.environ.update(settings.as_environment(masked=False))


def _drained(signum: int, frame: FrameType | None) -> None:
    """After a graceful shutdown uvicorn raises the stop signal again; here it is simply noted."""
    logger.info("stopped by signal %d after draining", signum, extra={"event": "stopped", "signal": signum})


def serve(settings: Settings) -> int:
    export_settings(settings)
    # uvicorn handles SIGTERM/SIGINT while it runs (stop accepting, drain, shut down), then
    # re-raises the signal; with these handlers in place that ends in exit status 0, the
    # clean stop ECS expects, instead of death by signal (143).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _drained)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # The gateway's own connection protocol (gateway/server/http_protocol.py).
        http=PROTOCOL,
        # WebSockets: a stop that drains them (gateway/server/websocket_protocol.py), and their limits.
        ws="gateway.server.websocket_protocol:DrainingWebSocketProtocol",
        ws_max_size=settings.websocket_max_message_bytes,
        ws_ping_interval=settings.websocket_ping_interval,
        ws_per_message_deflate=settings.websocket_per_message_deflate,
        lifespan="on",
        # The gateway sets X-Forwarded-* itself, from the real peer address.
        proxy_headers=False,
        # Django's own Server and Date headers pass through; no second copy.
        server_header=False,
        date_header=False,
        access_log=settings.access_log,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # Rounded up, never to None (no limit): a drain under a second still ends.
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        log_config=logging_config(settings.log_level, settings.log_format),
    )
    return 0
