"""A small real Django project behind the gateway: the app a team would run.

django-cors-headers is configured for a front end on another origin, as an
Angular app served from its own domain would be. Settings come from EXAMPLE_*
variables so tests can run it on any port.
"""

import os
from pathlib import Path

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "example_site.urls"
WSGI_APPLICATION = "example_site.wsgi.application"
# WebSockets (Django Channels) are served by the ASGI entry point; one process's
# in-memory channel layer is enough for the example.
ASGI_APPLICATION = "example_site.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-maintenance-gateway (../../django-maintenance-gateway, installed by `make`): the
# gateway's notice as request.maintenance, the banner, the CORS check, manage.py maintenance.
INSTALLED_APPS = ["corsheaders", "maintenance_gateway_django"]
MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    # The reader's language (Accept-Language) for the banner's dates.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Reads the gateway's X-Maintenance-Notice so pages can show a maintenance banner.
    "maintenance_gateway_django.middleware.MaintenanceNoticeMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "maintenance_gateway_django.context_processors.maintenance",
            ]
        },
    }
]
DATABASES: dict = {}
USE_TZ = True
TIME_ZONE = os.environ.get("EXAMPLE_TIME_ZONE", "UTC")
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Fran\u00e7ais")]

CORS_ALLOWED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("EXAMPLE_CORS_ALLOWED_ORIGINS", "http://localhost:4200,http://127.0.0.1:4200").split(",")
    if origin.strip()
]
CORS_ALLOW_CREDENTIALS = os.environ.get("EXAMPLE_CORS_ALLOW_CREDENTIALS", "true") == "true"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
    "x-client-version",
)
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Maintenance-Mode"]

# Large uploads are streamed by the upload view, never read into memory at once.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
