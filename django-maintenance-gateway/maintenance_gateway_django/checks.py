"""``manage.py check``: the gateway's CORS settings against django-cors-headers'.

Runs when django-cors-headers is installed (``corsheaders`` in ``INSTALLED_APPS``) and the
gateway's settings are known to Django: ``GATEWAY_CORS_*`` as Django settings or in the
environment (give the Django container the same variables as the gateway's, or set them from
the same source); with none of them known, the check says nothing. Silence one drift with
``SILENCED_SYSTEM_CHECKS = ["maintenance_gateway.W006"]``.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

from maintenance_gateway_django.cors import (
    DJANGO_NAME,
    GATEWAY_NAME,
    CorsSettingError,
    differences,
    from_django,
    from_gateway,
    gateway_values,
)

# One id per setting, so that one drift can be silenced without the others.
DRIFT_IDS = {
    "allowed_origins": "maintenance_gateway.W001",
    "allowed_origin_regexes": "maintenance_gateway.W002",
    "allow_all_origins": "maintenance_gateway.W003",
    "allow_credentials": "maintenance_gateway.W004",
    "allow_methods": "maintenance_gateway.W005",
    "allow_headers": "maintenance_gateway.W006",
    "expose_headers": "maintenance_gateway.W007",
    "preflight_max_age": "maintenance_gateway.W008",
}
FIX = "Give the gateway the lines `manage.py gateway_cors_env` prints (or change {django} to match {gateway})."


@checks.register("maintenance_gateway")
def check_cors_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not apps.is_installed("corsheaders"):
        return []
    try:
        gateway = from_gateway(settings)
    except CorsSettingError as exc:
        return [
            checks.Error(
                f"{exc}: the gateway would refuse this value and not start.",
                hint="Fix the value where the gateway's settings are kept.",
                id="maintenance_gateway.E001",
            )
        ]
    if gateway is None:
        # Nothing to compare with; said by no message, since every manage.py command shows them.
        return []
    try:
        django = from_django(settings)
    except CorsSettingError as exc:
        # django-cors-headers' own checks say more about it.
        return [checks.Warning(f"{exc}; the gateway's CORS settings cannot be compared with it.", id="maintenance_gateway.W009")]
    found: list[checks.CheckMessage] = [
        checks.Warning(
            f"The gateway's CORS settings differ from django-cors-headers': {drift.message}",
            hint=FIX.format(django=DJANGO_NAME[drift.field], gateway=GATEWAY_NAME[drift.field]),
            id=DRIFT_IDS[drift.field],
        )
        for drift in differences(django, gateway)
    ]
    try:
        gateway_values(django)
    except CorsSettingError as exc:
        found.append(checks.Warning(f"{exc}; the gateway cannot be given this value.", id="maintenance_gateway.W009"))
    return found
