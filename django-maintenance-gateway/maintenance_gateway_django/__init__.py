"""Django's side of maintenance-gateway: ``request.maintenance`` from the gateway's notice,
a banner, a check that the gateway's CORS settings match django-cors-headers', and
``manage.py maintenance on|off|status`` through the gateway's admin API.

It depends on Django alone and never imports the gateway (``gateway``), which runs in its
own container.
"""

__version__ = "0.1.0"
