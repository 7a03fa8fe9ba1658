"""maintenance-gateway: a maintenance switch for Django behind Nginx, as an ASGI reverse proxy."""

__version__ = "0.1.0"
