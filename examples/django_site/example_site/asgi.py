"""The site under an ASGI server: Django's views for HTTP, Channels consumers for WebSockets.

``make run`` and the tests serve WebSockets from here (uvicorn) beside gunicorn's WSGI
app, and point the gateway's GATEWAY_WEBSOCKET_UPSTREAM_URL at it; one ASGI server for
both works the same (leave that setting empty).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from example_site import consumers  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # A page from another site must not open sockets with the user's cookies (cross-site
        # WebSocket hijacking): the same origins CORS lets read answers.
        "websocket": OriginValidator(
            URLRouter(
                [
                    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
                    path("ws/ticks/", consumers.TicksConsumer.as_asgi()),
                ]
            ),
            settings.CORS_ALLOWED_ORIGINS,
        ),
    }
)
